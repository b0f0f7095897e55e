package avro

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Compatible reports whether schema next may follow schema prev by the evolution rules
// of README.md: data written with either reads with the other. It is a structural check
// of the rules, stricter than Avro's resolution where the rules are: a field is added
// only with a default, removed only if it had one, and never changes type except by
// the promotions int→long, float→double and string↔bytes (in either direction a reader
// must resolve, so only the widening is allowed from prev to next; string↔bytes both
// ways); a record or enum keeps its full name (or names the old one in aliases); union
// branches and enum symbols are appended, never removed or reordered. The error names
// the path of every violation.
func Compatible(prev, next string) error {
	p, err := parseSchema(prev)
	if err != nil {
		return fmt.Errorf("avro: previous schema: %w", err)
	}
	n, err := parseSchema(next)
	if err != nil {
		return fmt.Errorf("avro: next schema: %w", err)
	}
	c := &compat{prev: p, next: n, seen: map[string]bool{}}
	c.check(p.root, n.root, p.root.fullName())
	return errors.Join(c.errs...)
}

// node is one parsed schema: a primitive, a reference to a named type, or a complex type.
type node struct {
	typ     string // primitive name, "record", "enum", "array", "map", "fixed", "union", or "ref"
	name    string // full name of a named type, or the referenced one
	aliases []string
	logical string
	fields  []field
	symbols []string
	items   *node // array items, map values
	union   []*node
	size    int
}

type field struct {
	name       string
	aliases    []string
	typ        *node
	hasDefault bool
}

func (n *node) fullName() string {
	if n.name != "" {
		return n.name
	}
	return n.typ
}

// schema is a parsed schema with its named types by full name.
type schema struct {
	root  *node
	named map[string]*node
}

func parseSchema(s string) (*schema, error) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	sc := &schema{named: map[string]*node{}}
	root, err := sc.parse(v, "")
	if err != nil {
		return nil, err
	}
	sc.root = root
	return sc, nil
}

