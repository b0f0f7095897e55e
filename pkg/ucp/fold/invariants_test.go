package fold_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/orderevents/ordereventstest"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

func TestInvariantErrors(t *testing.T) {
	t.Parallel()
	p := placed8F3KQ2()
	ship := func(id, when string, lines ...any) orderevents.Event {
		return ev(id, when, orderevents.FulfillmentRecorded{Type: "shipped", Lines: lq(lines...), TrackingNumber: "t", TrackingURL: "https://t"})
	}
	cases := []struct {
		name    string
		evs     []orderevents.Event
		err     error
		reason  string
		eventID string
	}{
		{"ship more than ordered", []orderevents.Event{p, ship("s1", "2026-09-16T00:00:00Z", "li_2", 3)}, fold.ErrOverFulfilled, "over_fulfilled", "s1"},
		{"ship more than remains", []orderevents.Event{p, ship("s1", "2026-09-16T00:00:00Z", "li_2", 2), ship("s2", "2026-09-17T00:00:00Z", "li_2", 1)}, fold.ErrOverFulfilled, "over_fulfilled", "s2"},
		{"ship a cancelled unit", []orderevents.Event{p, partCancel, ship("s1", "2026-09-16T00:00:00Z", "li_2", 2)}, fold.ErrOverFulfilled, "over_fulfilled", "s1"},
		{"cancel a shipped unit", []orderevents.Event{p, ship("s1", "2026-09-15T15:00:00Z", "li_1", 1), ev("c1", "2026-09-15T16:00:00Z", orderevents.LinesCanceled{Lines: lq("li_1", 1)})}, fold.ErrOverCanceled, "over_canceled", "c1"},
		{"return more than held", []orderevents.Event{p, ev("r1", "2026-09-20T00:00:00Z", orderevents.AdjustmentRecorded{Type: "return", Status: "completed", Lines: lq("li_1", -2)})}, fold.ErrNegativeQuantity, "negative_quantity", "r1"},
		{"unknown line in shipment", []orderevents.Event{p, ship("s1", "2026-09-16T00:00:00Z", "li_9", 1)}, fold.ErrUnknownLine, "unknown_line", "s1"},
		{"unknown line in expectations", []orderevents.Event{p, ev("x1", "2026-09-16T00:00:00Z", orderevents.ExpectationsChanged{Expectations: []orderevents.Expectation{exp("e", "", "", lq("li_7", 1))}})}, fold.ErrUnknownLine, "unknown_line", "x1"},
		{"currency mismatch", []orderevents.Event{p, ev("a1", "2026-09-16T00:00:00Z", orderevents.AdjustmentRecorded{Type: "refund", Status: "completed", Currency: "EUR"})}, fold.ErrCurrencyMismatch, "currency_mismatch", "a1"},
		{"events before placement", []orderevents.Event{shipped1}, fold.ErrNotPlaced, "orphan", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := fold.Fold(c.evs)
			var fe *fold.Error
			if !errors.Is(err, c.err) || !errors.As(err, &fe) || fe.Reason() != c.reason || fe.EventID != c.eventID {
				t.Fatalf("want %v (%s, event %q), got %v (%+v)", c.err, c.reason, c.eventID, err, fe)
			}
		})
	}
}

