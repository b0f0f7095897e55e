package avrocodec

import (
	"errors"
	"reflect"
	"testing"

	"github.com/linkedin/goavro/v2"
)

// The schema walk gives what the JSON round trip gives, for every type it handles:
// nested and recursive records, namespaces, unions of primitives and named types, arrays,
// maps, enums, ints, floats and the time logical types; a schema with bytes goes the
// round trip.
func TestPlainWalkMatchesRoundTrip(t *testing.T) {
	const schema = `{"type": "record", "name": "Outer", "namespace": "com.shop", "fields": [
		{"name": "id", "type": "string"},
		{"name": "n", "type": "int"},
		{"name": "big", "type": "long"},
		{"name": "ratio", "type": "float"},
		{"name": "price", "type": "double"},
		{"name": "flag", "type": "boolean"},
		{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
		{"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
		{"name": "day", "type": {"type": "int", "logicalType": "date"}},
		{"name": "tod", "type": {"type": "int", "logicalType": "time-millis"}},
		{"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["A", "B"]}},
		{"name": "maybe", "type": ["null", "string"], "default": null},
		{"name": "num", "type": ["null", "long", "string"], "default": null},
		{"name": "when", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
		{"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "namespace": "com.shop.lines",
			"fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"},
			           {"name": "again", "type": ["null", "com.shop.Status", "Line"], "default": null}]}}},
		{"name": "first", "type": ["null", "com.shop.lines.Line"], "default": null},
		{"name": "attrs", "type": {"type": "map", "values": ["null", "int"]}},
		{"name": "next", "type": ["null", "Outer"], "default": null}
	]}`
	const datum = `{"id": "o1", "n": 7, "big": 9007199254740993, "ratio": 1.1, "price": 12.75, "flag": true,
		"at": 1788000000123, "at_us": 1788000000123456, "day": 20500, "tod": 3600000, "status": "B",
		"maybe": "x", "num": 5, "when": 1788000000000,
		"lines": [{"sku": "A", "qty": 2, "again": "A"}, {"sku": "B", "qty": 1, "again": {"sku": "C", "qty": 3, "again": null}}],
		"first": {"sku": "Z", "qty": 9, "again": null}, "attrs": {"a": 1, "b": null},
		"next": {"id": "o2", "n": -1, "big": 0, "ratio": 0.5, "price": 0.25, "flag": false, "at": 0, "at_us": 0, "day": -3, "tod": 1,
			"status": "A", "maybe": null, "num": "five", "when": null, "lines": [], "first": null, "attrs": {}, "next": null}}`
	wc, err := goavro.NewCodecForStandardJSONFull(schema)
	if err != nil {
		t.Fatal(err)
	}
	walk, err := newPlainer(schema)
	if err != nil {
		t.Fatal(err)
	}
	native := func() any {
		n, _, err := wc.NativeFromTextual([]byte(datum))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	pc := &plainCodec{std: wc, name: "com.shop.Outer"}
	want, err := pc.roundTrip(wc, native())
	if err != nil {
		t.Fatal(err)
	}
	got, err := walk(native())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want.Value) {
		t.Fatalf("walk\n%#v\nround trip\n%#v", got, want.Value)
	}
	if _, err := newPlainer(`{"type": "record", "name": "R", "fields": [{"name": "b", "type": "bytes"}]}`); !errors.Is(err, errUnplain) {
		t.Errorf("bytes: %v, want the round trip", err)
	}
}
