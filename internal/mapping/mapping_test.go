package mapping_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// placedRule maps the shop's OrderCreated (testdata/order_created.avsc) to OrderPlaced.
var placedRule = mapping.Rule{
	Name:  "order-created",
	Match: `record_name == "com.shop.orders.OrderCreated" && value.channel == "google"`,
	Kind:  "OrderPlaced",
	Event: map[string]string{
		"event_id":    `"created-" + value.id`,
		"order_id":    `value.id`,
		"occurred_at": `millis(value.created_at)`,
		"partner_id":  `value.channel`,
		"payload": `{
			"checkout_id": "chk_" + value.id,
			"permalink_url": "https://shop.example.com/orders/" + value.id,
			"label": "#" + string(value.number),
			"currency": value.currency,
			"line_items": value.items.map(i, {
				"id": i.sku,
				"item": {"id": i.sku, "title": i.title, "price": i.unit_price_cents, "image_url": i.image},
				"quantity": i.qty,
				"totals": [{"type": "subtotal", "amount": i.unit_price_cents * i.qty}]
			}),
			"totals": [
				{"type": "subtotal", "amount": value.items.map(i, i.unit_price_cents * i.qty).sum()},
				{"type": "fulfillment", "amount": value.shipping_cents},
				{"type": "tax", "amount": value.tax_cents},
				{"type": "total", "amount": value.items.map(i, i.unit_price_cents * i.qty).sum() + value.shipping_cents + value.tax_cents}
			]
		}`,
	},
}

const created = `{"id": "ord_1001", "number": 1001, "created_at": 1788000000000, "channel": "google", "currency": "USD",
	"items": [{"sku": "SKU-1", "title": "Rain Jacket", "qty": 2, "unit_price_cents": 8900, "image": null},
	          {"sku": "SKU-2", "title": "Trail Shoe", "qty": 1, "unit_price_cents": 12000, "image": "https://cdn.example/s2.jpg"}],
	"shipping_cents": 800, "tax_cents": 2400}`

