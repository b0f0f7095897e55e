package avrocodec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A plainer turns goavro's native form of one schema's datum into the standard JSON form
// [Generic] promises (unions unwrapped, ints and longs int64, floats float64, timestamps
// and dates their number), in place where it can: it walks the datum by the schema, so
// a record's value needs no second encoding. Built once per writer schema.
type plainer func(v any) (any, error)

// errUnplain: the schema has a type the walk leaves to the JSON round trip (bytes,
// fixed, decimal, an unknown logical type), whose standard JSON form is goavro's text.
var errUnplain = errors.New("avrocodec: no direct standard JSON form for this schema")

// newPlainer builds the plainer of a schema, or errUnplain.
func newPlainer(schema string) (plainer, error) {
	var s any
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		return nil, err
	}
	b := &plainBuilder{named: map[string]*plainer{}}
	return b.build(s, "")
}

type plainBuilder struct {
	named map[string]*plainer // by full name; filled before a record's fields, for recursion
}

func identity(v any) (any, error) { return v, nil }

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func (b *plainBuilder) build(s any, ns string) (plainer, error) {
	switch t := s.(type) {
	case string:
		return b.primitive(t, ns)
	case []any:
		return b.union(t, ns)
	case map[string]any:
		return b.complex(t, ns)
	}
	return nil, fmt.Errorf("avrocodec: schema %v", s)
}

func (b *plainBuilder) primitive(t, ns string) (plainer, error) {
	switch t {
	case "null", "boolean", "string", "long", "double":
		return identity, nil
	case "int":
		return func(v any) (any, error) {
			if i, ok := v.(int32); ok {
				return int64(i), nil
			}
			return v, nil
		}, nil
	case "float":
		return func(v any) (any, error) {
			if f, ok := v.(float32); ok {
				// As the JSON round trip reads it: the shortest text of the float32.
				return strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
			}
			return v, nil
		}, nil
	case "bytes":
		return nil, errUnplain
	}
	p, ok := b.named[fullName(t, ns)]
	if !ok {
		return nil, fmt.Errorf("avrocodec: unknown type %q", t)
	}
	return func(v any) (any, error) { return (*p)(v) }, nil
}

// union unwraps goavro's {"branch": value} form.
func (b *plainBuilder) union(branches []any, ns string) (plainer, error) {
	byName := make(map[string]plainer, len(branches))
	for _, br := range branches {
		p, err := b.build(br, ns)
		if err != nil {
			return nil, err
		}
		byName[branchName(br, ns)] = p
	}
	return func(v any) (any, error) {
		m, ok := v.(map[string]any)
		if v == nil || !ok || len(m) != 1 {
			return v, nil // null
		}
		for k, x := range m {
			if p, ok := byName[k]; ok {
				return p(x)
			}
			return nil, fmt.Errorf("avrocodec: union branch %q", k)
		}
		return v, nil
	}, nil
}

// branchName is the key goavro's native form gives a union branch.
func branchName(s any, ns string) string {
	switch t := s.(type) {
	case string:
		if isPrimitive(t) {
			return t
		}
		return fullName(t, ns)
	case map[string]any:
		typ, _ := t["type"].(string)
		switch typ {
		case "record", "error", "enum", "fixed":
			name, _ := t["name"].(string)
			if n, ok := t["namespace"].(string); ok && n != "" {
				ns = n
			}
			return fullName(name, ns)
		case "array", "map":
			return typ
		}
		if lt, ok := t["logicalType"].(string); ok && typ != "" {
			return typ + "." + lt
		}
		return typ
	}
	return ""
}

func isPrimitive(t string) bool {
	switch t {
	case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
		return true
	}
	return false
}