// A placement folded together with events that occurred before it (clock skew) still
// applies the placement first.
func TestPlacementAppliesFirst(t *testing.T) {
	t.Parallel()
	early := shipped1
	early.OccurredAt = at("2026-09-15T00:00:00Z") // before the placement's time
	s, err := fold.Fold([]orderevents.Event{early, placed8F3KQ2()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Order.LineItems[0].Quantity.Fulfilled != 1 || s.WebhookID != "ord_8F3KQ2" {
		t.Fatalf("snapshot %+v %s", s.Order.LineItems[0].Quantity, s.WebhookID)
	}
}

// An adjustment updated in place (pending → completed) replaces the entry, applies its
// quantity once, and the snapshot gets a fresh, deterministic Webhook-Id.
func TestAdjustmentUpdatedInPlace(t *testing.T) {
	t.Parallel()
	pending := ev("ret_req", "2026-09-20T00:00:00Z", orderevents.AdjustmentRecorded{AdjustmentID: "ret_1", Type: "return", Status: "pending", Lines: lq("li_2", -1)})
	done := ev("ret_done", "2026-09-21T00:00:00Z", orderevents.AdjustmentRecorded{AdjustmentID: "ret_1", Type: "return", Status: "completed", Lines: lq("li_2", -1), Description: "received"})
	s1, err := fold.Fold([]orderevents.Event{placed8F3KQ2(), pending})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := fold.Fold([]orderevents.Event{placed8F3KQ2(), pending, done})
	if err != nil {
		t.Fatal(err)
	}
	if len(s2.Order.Adjustments) != 1 || s2.Order.Adjustments[0].Status != "completed" || s2.Order.LineItems[1].Quantity.Total != 1 {
		t.Fatalf("in-place update: %+v, li_2 %+v", s2.Order.Adjustments, s2.Order.LineItems[1].Quantity)
	}
	if s1.WebhookID != "ret_1" || s2.WebhookID == "ret_1" || len(s2.WebhookID) != 36 {
		t.Fatalf("webhook ids %q then %q", s1.WebhookID, s2.WebhookID)
	}
	again, _ := fold.Fold([]orderevents.Event{done, pending, placed8F3KQ2()})
	if again.WebhookID != s2.WebhookID {
		t.Fatal("UUIDv5 webhook id is not deterministic")
	}
}

// The 2026-01-11 substance of the seed document's two examples (order created, then
// shipped), completed where the printed examples are not schema-valid (ucp-order.md §5).
func TestGolden20260111(t *testing.T) {
	t.Parallel()
	val, err := ucpschema.New("2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	placed := orderevents.Event{ID: "evt_created", OrderID: "order_123", OccurredAt: at("2026-01-15T10:00:00Z"), Source: "shop",
		Payload: orderevents.OrderPlaced{
			CheckoutID: "checkout_456", PermalinkURL: "https://merchant.example.com/orders/order_123", Currency: "USD",
			LineItems: []orderevents.PlacedLine{{ID: "line_1", Quantity: 1, Item: orderevents.Item{ID: "product_12345", Title: "Product", Price: 10000},
				Totals: []orderevents.Total{{Type: "subtotal", Amount: 10000}, {Type: "total", Amount: 10000}}}},
			Expectations: []orderevents.Expectation{{ID: "exp_1", Lines: lq("line_1", 1), MethodType: "shipping",
				Destination: orderevents.Address{FullName: "Jane Doe", StreetAddress: "123 Main St", Locality: "Austin", Region: "TX", PostalCode: "78701", Country: "US"},
				Description: "Arrives in 3-5 business days"}},
			Totals: []orderevents.Total{{Type: "subtotal", Amount: 10000}, {Type: "total", Amount: 10000}},
		}}
	shipped := orderevents.Event{ID: "evt_shipped", OrderID: "order_123", OccurredAt: at("2026-01-16T09:00:00Z"), Source: "wms",
		Payload: orderevents.FulfillmentRecorded{Type: "shipped", Lines: lq("line_1", 1), TrackingNumber: "1Z999AA10123456784",
			TrackingURL: "https://www.ups.com/track?tracknum=1Z999AA10123456784", Carrier: "UPS"}}
	steps := []struct {
		events             []orderevents.Event
		status             string
		total, fulfilled   float64
		eventID            string
		wantShippedTracked bool
	}{
		{[]orderevents.Event{placed}, "processing", 1, 0, "order_123", false},
		{[]orderevents.Event{placed, shipped}, "fulfilled", 1, 1, "evt_shipped", true},
	}
	for _, st := range steps {
		s, err := fold.Fold(st.events)
		if err != nil {
			t.Fatal(err)
		}
		body, err := ucp.Marshal(s.Order, ucp.V20260111, fold.NextEnvelope(s, time.Time{}, time.Time{}).Body())
		if err != nil {
			t.Fatal(err)
		}
		if err := val.Validate(body); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		m := decode(t, body)
		line := m["line_items"].([]any)[0].(map[string]any)
		q := line["quantity"].(map[string]any)
		if line["id"] != "line_1" || line["item"].(map[string]any)["id"] != "product_12345" || line["item"].(map[string]any)["price"] != 10000.0 ||
			q["total"] != st.total || q["fulfilled"] != st.fulfilled || line["status"] != st.status || m["event_id"] != st.eventID {
			t.Fatalf("substance differs: %s", body)
		}
		x := m["fulfillment"].(map[string]any)["expectations"].([]any)[0].(map[string]any)
		if x["destination"].(map[string]any)["address_locality"] != "Austin" {
			t.Fatalf("Austin expectation missing: %s", body)
		}
		evs := m["fulfillment"].(map[string]any)["events"].([]any)
		if st.wantShippedTracked {
			e := evs[0].(map[string]any)
			if e["type"] != "shipped" || e["tracking_number"] != "1Z999AA10123456784" || !strings.HasPrefix(e["tracking_url"].(string), "https://") {
				t.Fatalf("shipped event: %s", body)
			}
		}
		if _, ok := m["ucp"].(map[string]any)["capabilities"].([]any); !ok {
			t.Fatalf("01-11 capabilities must be an array: %s", body)
		}
	}
}

// FuzzFold: any set of decodable events folds without panicking, and whatever folds
// renders to a valid body in every version it can be expressed in.
func FuzzFold(f *testing.F) {
	f.Add(uint64(1), uint8(3), int64(1))
	f.Add(uint64(7), uint8(9), int64(-2))
	f.Fuzz(func(t *testing.T, seed uint64, n uint8, q int64) {
		all := []orderevents.Event{placed8F3KQ2(), split, shipped1, delivered1, shipped2, deliveredExp, delivered2,
			partCancel, partExp, partRefund, fullCancel, fullExp, fullRefund, returned, returnRefund,
			ev("odd", "2026-09-20T00:00:00Z", orderevents.AdjustmentRecorded{Type: "return", Status: "pending", Lines: lq("li_1", int(q%5))}),
			ev("odd2", "2026-09-21T00:00:00Z", orderevents.LinesCanceled{Lines: lq("li_2", int(q%3)+1)}),
		}
		var evs []orderevents.Event
		for i := range int(n%24) + 1 {
			evs = append(evs, all[(seed>>(i%60)+uint64(i)*seed)%uint64(len(all))])
		}
		s, err := fold.Fold(evs)
		if err != nil {
			var fe *fold.Error
			if !errors.As(err, &fe) || fe.Reason() == "fold_failed" {
				t.Fatalf("unclassified fold error: %v", err)
			}
			return
		}
		for _, l := range s.Order.LineItems {
			if l.Quantity.Total < 0 || l.Quantity.Fulfilled < 0 {
				t.Fatalf("negative quantity: %+v", l.Quantity)
			}
		}
		if _, err := ucp.Marshal(s.Order, ucp.V20260408, ucp.Envelope{}); err != nil {
			t.Fatal(err)
		}
	})
}

// Every payload kind folded together renders a schema-valid body in every version,
// with 2026-04-08's messages and attribution included.
func TestLifecycleValidInEveryVersion(t *testing.T) {
	t.Parallel()
	for _, evs := range [][]orderevents.Event{ordereventstest.Lifecycle("ord_x"), ordereventstest.Canceled("ord_y")} {
		s, err := fold.Fold(evs)
		if err != nil {
			t.Fatal(err)
		}
		s.Order.Messages = []ucp.Message{{Type: "info", Content: "Gift note added"}, {Type: "warning", Code: "delayed_fulfillment", Content: "Backordered item"}}
		env := fold.NextEnvelope(s, time.Time{}, time.Time{})
		for _, v := range ucp.Supported() {
			val, err := ucpschema.New(string(v))
			if err != nil {
				t.Fatal(err)
			}
			body, err := ucp.Marshal(s.Order, v, env.Body())
			if err != nil {
				t.Fatalf("%s: %v", v, err)
			}
			if err := val.Validate(body); err != nil {
				t.Errorf("%s: %v\n%s", v, err, body)
			}
			has := strings.Contains(string(body), `"attribution":{"gclid":"abc123","utm_source":"agent"}`)
			if (v == ucp.V20260408) != has && len(evs) > 2 {
				t.Errorf("%s: attribution present %v", v, has)
			}
		}
	}
}