func record(t *testing.T, schemaFile, value string) avrocodec.Generic {
	t.Helper()
	schema, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	g, err := avrocodec.GenericFromJSON(string(schema), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestMapsAMerchantRecordToAnOrderEvent(t *testing.T) {
	t.Parallel()
	m, err := mapping.New([]mapping.Topic{{Name: "shop.orders", Rules: []mapping.Rule{placedRule}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Map(mapping.Input{Topic: "shop.orders", Key: []byte("ord_1001"), Record: record(t, "testdata/order_created.avsc", created)})
	if err != nil {
		t.Fatal(err)
	}
	ev := res.Event
	p, ok := ev.Payload.(orderevents.OrderPlaced)
	switch {
	case res.Rule != "order-created" || ev.ID != "created-ord_1001" || ev.OrderID != "ord_1001" || ev.PartnerID != "google" || ev.Source != "shop.orders":
		t.Fatalf("event %+v (rule %s)", ev, res.Rule)
	case !ev.OccurredAt.Equal(time.UnixMilli(1788000000000)):
		t.Errorf("occurred at %s", ev.OccurredAt)
	case !ok || len(p.LineItems) != 2 || p.LineItems[0].Quantity != 2 || p.LineItems[1].Item.ImageURL != "https://cdn.example/s2.jpg" || p.Label != "#1001":
		t.Errorf("payload %+v", ev.Payload)
	case len(p.Totals) != 4 || p.Totals[0].Amount != 2*8900+12000 || p.Totals[3].Amount != 2*8900+12000+800+2400:
		t.Errorf("totals %+v", p.Totals)
	}
}

// A record no rule matches is dead-lettered as unmapped, or ignored where the topic says so.
func TestUnmatched(t *testing.T) {
	t.Parallel()
	other := strings.Replace(created, `"google"`, `"web"`, 1)
	for _, u := range []mapping.Unmatched{"", mapping.UnmatchedIgnore} {
		m, err := mapping.New([]mapping.Topic{{Name: "shop.orders", Rules: []mapping.Rule{placedRule}, Unmatched: u}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Map(mapping.Input{Topic: "shop.orders", Record: record(t, "testdata/order_created.avsc", other)})
		switch {
		case u == mapping.UnmatchedIgnore && (err != nil || !res.Ignored):
			t.Errorf("ignore: %+v, %v", res, err)
		case u == "" && avrocodec.ReasonOf(err) != "" || u == "" && reasonOf(err) != mapping.ReasonUnmapped:
			t.Errorf("dead letter: %+v, %v", res, err)
		}
	}
}

func reasonOf(err error) string {
	var me *mapping.Error
	if errors.As(err, &me) {
		return me.Reason()
	}
	return ""
}

// A rule that fails on a record names itself, the field and the expression.
func TestRuleFailuresAtRunTime(t *testing.T) {
	t.Parallel()
	with := func(field, expr string) mapping.Rule {
		r := placedRule
		r.Event = map[string]string{}
		for k, v := range placedRule.Event {
			r.Event[k] = v
		}
		r.Event[field] = expr
		return r
	}
	cases := []struct {
		name   string
		rule   mapping.Rule
		reason string
		want   string
	}{
		{"missing field", with("order_id", `value.order_ref`), mapping.ReasonMappingFailed, "event.order_id (value.order_ref): no such key: order_ref"},
		{"wrong type", with("occurred_at", `value.currency`), mapping.ReasonMappingFailed, "event.occurred_at"},
		{"misspelt payload field", with("payload", `{"checkout_id": "c", "permalink_url": "u", "currency": "USD", "lines": []}`), mapping.ReasonMappingFailed, `OrderPlaced has no field "lines"`},
		{"nested misspelt field", with("payload", `{"checkout_id": "c", "permalink_url": "u", "currency": "USD", "line_items": [{"id": "l", "qty": 1}]}`), mapping.ReasonMappingFailed, `OrderPlaced.line_items[0] has no field "qty"`},
		{"invalid event", with("payload", `{"checkout_id": "c", "permalink_url": "u", "currency": "USD", "line_items": [{"id": "l", "item": {"id": "s", "title": "t", "price": 1}, "quantity": -1}]}`), "invalid_event", "quantity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m, err := mapping.New([]mapping.Topic{{Name: "shop.orders", Rules: []mapping.Rule{c.rule}}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Map(mapping.Input{Topic: "shop.orders", Record: record(t, "testdata/order_created.avsc", created)})
			if reasonOf(err) != c.reason || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "rule order-created") {
				t.Errorf("got %v (reason %q), want %s naming %q", err, reasonOf(err), c.reason, c.want)
			}
		})
	}
}

// Rules that do not compile are all refused at start, each named with its topic, rule,
// field and expression.
func TestCompileErrors(t *testing.T) {
	t.Parallel()
	bad := placedRule
	bad.Name = "broken"
	bad.Match = `value.channel = "google"`
	bad.Kind = "OrderShipped"
	bad.Event = map[string]string{"event_id": `1 + 1`, "order_id": `value.id`, "happened_at": `timestamp`, "payload": `{}`}
	_, err := mapping.New([]mapping.Topic{{Name: "shop.orders", Rules: []mapping.Rule{bad}, Unmatched: "drop"}, {Name: "shop.empty"}})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"topic shop.orders, rule broken, match (value.channel = \"google\")",
		`topic shop.orders, rule broken, kind: kind "OrderShipped" is none of`,
		"topic shop.orders, rule broken, event.event_id (1 + 1): the expression is int, want string",
		`event.happened_at: the event has no field "happened_at"`,
		"event.occurred_at: required",
		`unmatched is "drop"`,
		"topic shop.empty has no rules",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q:\n%v", want, err)
		}
	}
}