func (b *plainBuilder) complex(t map[string]any, ns string) (plainer, error) {
	if lt, ok := t["logicalType"].(string); ok {
		return b.logical(t, lt, ns)
	}
	switch typ := t["type"].(type) {
	case []any, map[string]any:
		return b.build(typ, ns)
	case string:
		switch typ {
		case "record", "error":
			return b.record(t, ns)
		case "enum":
			b.register(t, ns, identity)
			return identity, nil
		case "fixed":
			return nil, errUnplain
		case "array":
			items, err := b.build(t["items"], ns)
			if err != nil {
				return nil, err
			}
			return func(v any) (any, error) {
				a, _ := v.([]any)
				if a == nil {
					return []any{}, nil
				}
				for i := range a {
					var err error
					if a[i], err = items(a[i]); err != nil {
						return nil, err
					}
				}
				return v, nil
			}, nil
		case "map":
			values, err := b.build(t["values"], ns)
			if err != nil {
				return nil, err
			}
			return func(v any) (any, error) {
				m, _ := v.(map[string]any)
				for k, x := range m {
					var err error
					if m[k], err = values(x); err != nil {
						return nil, err
					}
				}
				return v, nil
			}, nil
		default:
			return b.primitive(typ, ns)
		}
	}
	return nil, fmt.Errorf("avrocodec: schema %v", t)
}

// register names a named type's plainer, for the references that follow.
func (b *plainBuilder) register(t map[string]any, ns string, p plainer) *plainer {
	name, _ := t["name"].(string)
	if n, ok := t["namespace"].(string); ok && n != "" {
		ns = n
	}
	ptr := &p
	b.named[fullName(name, ns)] = ptr
	return ptr
}

func (b *plainBuilder) record(t map[string]any, ns string) (plainer, error) {
	ptr := b.register(t, ns, nil)
	name, _ := t["name"].(string)
	inner := ns
	if n, ok := t["namespace"].(string); ok && n != "" {
		inner = n
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		inner = name[:i]
	}
	fields, _ := t["fields"].([]any)
	type field struct {
		name string
		p    plainer
	}
	fs := make([]field, 0, len(fields))
	for _, f := range fields {
		fm, _ := f.(map[string]any)
		fname, _ := fm["name"].(string)
		p, err := b.build(fm["type"], inner)
		if err != nil {
			return nil, err
		}
		fs = append(fs, field{fname, p})
	}
	*ptr = func(v any) (any, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("avrocodec: record %s is a %T", name, v)
		}
		for _, f := range fs {
			x, ok := m[f.name]
			if !ok {
				continue
			}
			var err error
			if m[f.name], err = f.p(x); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	return *ptr, nil
}

// logical gives a logical type's value as its standard JSON number; logical types the
// walk does not know go the JSON way.
func (b *plainBuilder) logical(t map[string]any, lt, ns string) (plainer, error) {
	typ, _ := t["type"].(string)
	base := func() (plainer, error) { return b.primitive(typ, ns) }
	switch {
	case lt == "timestamp-millis" && typ == "long":
		return timeAs(func(x time.Time) int64 { return x.UnixMilli() }), nil
	case lt == "timestamp-micros" && typ == "long":
		return timeAs(func(x time.Time) int64 { return x.UnixMicro() }), nil
	case lt == "date" && typ == "int":
		return timeAs(func(x time.Time) int64 {
			d := x.Unix() / 86400
			if x.Unix() < 0 && x.Unix()%86400 != 0 {
				d-- // days before 1970 round down
			}
			return d
		}), nil
	case lt == "time-millis" && typ == "int":
		return durationAs(time.Millisecond), nil
	case lt == "time-micros" && typ == "long":
		return durationAs(time.Microsecond), nil
	case lt == "uuid" && typ == "string":
		return base()
	}
	return nil, errUnplain
}

func timeAs(f func(time.Time) int64) plainer {
	return func(v any) (any, error) {
		switch x := v.(type) {
		case time.Time:
			return f(x.UTC()), nil
		case int32:
			return int64(x), nil
		}
		return v, nil
	}
}

func durationAs(unit time.Duration) plainer {
	return func(v any) (any, error) {
		switch x := v.(type) {
		case time.Duration:
			return int64(x / unit), nil
		case int32:
			return int64(x), nil
		}
		return v, nil
	}
}
