package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
)

// Writer is a writer schema the records of a mapped topic may carry: a version of one of
// its subjects in the schema registry, or a sample's schema file.
type Writer struct {
	Topic string
	// Source says where the schema comes from, for errors (e.g. "subject shop.orders-value
	// version 3").
	Source string
	Schema string
}

// Check type-checks every rule against the writer schemas of its topic: value is typed
// by the records they declare, so that a field none of them has, or an operation on a
// field of the wrong type, fails here, at start, and not as a dead letter per record.
// A rule is checked against the records its match can hold for: its match is partially
// evaluated with record_name and topic known (`record_name == "com.shop.OrderCreated"`
// rules out the shop's other records). The versions of one record are merged: a field
// that any of them has may be read (a rule guarded by `has(value.f)` or `"f" in value`
// reads a field of newer versions only), and a field whose type changed between them,
// a union, bytes, fixed or a logical type other than the temporal ones is dyn, checked
// at run time. Schemas that do not parse are named in the error.
func (m *Mapper) Check(writers []Writer) error {
	byTopic := map[string][]Writer{}
	for _, w := range writers {
		if m.topics[w.Topic] != nil {
			byTopic[w.Topic] = append(byTopic[w.Topic], w)
		}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(byTopic)) {
		t := m.topics[name]
		reg := newAvroTypes()
		var roots []string // the records a value of the topic can be, with their sources
		sources := map[string][]string{}
		for _, w := range byTopic[name] {
			rs, err := reg.add(w.Schema)
			if err != nil {
				errs = append(errs, &Error{Topic: name, Err: fmt.Errorf("writer schema of %s: %w", w.Source, err)})
				continue
			}
			for _, r := range rs {
				if !slices.Contains(roots, r) {
					roots = append(roots, r)
				}
				sources[r] = append(sources[r], w.Source)
			}
		}
		for _, root := range roots {
			env, err := m.typedEnv(reg, root)
			if err != nil {
				return err
			}
			for _, r := range t.rules {
				if !r.mayMatch(name, root) {
					continue
				}
				reg.allow(root, m.presenceTests(r))
				for _, f := range r.checkedFields() {
					expr := r.expr(f)
					if _, err := compileAST(env, expr, fieldType(f)); err != nil {
						errs = append(errs, &Error{Topic: name, Rule: r.Name, Field: f, Expr: expr,
							Err: fmt.Errorf("with value a %s (%s): %w", root, strings.Join(sources[root], ", "), err)})
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// typedEnv is the rules' environment with value a record of the registry's type root.
func (m *Mapper) typedEnv(reg *avroTypes, root string) (*cel.Env, error) {
	opts := []cel.EnvOption{cel.CustomTypeProvider(reg)}
	// What the rules may do with a record that CEL allows on maps only: test a field's
	// presence ("f" in value) and read one by name (value["f"]).
	for i, name := range reg.names() {
		obj := cel.ObjectType(name)
		opts = append(opts,
			cel.Function(operators.In, cel.Overload(fmt.Sprintf("in_avro_record_%d", i), []*cel.Type{cel.StringType, obj}, cel.BoolType)),
			cel.Function(operators.Index, cel.Overload(fmt.Sprintf("index_avro_record_%d", i), []*cel.Type{obj, cel.StringType}, cel.DynType)))
	}
	env, err := newEnv(cel.ObjectType(root), opts...)
	if err != nil {
		return nil, fmt.Errorf("mapping: the typed environment of %s: %w", root, err)
	}
	return env, nil
}

// mayMatch reports whether the rule's match can hold for a record of the named schema
// on topic: false only when the match is false whatever the record's fields, key,
// headers and timestamp.
func (r *rule) mayMatch(topicName, recordName string) bool {
	if r.matchAST == nil {
		return true
	}
	vars, err := cel.PartialVars(map[string]any{"record_name": recordName, "topic": topicName},
		cel.AttributePattern("value"), cel.AttributePattern("key"), cel.AttributePattern("headers"), cel.AttributePattern("timestamp"))
	if err != nil {
		return true
	}
	out, _, err := r.partial.Eval(vars)
	if err != nil {
		return true
	}
	b, ok := out.(types.Bool)
	return !ok || bool(b)
}

// presence is a test of a field's presence in a rule: has(value.a.f) or "f" in value.a
// (path [a], field f).
type presence struct {
	path  []string
	field string
}

// presenceTests are the presence tests of the rule's expressions on paths from value.
func (m *Mapper) presenceTests(r *rule) []presence {
	var out []presence
	for _, f := range r.checkedFields() {
		parsed, iss := m.env.Parse(r.expr(f))
		if iss.Err() != nil {
			continue
		}
		celast.PreOrderVisit(parsed.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
			switch e.Kind() {
			case celast.SelectKind:
				if sel := e.AsSelect(); sel.IsTestOnly() {
					if p, ok := valuePath(sel.Operand()); ok {
						out = append(out, presence{path: p, field: sel.FieldName()})
					}
				}
			case celast.CallKind:
				c := e.AsCall()
				if c.FunctionName() != operators.In || len(c.Args()) != 2 || c.Args()[0].Kind() != celast.LiteralKind {
					return
				}
				name, ok := c.Args()[0].AsLiteral().(types.String)
				if p, isPath := valuePath(c.Args()[1]); ok && isPath {
					out = append(out, presence{path: p, field: string(name)})
				}
			}
		}))
	}
	return out
}

// valuePath is the fields from value an expression selects (value.a.b: [a b]).
func valuePath(e celast.Expr) ([]string, bool) {
	switch e.Kind() {
	case celast.IdentKind:
		return nil, e.AsIdent() == "value"
	case celast.SelectKind:
		sel := e.AsSelect()
		if sel.IsTestOnly() {
			return nil, false
		}
		p, ok := valuePath(sel.Operand())
		return append(p, sel.FieldName()), ok
	}
	return nil, false
}

// checkedFields are the rule's expressions, by the field names errors give.
func (r *rule) checkedFields() []string {
	var out []string
	if r.matchAST != nil {
		out = append(out, "match")
	}
	for _, f := range Fields {
		if _, ok := r.Event[f]; ok {
			out = append(out, "event."+f)
		}
	}
	return out
}

func (r *rule) expr(field string) string {
	if field == "match" {
		return r.Match
	}
	return r.Event[strings.TrimPrefix(field, "event.")]
}

// avroTypes declares Avro records to CEL's checker as object types with their fields.
type avroTypes struct {
	*types.Registry
	records map[string]map[string]*cel.Type // full name → field → type
	// allowed are fields no version has that the rule being checked tests for presence
	// (has(value.f), "f" in value): read as dyn, so that a rule ready for a newer
	// version passes against the older ones.
	allowed map[string]map[string]bool
}

// allow sets the fields of the presence tests, from the record root, that the records
// lack, for the rule checked next.
func (a *avroTypes) allow(root string, tests []presence) {
	a.allowed = map[string]map[string]bool{}
	for _, pt := range tests {
		rec := root
		for _, seg := range pt.path {
			ft := a.records[rec][seg]
			if ft == nil || ft.Kind() != types.StructKind {
				rec = ""
				break
			}
			rec = ft.TypeName()
		}
		if fs, ok := a.records[rec]; ok && fs[pt.field] == nil {
			if a.allowed[rec] == nil {
				a.allowed[rec] = map[string]bool{}
			}
			a.allowed[rec][pt.field] = true
		}
	}
}

func newAvroTypes() *avroTypes {
	reg, _ := types.NewRegistry() // no protobuf types: cannot fail
	return &avroTypes{Registry: reg, records: map[string]map[string]*cel.Type{}}
}

func (a *avroTypes) names() []string { return slices.Sorted(maps.Keys(a.records)) }

// FindStructType implements types.Provider.
func (a *avroTypes) FindStructType(name string) (*types.Type, bool) {
	if _, ok := a.records[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return a.Registry.FindStructType(name)
}

// FindStructFieldNames implements types.Provider.
func (a *avroTypes) FindStructFieldNames(name string) ([]string, bool) {
	if fs, ok := a.records[name]; ok {
		return slices.Sorted(maps.Keys(fs)), true
	}
	return a.Registry.FindStructFieldNames(name)
}

// FindStructFieldType implements types.Provider.
func (a *avroTypes) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	fs, ok := a.records[name]
	if !ok {
		return a.Registry.FindStructFieldType(name, field)
	}
	t, ok := fs[field]
	if !ok {
		if a.allowed[name][field] {
			return &types.FieldType{Type: cel.DynType}, true
		}
		return nil, false
	}
	return &types.FieldType{Type: t}, true
}

// add declares the records of an Avro schema, merged with those of the same name already
// declared, and returns the records a datum of the schema can be (the schema's record,
// or a top-level union's).
func (a *avroTypes) add(schema string) ([]string, error) {
	var s any
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		return nil, err
	}
	w := &avroWalk{types: a, seen: map[string]bool{}}
	var roots []string
	top := s
	if u, ok := s.([]any); ok {
		for _, b := range u {
			if t := w.typeOf(b, ""); t.Kind() == types.StructKind {
				roots = append(roots, t.TypeName())
			}
		}
		top = nil
	}
	if top != nil {
		t := w.typeOf(top, "")
		if t.Kind() != types.StructKind {
			return nil, fmt.Errorf("the schema is a %s, not a record", t)
		}
		roots = append(roots, t.TypeName())
	}
	return roots, w.err
}

// avroWalk turns one schema's types into CEL types.
type avroWalk struct {
	types *avroTypes
	seen  map[string]bool // records of this schema already declared (named types, recursion)
	err   error
}

func (w *avroWalk) typeOf(s any, ns string) *cel.Type {
	switch t := s.(type) {
	case string:
		switch t {
		case "null":
			return cel.NullType
		case "boolean":
			return cel.BoolType
		case "int", "long":
			return cel.IntType
		case "float", "double":
			return cel.DoubleType
		case "string":
			return cel.StringType
		case "bytes":
			return cel.DynType // as the standard JSON writes it: text
		}
		name := fullName(t, ns)
		if _, ok := w.types.records[name]; ok && w.seen[name] {
			return cel.ObjectType(name)
		}
		return cel.DynType // an enum or fixed by name, or a type of another schema (a reference)
	case []any:
		var branches []*cel.Type
		for _, b := range t {
			if bt := w.typeOf(b, ns); bt != cel.NullType {
				branches = append(branches, bt)
			}
		}
		if len(branches) == 1 && branches[0].Kind() == types.StructKind {
			return branches[0] // an optional record: its fields are checked, null compares
		}
		return cel.DynType
	case map[string]any:
		if lt, _ := t["logicalType"].(string); lt != "" {
			switch lt {
			case "timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros", "date", "time-millis", "time-micros":
				return cel.IntType // their number
			case "uuid":
				return cel.StringType
			}
			return cel.DynType
		}
		typ, _ := t["type"].(string)
		switch typ {
		case "record", "error":
			return w.record(t, ns)
		case "enum":
			return cel.StringType
		case "array":
			return cel.ListType(w.typeOf(t["items"], ns))
		case "map":
			return cel.MapType(cel.StringType, w.typeOf(t["values"], ns))
		case "fixed":
			return cel.DynType
		case "": // {"type": {...}}: a type wrapped once more
			return w.typeOf(t["type"], ns)
		}
		return w.typeOf(typ, ns)
	}
	return cel.DynType
}

func (w *avroWalk) record(t map[string]any, ns string) *cel.Type {
	name, _ := t["name"].(string)
	if n, ok := t["namespace"].(string); ok && n != "" && !strings.Contains(name, ".") {
		ns = n
	} else if i := strings.LastIndexByte(name, '.'); i >= 0 {
		ns = name[:i]
	}
	full := fullName(name, ns)
	fields := w.types.records[full]
	first := fields == nil
	if first {
		fields = map[string]*cel.Type{}
		w.types.records[full] = fields
	}
	w.seen[full] = true
	fs, _ := t["fields"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		fname, _ := fm["name"].(string)
		if fname == "" {
			w.err = cmpErr(w.err, fmt.Errorf("record %s has a field without a name", full))
			continue
		}
		ft := w.typeOf(fm["type"], ns)
		if old, ok := fields[fname]; ok && !first && !old.IsExactType(ft) {
			ft = cel.DynType // the versions disagree: checked at run time
		}
		fields[fname] = ft
	}
	return cel.ObjectType(full)
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func cmpErr(have, err error) error {
	if have != nil {
		return have
	}
	return err
}
