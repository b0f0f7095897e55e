// Package mapping turns a merchant's own Avro records into ucprelay's canonical order
// events by declared rules: per input topic, rules matched on the record (a CEL
// condition over its record name, fields, key, headers and timestamp) build one event
// each, every field of the event a CEL expression. The canonical event stays the
// internal model: state, fold and replay never see the merchant's schemas.
//
// A rule's expressions see these variables:
//
//	value        the decoded record: a map by field name (unions are their value,
//	             longs int, timestamps their number, e.g. milliseconds)
//	record_name  the full name of the record's writer schema, e.g. "com.shop.OrderCreated"
//	key          the Kafka record's key, a string
//	headers      the record's headers, map(string, string) (the last value of a key)
//	timestamp    the Kafka record's timestamp
//	topic        the topic it was read from
//
// and CEL's standard library with the strings, lists, math and encoders extensions, plus
// millis(int) → timestamp for epoch milliseconds and list.sum() → int for a list of ints
// (amounts in minor units).
package mapping

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"

	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Dead-letter reasons of records a mapping cannot turn into an event.
const (
	// ReasonUnmapped: no rule of the record's topic matched it (and the topic does not
	// ignore unmatched records).
	ReasonUnmapped = "unmapped"
	// ReasonMappingFailed: the matching rule failed on the record (an expression error, a
	// missing field, a value of the wrong type, a field the event does not have).
	ReasonMappingFailed = "mapping_failed"
)

// Reasons are the dead-letter reasons the mapping gives.
func Reasons() []string { return []string{ReasonUnmapped, ReasonMappingFailed} }

// Unmatched says what happens to a record no rule matches.
type Unmatched string

const (
	// UnmatchedDeadLetter dead-letters it as unmapped (the default).
	UnmatchedDeadLetter Unmatched = "dead_letter"
	// UnmatchedIgnore skips it, counted by topic and record name.
	UnmatchedIgnore Unmatched = "ignore"
)

// Fields are the event fields a rule sets; Kind and the rest are CEL expressions except
// Kind, a payload kind's name.
var Fields = []string{"event_id", "order_id", "occurred_at", "source", "partner_id", "payload"}

// Rule is one declared rule.
type Rule struct {
	// Name identifies the rule in errors and dead letters.
	Name string
	// Match is a CEL condition; empty matches every record.
	Match string
	// Kind is the payload kind the rule builds (orderevents kinds: OrderPlaced,
	// FulfillmentRecorded, ExpectationsChanged, LinesCanceled, OrderCanceled,
	// AdjustmentRecorded, OrderDetailsChanged).
	Kind string
	// Event maps each field of the event (Fields) to its CEL expression; event_id,
	// order_id, occurred_at and payload are required, source defaults to the topic,
	// partner_id to none.
	Event map[string]string
}

// Topic is the mapping of one input topic.
type Topic struct {
	Name      string
	Rules     []Rule
	Unmatched Unmatched
}

// Mapper applies compiled rules. Safe for concurrent use.
type Mapper struct {
	topics map[string]*topic
	schema *canonical
	env    *cel.Env // the environment the rules run in (value dyn)
}

type topic struct {
	name      string
	unmatched Unmatched
	rules     []*rule
}

type rule struct {
	Rule
	match    *program    // nil: always
	matchAST *cel.Ast    // nil: always
	partial  cel.Program // match, partially evaluated (typecheck.go)
	fields   map[string]*program
}

