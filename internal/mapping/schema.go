package mapping

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ucprelay/ucprelay/avro"
)

// canonical is what a rule's payload is checked against: the payload kinds of
// avro.OrderEvent and their fields, nested records included, so that a misspelt field
// fails the record (mapping_failed) instead of being dropped without a word.
type canonical struct {
	payloads map[string]*shape // by kind (the record's short name)
}

// shape is a record's fields, each with the record shape its values have (nil: none).
type shape struct {
	name   string
	fields map[string]*shape
}

func loadCanonical() (*canonical, error) {
	var root map[string]any
	if err := json.Unmarshal([]byte(avro.OrderEvent), &root); err != nil {
		return nil, fmt.Errorf("mapping: the event schema: %w", err)
	}
	named := map[string]*shape{}
	var walk func(t any) *shape
	walk = func(t any) *shape {
		switch x := t.(type) {
		case string:
			return named[x[strings.LastIndexByte(x, '.')+1:]]
		case []any:
			for _, b := range x {
				if s := walk(b); s != nil {
					return s // an optional record: ["null", Record]
				}
			}
			return nil
		case map[string]any:
			switch x["type"] {
			case "record":
				name, _ := x["name"].(string)
				s := &shape{name: name, fields: map[string]*shape{}}
				named[name] = s
				fs, _ := x["fields"].([]any)
				for _, f := range fs {
					fm, _ := f.(map[string]any)
					fname, _ := fm["name"].(string)
					s.fields[fname] = walk(fm["type"])
				}
				return s
			case "array":
				return walk(x["items"])
			case "map":
				return walk(x["values"])
			default:
				return walk(x["type"])
			}
		}
		return nil
	}
	c := &canonical{payloads: map[string]*shape{}}
	fs, _ := root["fields"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		if fm["name"] != "payload" {
			walk(fm["type"])
			continue
		}
		branches, _ := fm["type"].([]any)
		for _, b := range branches {
			if s := walk(b); s != nil {
				c.payloads[s.name] = s
			}
		}
	}
	if len(c.payloads) == 0 {
		return nil, fmt.Errorf("mapping: the event schema has no payload kinds")
	}
	return c, nil
}

func (c *canonical) hasKind(kind string) bool { return c.payloads[kind] != nil }

func (c *canonical) kinds() []string {
	out := make([]string, 0, len(c.payloads))
	for k := range c.payloads {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// check reports the first field of v, at any depth, that the kind's record does not have.
func (c *canonical) check(kind string, v map[string]any) error {
	return c.payloads[kind].check(kind, v)
}

func (s *shape) check(path string, v any) error {
	switch x := v.(type) {
	case map[string]any:
		if s == nil {
			return nil // a map<string> value
		}
		for k, e := range x {
			sub, ok := s.fields[k]
			if !ok {
				names := make([]string, 0, len(s.fields))
				for n := range s.fields {
					names = append(names, n)
				}
				slices.Sort(names)
				return fmt.Errorf("%s has no field %q (it has %s)", path, k, strings.Join(names, ", "))
			}
			if err := sub.check(path+"."+k, e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := s.check(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	}
	return nil
}