var primitives = []string{"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

func qualify(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func (sc *schema) parse(v any, ns string) (*node, error) {
	switch t := v.(type) {
	case string:
		if slices.Contains(primitives, t) {
			return &node{typ: t}, nil
		}
		return &node{typ: "ref", name: qualify(t, ns)}, nil
	case []any:
		u := &node{typ: "union"}
		for _, b := range t {
			bn, err := sc.parse(b, ns)
			if err != nil {
				return nil, err
			}
			u.union = append(u.union, bn)
		}
		return u, nil
	case map[string]any:
		return sc.parseComplex(t, ns)
	}
	return nil, fmt.Errorf("unexpected schema element %v", v)
}

func (sc *schema) parseComplex(m map[string]any, ns string) (*node, error) {
	typ, _ := m["type"].(string)
	if typ == "" {
		// {"type": {...}} or {"type": [...]}: the inner schema.
		return sc.parse(m["type"], ns)
	}
	n := &node{typ: typ}
	n.logical, _ = m["logicalType"].(string)
	switch typ {
	case "record", "error", "enum", "fixed":
		name, _ := m["name"].(string)
		if space, ok := m["namespace"].(string); ok && !strings.Contains(name, ".") {
			ns = space
		}
		n.name = qualify(name, ns)
		if i := strings.LastIndex(n.name, "."); i >= 0 {
			ns = n.name[:i]
		}
		for _, a := range strs(m["aliases"]) {
			n.aliases = append(n.aliases, qualify(a, ns))
		}
		sc.named[n.name] = n
	}
	switch typ {
	case "record", "error":
		n.typ = "record"
		fs, _ := m["fields"].([]any)
		for _, f := range fs {
			fm, ok := f.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("record %s: a field is not an object", n.name)
			}
			ft, err := sc.parse(fm["type"], ns)
			if err != nil {
				return nil, fmt.Errorf("record %s: %w", n.name, err)
			}
			name, _ := fm["name"].(string)
			_, hasDefault := fm["default"]
			n.fields = append(n.fields, field{name: name, aliases: strs(fm["aliases"]), typ: ft, hasDefault: hasDefault})
		}
	case "enum":
		n.symbols = strs(m["symbols"])
	case "array":
		it, err := sc.parse(m["items"], ns)
		if err != nil {
			return nil, err
		}
		n.items = it
	case "map":
		it, err := sc.parse(m["values"], ns)
		if err != nil {
			return nil, err
		}
		n.items = it
	case "fixed":
		size, _ := m["size"].(float64)
		n.size = int(size)
	default:
		if !slices.Contains(primitives, typ) {
			// A named type referenced as {"type": "Name"}.
			return &node{typ: "ref", name: qualify(typ, ns)}, nil
		}
	}
	return n, nil
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

type compat struct {
	prev, next *schema
	seen       map[string]bool // named pairs already compared (recursive types)
	errs       []error
}

func (c *compat) fail(path, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (c *compat) resolve(n *node, in *schema) *node {
	for n != nil && n.typ == "ref" {
		d, ok := in.named[n.name]
		if !ok {
			return &node{typ: "unknown", name: n.name}
		}
		n = d
	}
	return n
}

// promotions lists, per type written by prev, what next may read it as.
var promotions = map[string][]string{
	"int":    {"long"},
	"float":  {"double"},
	"string": {"bytes"},
	"bytes":  {"string"},
}

func (c *compat) check(p, n *node, path string) {
	p, n = c.resolve(p, c.prev), c.resolve(n, c.next)
	if p.typ == "unknown" || n.typ == "unknown" {
		c.fail(path, "reference to an undefined type %s", p.fullName()+"/"+n.fullName())
		return
	}
	if p.typ != n.typ {
		if !slices.Contains(promotions[p.typ], n.typ) {
			c.fail(path, "type changed from %s to %s", p.fullName(), n.fullName())
		}
		return
	}
	if p.logical != n.logical {
		c.fail(path, "logical type changed from %q to %q", p.logical, n.logical)
	}
	switch p.typ {
	case "record", "enum", "fixed":
		if p.name != n.name && !slices.Contains(n.aliases, p.name) {
			c.fail(path, "%s renamed to %s without an alias", p.name, n.name)
		}
		key := p.name + "→" + n.name
		if c.seen[key] {
			return
		}
		c.seen[key] = true
	}
	switch p.typ {
	case "record":
		c.checkFields(p, n, path)
	case "enum":
		if len(n.symbols) < len(p.symbols) || !slices.Equal(n.symbols[:len(p.symbols)], p.symbols) {
			c.fail(path, "enum symbols %v are not appended to %v", n.symbols, p.symbols)
		}
	case "fixed":
		if p.size != n.size {
			c.fail(path, "fixed size changed from %d to %d", p.size, n.size)
		}
	case "array", "map":
		c.check(p.items, n.items, path+"[]")
	case "union":
		if len(n.union) < len(p.union) {
			c.fail(path, "union lost branches (%d to %d): branches are only appended", len(p.union), len(n.union))
			return
		}
		for i, pb := range p.union {
			nb := n.union[i]
			rp, rn := c.resolve(pb, c.prev), c.resolve(nb, c.next)
			if rp.fullName() != rn.fullName() && !slices.Contains(rn.aliases, rp.fullName()) {
				c.fail(path, "union branch %d changed from %s to %s: branches are only appended", i, rp.fullName(), rn.fullName())
				continue
			}
			c.check(pb, nb, path+"|"+rp.fullName())
		}
	}
}

func (c *compat) checkFields(p, n *node, path string) {
	matched := map[string]bool{}
	for _, pf := range p.fields {
		i := slices.IndexFunc(n.fields, func(nf field) bool { return nf.name == pf.name || slices.Contains(nf.aliases, pf.name) })
		if i < 0 {
			if !pf.hasDefault {
				c.fail(path+"."+pf.name, "field removed, but it has no default")
			}
			continue
		}
		nf := n.fields[i]
		matched[nf.name] = true
		if pf.hasDefault && !nf.hasDefault {
			c.fail(path+"."+pf.name, "field lost its default")
		}
		c.check(pf.typ, nf.typ, path+"."+pf.name)
	}
	for _, nf := range n.fields {
		if !matched[nf.name] && !nf.hasDefault {
			c.fail(path+"."+nf.name, "field added without a default")
		}
	}
}
