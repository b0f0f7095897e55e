package mapping

import (
	"encoding/json"
	"fmt"
	"maps"
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

func (c *canonical) kinds() []string { return slices.Sorted(maps.Keys(c.payloads)) }

// fieldError is a value a rule built that the event cannot hold: a field the canonical
// record lacks, or a value of no event type. Its path is built as the conversion
// unwinds, so that a record that converts pays for no path at all.
type fieldError struct {
	path    string   // e.g. ".line_items[0].item", below the root
	missing string   // a field the record at path does not have, with the ones it has
	have    []string //
	err     error    // otherwise
}

func (e *fieldError) under(segment string) *fieldError {
	e.path = segment + e.path
	return e
}

// in names the error's place below root (the payload's kind, or "" for a plain field).
func (e *fieldError) in(root string) error {
	at := strings.TrimPrefix(root+e.path, ".")
	switch {
	case e.missing != "":
		return fmt.Errorf("%s has no field %q (it has %s)", at, e.missing, strings.Join(e.have, ", "))
	case at != "":
		return fmt.Errorf("%s: %w", at, e.err)
	}
	return e.err
}

func (s *shape) fieldNames() []string { return slices.Sorted(maps.Keys(s.fields)) }
