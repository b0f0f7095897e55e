package mapping_test

import (
	"os"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/internal/mapping"
)

func writer(t *testing.T, topic, file string) mapping.Writer {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return mapping.Writer{Topic: topic, Source: file, Schema: string(b)}
}

// The rules are checked against the writer schemas: a misspelt field, an operation on a
// field of the wrong type and an expression of the wrong type fail at start, named by
// topic, rule, field and expression; a rule whose match rules the record out is not
// checked against it.
func TestCheckAgainstWriterSchemas(t *testing.T) {
	t.Parallel()
	orders := writer(t, "shop.orders", "testdata/order_created.avsc")
	shipments := writer(t, "shop.shipments", "testdata/shipment_dispatched.avsc")
	good, err := mapping.New([]mapping.Topic{{Name: "shop.orders", Rules: []mapping.Rule{placedRule}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Check([]mapping.Writer{orders, shipments}); err != nil {
		t.Fatalf("the shop's rule against its schema: %v", err)
	}

	with := func(name string, change func(*mapping.Rule)) mapping.Rule {
		r := placedRule
		r.Name = name
		r.Event = map[string]string{}
		for k, v := range placedRule.Event {
			r.Event[k] = v
		}
		change(&r)
		return r
	}
	rules := []mapping.Rule{
		with("misspelt", func(r *mapping.Rule) { r.Match = `value.chanel == "google"` }),
		with("nested-misspelt", func(r *mapping.Rule) {
			r.Event["payload"] = strings.Replace(placedRule.Event["payload"], `"quantity": i.qty`, `"quantity": i.quantity`, 1)
		}),
		with("wrong-type", func(r *mapping.Rule) { r.Event["event_id"] = `"created-" + value.number` }),
		with("not-a-string", func(r *mapping.Rule) { r.Event["order_id"] = `value.number` }),
		// Never a match for an OrderCreated: not checked against it.
		with("other-record", func(r *mapping.Rule) {
			r.Match = `record_name == "com.shop.orders.OrderCancelled" && value.reason != ""`
			r.Event["event_id"] = `"cancelled-" + value.id + value.reason`
		}),
		// Ready for a field a newer version adds: its presence is tested first.
		with("guarded", func(r *mapping.Rule) {
			r.Event["event_id"] = `has(value.source_system) ? value.source_system + value.id : "created-" + value.id`
			r.Event["partner_id"] = `"sales_channel" in value ? value.sales_channel : value.channel`
		}),
	}
	m, err := mapping.New([]mapping.Topic{{Name: "shop.orders", Rules: rules}})
	if err != nil {
		t.Fatalf("the rules compile untyped: %v", err)
	}
	err = m.Check([]mapping.Writer{orders})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`topic shop.orders, rule misspelt, match (value.chanel == "google"): with value a com.shop.orders.OrderCreated (testdata/order_created.avsc): ERROR: <input>:1:6: undefined field 'chanel'`,
		`rule nested-misspelt, event.payload`, `undefined field 'quantity'`,
		`rule wrong-type, event.event_id ("created-" + value.number)`, `found no matching overload for '_+_' applied to '(string, int)'`,
		`rule not-a-string, event.order_id (value.number): with value a com.shop.orders.OrderCreated (testdata/order_created.avsc): the expression is int, want string`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	for _, not := range []string{"rule other-record", "rule guarded"} {
		if strings.Contains(err.Error(), not) {
			t.Errorf("the error names %s:\n%v", not, err)
		}
	}
	if n := strings.Count(err.Error(), "mapping: topic "); n != 4 {
		t.Errorf("%d errors, want 4:\n%v", n, err)
	}
}

// The versions of a record are merged: a field of any version may be read; a schema that
// does not parse is named; writers of unmapped topics are left alone.
func TestCheckMergesVersions(t *testing.T) {
	t.Parallel()
	v1 := writer(t, "shop.orders", "testdata/order_created.avsc")
	v2 := v1
	v2.Source = "v2"
	v2.Schema = strings.Replace(v1.Schema, `{"name": "tax_cents", "type": "long"}`,
		`{"name": "tax_cents", "type": "long"}, {"name": "gift", "type": "boolean", "default": false}`, 1)
	r := placedRule
	r.Match = placedRule.Match + ` && !value.gift`
	m, err := mapping.New([]mapping.Topic{{Name: "shop.orders", Rules: []mapping.Rule{r}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check([]mapping.Writer{v1, v2, {Topic: "shop.other", Source: "x", Schema: "not json"}}); err != nil {
		t.Fatalf("v1 and v2: %v", err)
	}
	err = m.Check([]mapping.Writer{v1})
	if err == nil || !strings.Contains(err.Error(), "undefined field 'gift'") {
		t.Fatalf("v1 alone: %v", err)
	}
	err = m.Check([]mapping.Writer{v2, {Topic: "shop.orders", Source: "subject shop.orders-value version 9", Schema: `{"type": "record"`}})
	if err == nil || !strings.Contains(err.Error(), "writer schema of subject shop.orders-value version 9") {
		t.Fatalf("a schema that does not parse: %v", err)
	}
}

// An optional record is checked field by field and compares with null; enums are
// strings, maps of strings are maps, and a record named again by its name is the same.
func TestCheckOptionalRecordsAndNamedTypes(t *testing.T) {
	t.Parallel()
	schema := `{"type": "record", "name": "Placed", "namespace": "com.shop", "fields": [
		{"name": "id", "type": "string"},
		{"name": "at", "type": "long"},
		{"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "OLD"]}},
		{"name": "tags", "type": {"type": "map", "values": "string"}},
		{"name": "ship_to", "type": ["null", {"type": "record", "name": "Addr", "fields": [{"name": "city", "type": "string"}]}], "default": null},
		{"name": "bill_to", "type": "Addr"}]}`
	rule := func(payload string) mapping.Rule {
		return mapping.Rule{Name: "r", Kind: "OrderDetailsChanged", Event: map[string]string{
			"event_id": `value.id + value.status`, "order_id": `value.id`, "occurred_at": `millis(value.at)`, "payload": payload}}
	}
	w := mapping.Writer{Topic: "t", Source: "inline", Schema: schema}
	for payload, want := range map[string]string{
		`{"attribution": {"city": value.ship_to != null ? value.ship_to.city : value.bill_to.city, "tag": value.tags["a"]}}`: "",
		`{"attribution": {"city": value.ship_to.town}}`:                                                                      "undefined field 'town'",
		`{"attribution": {"city": value.bill_to.town}}`:                                                                      "undefined field 'town'",
		`{"attribution": {"n": value.tags["a"] + 1}}`:                                                                        "no matching overload for '_+_' applied to '(string, int)'",
	} {
		m, err := mapping.New([]mapping.Topic{{Name: "t", Rules: []mapping.Rule{rule(payload)}}})
		if err != nil {
			t.Fatal(err)
		}
		err = m.Check([]mapping.Writer{w})
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", payload, err, want)
		}
	}
}