// Error is a rule that does not compile, or a record a rule cannot map.
type Error struct {
	Topic, Rule, Field, Expr string
	// Code is the dead-letter reason (empty for a rule that does not compile).
	Code string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mapping: topic %s", e.Topic)
	if e.Rule != "" {
		fmt.Fprintf(&b, ", rule %s", e.Rule)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ", %s", e.Field)
	}
	if e.Expr != "" {
		fmt.Fprintf(&b, " (%s)", e.Expr)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Reason is the dead-letter reason.
func (e *Error) Reason() string { return e.Code }

// New compiles the topics' rules. Every rule that does not compile is named in the error,
// with its field and expression.
func New(topics []Topic) (*Mapper, error) {
	env, err := newEnv(cel.DynType)
	if err != nil {
		return nil, err
	}
	sch, err := loadCanonical()
	if err != nil {
		return nil, err
	}
	m := &Mapper{topics: map[string]*topic{}, schema: sch, env: env}
	var errs []error
	for _, tc := range topics {
		if tc.Name == "" {
			errs = append(errs, errors.New("mapping: a topic without a name"))
			continue
		}
		if m.topics[tc.Name] != nil {
			errs = append(errs, fmt.Errorf("mapping: topic %s is mapped twice", tc.Name))
			continue
		}
		t := &topic{name: tc.Name, unmatched: tc.Unmatched}
		switch tc.Unmatched {
		case "":
			t.unmatched = UnmatchedDeadLetter
		case UnmatchedDeadLetter, UnmatchedIgnore:
		default:
			errs = append(errs, fmt.Errorf("mapping: topic %s: unmatched is %q, want %s or %s", tc.Name, tc.Unmatched, UnmatchedDeadLetter, UnmatchedIgnore))
		}
		if len(tc.Rules) == 0 {
			errs = append(errs, fmt.Errorf("mapping: topic %s has no rules", tc.Name))
		}
		names := map[string]bool{}
		for i, rc := range tc.Rules {
			if rc.Name == "" {
				rc.Name = fmt.Sprintf("#%d", i+1)
			}
			if names[rc.Name] {
				errs = append(errs, &Error{Topic: tc.Name, Rule: rc.Name, Err: errors.New("two rules have this name")})
			}
			names[rc.Name] = true
			r, rerrs := compile(env, sch, tc.Name, rc)
			errs = append(errs, rerrs...)
			t.rules = append(t.rules, r)
		}
		m.topics[tc.Name] = t
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// newEnv is the rules' environment, value of type valueType (dyn for the programs that
// run; a record's type to check them against a writer schema, typecheck.go).
func newEnv(valueType *cel.Type, opts ...cel.EnvOption) (*cel.Env, error) {
	env, err := cel.NewEnv(append([]cel.EnvOption{
		cel.Variable("value", valueType),
		cel.Variable("record_name", cel.StringType),
		cel.Variable("key", cel.StringType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("timestamp", cel.TimestampType),
		cel.Variable("topic", cel.StringType),
		ext.Strings(), ext.Lists(ext.ListsVersion(3)), ext.Math(), ext.Encoders(),
		cel.Function("sum", cel.MemberOverload("list_sum", []*cel.Type{cel.ListType(cel.DynType)}, cel.IntType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				l, ok := v.(traits.Lister)
				if !ok {
					return types.NewErr("sum: want a list, got %s", v.Type())
				}
				var total types.Int
				for it := l.Iterator(); it.HasNext() == types.True; {
					n, ok := it.Next().(types.Int)
					if !ok {
						return types.NewErr("sum: the list holds a value that is not an int")
					}
					total += n
				}
				return total
			}))),
		cel.Function("millis", cel.Overload("millis_int", []*cel.Type{cel.IntType}, cel.TimestampType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				ms, ok := v.(types.Int)
				if !ok {
					return types.NewErr("millis: want an int, got %s", v.Type())
				}
				return types.Timestamp{Time: time.UnixMilli(int64(ms)).UTC()}
			}))),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("mapping: CEL environment: %w", err)
	}
	return env, nil
}

func compile(env *cel.Env, sch *canonical, topicName string, rc Rule) (*rule, []error) {
	var errs []error
	fail := func(field, expr string, err error) {
		errs = append(errs, &Error{Topic: topicName, Rule: rc.Name, Field: field, Expr: expr, Err: err})
	}
	compileField := func(field, expr string, want *cel.Type) (*program, *cel.Ast) {
		ast, err := compileAST(env, expr, want)
		if err != nil {
			fail(field, expr, err)
			return nil, nil
		}
		p, err := newProgram(env, ast)
		if err != nil {
			fail(field, expr, err)
			return nil, nil
		}
		return p, ast
	}
	r := &rule{Rule: rc, fields: map[string]*program{}}
	if strings.TrimSpace(rc.Match) != "" {
		if r.match, r.matchAST = compileField("match", rc.Match, cel.BoolType); r.matchAST != nil {
			var err error
			if r.partial, err = env.Program(r.matchAST, cel.EvalOptions(cel.OptPartialEval)); err != nil {
				fail("match", rc.Match, err)
			}
		}
	}
	if !sch.hasKind(rc.Kind) {
		fail("kind", "", fmt.Errorf("kind %q is none of %s", rc.Kind, strings.Join(sch.kinds(), ", ")))
	}
	for _, f := range slices.Sorted(maps.Keys(rc.Event)) {
		if !slices.Contains(Fields, f) {
			fail("event."+f, "", fmt.Errorf("the event has no field %q (it has %s)", f, strings.Join(Fields, ", ")))
			continue
		}
		r.fields[f], _ = compileField("event."+f, rc.Event[f], fieldType("event."+f))
	}
	for _, f := range []string{"event_id", "order_id", "occurred_at", "payload"} {
		if _, ok := rc.Event[f]; !ok {
			fail("event."+f, "", errors.New("required"))
		}
	}
	return r, errs
}

// fieldType is the type a rule's expression must have, by its field's name in errors;
// nil: any.
func fieldType(field string) *cel.Type {
	switch field {
	case "match":
		return cel.BoolType
	case "event.event_id", "event.order_id", "event.source":
		return cel.StringType
	case "event.payload":
		return cel.MapType(cel.StringType, cel.DynType)
	}
	return nil
}

// compileAST compiles expr and checks that it can have the type want (nil: any): a
// type either way assignable passes (dyn, {} as map(dyn, dyn)), checked at run time.
func compileAST(env *cel.Env, expr string, want *cel.Type) (*cel.Ast, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if out := ast.OutputType(); want != nil && !want.IsAssignableType(out) && !out.IsAssignableType(want) {
		return nil, fmt.Errorf("the expression is %s, want %s", ast.OutputType(), want)
	}
	return ast, nil
}

// Input is what a rule sees of one record.
type Input struct {
	Topic     string
	Key       []byte
	Headers   map[string]string
	Timestamp time.Time
	// Record is the decoded value.
	Record avrocodec.Generic
}

// Result is what the mapping made of a record.
type Result struct {
	// Rule is the name of the rule that matched; empty when none did.
	Rule string
	// Event is the canonical event; valid when Rule is set.
	Event orderevents.Event
	// Ignored: no rule matched and the topic ignores unmatched records.
	Ignored bool
}

// Mapped reports whether the mapper has rules for topic.
func (m *Mapper) Mapped(topicName string) bool { return m != nil && m.topics[topicName] != nil }

// Topics returns the mapped topics, sorted.
func (m *Mapper) Topics() []string { return slices.Sorted(maps.Keys(m.topics)) }

// Map applies the first rule of the record's topic that matches it. A record no rule
// matches is Ignored or an *Error with reason unmapped; a rule that fails is an *Error
// with reason mapping_failed (or the event's own reason, e.g. invalid_event).
func (m *Mapper) Map(in Input) (Result, error) {
	t := m.topics[in.Topic]
	if t == nil {
		return Result{}, &Error{Topic: in.Topic, Code: ReasonUnmapped, Err: errors.New("the topic has no mapping")}
	}
	vars := map[string]any{
		"value": in.Record.Value, "record_name": in.Record.Name, "key": string(in.Key),
		"headers": headersOrEmpty(in.Headers), "timestamp": in.Timestamp.UTC(), "topic": in.Topic,
	}
	size := inputSize(in)
	for _, r := range t.rules {
		if r.match != nil {
			out, err := r.match.eval(vars, size)
			if err != nil {
				return Result{}, &Error{Topic: t.name, Rule: r.Name, Field: "match", Expr: r.Match, Code: ReasonMappingFailed, Err: err}
			}
			if b, ok := out.(types.Bool); !ok || !bool(b) {
				continue
			}
		}
		ev, err := m.build(t, r, vars, size)
		if err != nil {
			return Result{}, err
		}
		return Result{Rule: r.Name, Event: ev}, nil
	}
	if t.unmatched == UnmatchedIgnore {
		return Result{Ignored: true}, nil
	}
	return Result{}, &Error{Topic: t.name, Code: ReasonUnmapped, Err: fmt.Errorf("no rule matches a %s record", orUnnamed(in.Record.Name))}
}

func orUnnamed(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	return name
}

func headersOrEmpty(h map[string]string) map[string]string {
	if h == nil {
		return map[string]string{}
	}
	return h
}

// build evaluates a matching rule's fields into a validated event.
func (m *Mapper) build(t *topic, r *rule, vars map[string]any, size uint64) (orderevents.Event, error) {
	fail := func(field string, err error) error {
		return &Error{Topic: t.name, Rule: r.Name, Field: field, Expr: r.Event[strings.TrimPrefix(field, "event.")], Code: ReasonMappingFailed, Err: err}
	}
	native := map[string]any{"source": t.name}
	for _, f := range Fields {
		p := r.fields[f]
		if p == nil {
			continue
		}
		out, err := p.eval(vars, size)
		if err != nil {
			return orderevents.Event{}, fail("event."+f, err)
		}
		var sh *shape
		if f == "payload" {
			sh = m.schema.payloads[r.Kind]
		}
		v, ferr := toGo(out, sh)
		if ferr != nil {
			root := ""
			if sh != nil {
				root = r.Kind
			}
			return orderevents.Event{}, fail("event."+f, ferr.in(root))
		}
		switch f {
		case "occurred_at":
			at, err := timeOf(v)
			if err != nil {
				return orderevents.Event{}, fail("event."+f, err)
			}
			native[f] = at
		case "payload":
			pm, ok := v.(map[string]any)
			if !ok {
				return orderevents.Event{}, fail("event."+f, fmt.Errorf("a map of the %s fields, not %T", r.Kind, v))
			}
			native[f] = map[string]any{r.Kind: pm}
		case "event_id", "order_id", "source", "partner_id":
			if v == nil {
				delete(native, f)
				continue
			}
			s, ok := v.(string)
			if !ok {
				return orderevents.Event{}, fail("event."+f, fmt.Errorf("a string, not %T", v))
			}
			native[f] = s
		}
	}
	ev, err := avrocodec.FromNative(native)
	if err != nil {
		code := avrocodec.ReasonOf(err)
		if code != avrocodec.ReasonInvalidEvent {
			code = ReasonMappingFailed
		}
		return ev, &Error{Topic: t.name, Rule: r.Name, Code: code, Err: err}
	}
	return ev, nil
}

// timeOf reads an occurred_at value: a timestamp, epoch milliseconds, or RFC 3339 text.
func timeOf(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case int64:
		return time.UnixMilli(x).UTC(), nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("not an RFC 3339 time: %w", err)
		}
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("a timestamp, epoch milliseconds or RFC 3339 text, not %T", v)
}

// toGo turns a CEL value into plain Go: nil, bool, int64, float64, string, []byte,
// time.Time, []any and map[string]any. A map converted with a record's shape s may hold
// only that record's fields, at any depth (a nil shape takes any key), so that a
// misspelt field fails the record (mapping_failed) instead of being dropped without a
// word; the check rides on the conversion, one pass over the value.
func toGo(v ref.Val, s *shape) (any, *fieldError) {
	switch x := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(x), nil
	case types.Int:
		return int64(x), nil
	case types.Double:
		return float64(x), nil
	case types.String:
		return string(x), nil
	case types.Bytes:
		return []byte(x), nil
	case types.Uint:
		return int64(x), nil
	case types.Timestamp:
		return x.UTC(), nil
	}
	// Lists and maps the rule built (literals, comprehensions) hold CEL values: read them
	// as they are, without an iterator and a lookup per entry.
	switch raw := v.Value().(type) {
	case []ref.Val:
		out := make([]any, 0, len(raw))
		for i, e := range raw {
			x, err := toGo(e, s)
			if err != nil {
				return nil, err.under("[" + strconv.Itoa(i) + "]")
			}
			out = append(out, x)
		}
		return out, nil
	case map[ref.Val]ref.Val:
		out := make(map[string]any, len(raw))
		for k, e := range raw {
			x, err := toGoEntry(k, e, s)
			if err != nil {
				return nil, err
			}
			out[string(k.(types.String))] = x
		}
		return out, nil
	}
	switch v.Type() {
	case types.ListType:
		l := v.(traits.Lister)
		n := int(l.Size().(types.Int))
		out := make([]any, 0, n)
		for i := range n {
			x, err := toGo(l.Get(types.Int(i)), s)
			if err != nil {
				return nil, err.under("[" + strconv.Itoa(i) + "]")
			}
			out = append(out, x)
		}
		return out, nil
	case types.MapType:
		mp := v.(traits.Mapper)
		out := make(map[string]any, int(mp.Size().(types.Int)))
		for it := mp.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			x, err := toGoEntry(k, mp.Get(k), s)
			if err != nil {
				return nil, err
			}
			out[string(k.(types.String))] = x
		}
		return out, nil
	}
	if n, err := v.ConvertToNative(reflect.TypeFor[any]()); err == nil {
		return n, nil
	}
	return nil, &fieldError{err: fmt.Errorf("a %s value cannot be an event field", v.Type())}
}

// toGoEntry converts one entry of a map built with the record shape s.
func toGoEntry(k, v ref.Val, s *shape) (any, *fieldError) {
	ks, ok := k.(types.String)
	if !ok {
		return nil, &fieldError{err: fmt.Errorf("a map key is %s, not a string", k.Type())}
	}
	var sub *shape
	if s != nil {
		var known bool
		if sub, known = s.fields[string(ks)]; !known {
			return nil, &fieldError{missing: string(ks), have: s.fieldNames()}
		}
	}
	x, err := toGo(v, sub)
	if err != nil {
		return nil, err.under("." + string(ks))
	}
	return x, nil
}
