package avrocodec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Generic is a record of any Avro schema, decoded with its writer's schema: what a
// merchant's own events look like before a mapping makes order events of them.
type Generic struct {
	// Name is the full name of the writer schema's record (e.g. com.shop.OrderCreated).
	Name string
	// Value is the datum in the standard JSON form: records are maps by field name,
	// unions are their value (not wrapped in a map by branch name), longs and ints are
	// int64, floats float64, bytes and fixed strings (as Avro's JSON encoding writes
	// them), timestamps their number (e.g. milliseconds).
	Value any
	// Schema is the writer schema.
	Schema string
}

// plainCodecs are, by writer codec, its standard-JSON codec and record name.
var plainCodecs sync.Map // *goavro.Codec → *plainCodec

type plainCodec struct {
	std  *goavro.Codec
	name string
	// walk turns the native form into the standard JSON form directly; nil when the
	// schema needs the JSON round trip (plain.go).
	walk plainer
}

// DecodeGeneric decodes a record value of any schema the codec can resolve (Confluent
// framing through the registry, single-object encoding by fingerprint), with the same
// dead-letter reasons as [Codec.Decode] for what does not decode.
func (c *Codec) DecodeGeneric(ctx context.Context, value []byte) (g Generic, err error) {
	defer recoverDecode(&err)
	wc, native, err := c.native(ctx, value)
	if err != nil {
		return g, err
	}
	return plain(wc, native)
}

// GenericFromJSON reads a datum written in the standard JSON form of schema (unions not
// wrapped): records for `ucprelay mapping test` and tests, as an integrator writes them.
func GenericFromJSON(schema string, text []byte) (Generic, error) {
	wc, err := goavro.NewCodecForStandardJSONFull(schema)
	if err != nil {
		return Generic{}, fmt.Errorf("avrocodec: writer schema: %w", err)
	}
	native, _, err := wc.NativeFromTextual(text)
	if err != nil {
		return Generic{}, decodeErr(ReasonCorruptPayload, "the value does not match its schema: %v", err)
	}
	return plain(wc, native)
}

// plain turns a native datum of wc into its standard JSON form.
func plain(wc *goavro.Codec, native any) (Generic, error) {
	v, ok := plainCodecs.Load(wc)
	if !ok {
		std, err := goavro.NewCodecForStandardJSONFull(wc.Schema())
		if err != nil {
			return Generic{}, decodeErr(ReasonCorruptPayload, "writer schema: %v", err)
		}
		walk, _ := newPlainer(wc.Schema()) // errUnplain or a schema goavro took but the walk does not: the round trip
		v, _ = plainCodecs.LoadOrStore(wc, &plainCodec{std: std, name: recordName(wc.Schema()), walk: walk})
	}
	pc := v.(*plainCodec)
	if pc.walk != nil {
		datum, err := pc.walk(native)
		if err != nil {
			return Generic{}, decodeErr(ReasonCorruptPayload, "%v", err)
		}
		return Generic{Name: pc.name, Value: datum, Schema: wc.Schema()}, nil
	}
	return pc.roundTrip(wc, native)
}

// roundTrip is the standard JSON form by way of goavro's text: for the schemas the walk
// leaves to it (bytes, fixed, decimal, other logical types).
func (pc *plainCodec) roundTrip(wc *goavro.Codec, native any) (Generic, error) {
	text, err := pc.std.TextualFromNative(nil, native)
	if err != nil {
		return Generic{}, decodeErr(ReasonCorruptPayload, "%v", err)
	}
	d := json.NewDecoder(bytes.NewReader(text))
	d.UseNumber()
	var datum any
	if err := d.Decode(&datum); err != nil {
		return Generic{}, decodeErr(ReasonCorruptPayload, "%v", err)
	}
	return Generic{Name: pc.name, Value: numbers(datum), Schema: wc.Schema()}, nil
}

// recordName is the full name of a schema's top-level record.
func recordName(schema string) string {
	var head struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	_ = json.Unmarshal([]byte(schema), &head)
	if head.Namespace != "" && !strings.Contains(head.Name, ".") {
		return head.Namespace + "." + head.Name
	}
	return head.Name
}

// numbers turns json.Number into int64 (or float64 for a fraction) throughout v.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// FromNative builds an order event from its native form by the current schema's field
// names: event_id, order_id, occurred_at (time.Time or int64 milliseconds), source,
// partner_id, and payload, a map of one payload kind's name (e.g. "OrderPlaced") to its
// fields. Optional fields may be plain values or absent. The event is validated like a
// decoded one; the errors carry dead-letter reasons.
func FromNative(native map[string]any) (orderevents.Event, error) {
	return fromNative(native)
}
