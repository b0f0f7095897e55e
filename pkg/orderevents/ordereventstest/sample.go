// Package ordereventstest provides deterministic sample events, one or more of every
// payload kind, for tests, golden encodings and benchmarks of the packages that read
// order events.
package ordereventstest

import (
	"strconv"
	"time"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Placed is the time of the sample order's placement.
var Placed = time.Date(2026, 9, 15, 14, 3, 12, 0, time.UTC)

func str(s string) *string { return &s }

// Lifecycle returns the history of one order: placement, a split shipment, delivery,
// an expectation change, a line cancellation, a return with its refund, a credit updated
// in place, a details change; every payload kind at least once, in time order.
func Lifecycle(orderID string) []orderevents.Event {
	addr := orderevents.Address{FirstName: "Alex", LastName: "Rivera", StreetAddress: "500 W 2nd St", Locality: "Austin", Region: "TX", PostalCode: "78701", Country: "US"}
	e := func(id string, after time.Duration, p orderevents.Payload) orderevents.Event {
		return orderevents.Event{ID: orderID + "_" + id, OrderID: orderID, OccurredAt: Placed.Add(after), Source: "shop", PartnerID: "google", Payload: p}
	}
	lines := func(kv ...int64) []orderevents.LineQuantity {
		var out []orderevents.LineQuantity
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, orderevents.LineQuantity{LineID: "li_" + strconv.FormatInt(kv[i], 10), Quantity: kv[i+1]})
		}
		return out
	}
	placed := e("placed", 0, orderevents.OrderPlaced{
		CheckoutID: "chk_" + orderID, PermalinkURL: "https://shop.example.com/orders/" + orderID, Label: "#10452", Currency: "USD",
		LineItems: []orderevents.PlacedLine{
			{ID: "li_1", Quantity: 1, Item: orderevents.Item{ID: "SKU-1", Title: "Trail Running Shoe", Price: 12000, ImageURL: "https://cdn.example.com/1.jpg"},
				Totals: []orderevents.Total{{Type: "subtotal", Amount: 12000}, {Type: "tax", Amount: 990}, {Type: "total", Amount: 12990}}},
			{ID: "li_2", Quantity: 3, Item: orderevents.Item{ID: "SKU-2", Title: "Running Socks (3-pack)", Price: 2000},
				Totals: []orderevents.Total{{Type: "subtotal", Amount: 6000}, {Type: "tax", Amount: 495}, {Type: "total", Amount: 6495}}},
		},
		Expectations: []orderevents.Expectation{{ID: "exp_1", Lines: lines(1, 1, 2, 3), MethodType: "shipping", Destination: addr, Description: "Arrives Sep 17", FulfillableOn: "now"}},
		Totals: []orderevents.Total{{Type: "subtotal", Amount: 18000, DisplayText: "Subtotal"}, {Type: "fulfillment", Amount: 800, DisplayText: "Shipping"},
			{Type: "tax", Amount: 1485, DisplayText: "Sales tax"}, {Type: "total", Amount: 20285, DisplayText: "Total"}},
		Attribution: map[string]string{"utm_source": "agent", "gclid": "abc123"},
	})
	return []orderevents.Event{
		placed,
		e("cxl", time.Hour, orderevents.LinesCanceled{Lines: lines(2, 1), Description: "out of stock"}),
		e("exp", 2*time.Hour, orderevents.ExpectationsChanged{Expectations: []orderevents.Expectation{
			{ID: "exp_1", Lines: lines(1, 1, 2, 1), MethodType: "shipping", Destination: addr, Description: "Arrives Sep 17"},
			{ID: "exp_2", Lines: lines(2, 1), MethodType: "shipping", Destination: addr, Description: "Backordered", FulfillableOn: "2026-09-22T00:00:00Z"},
		}}),
		e("ship1", 20*time.Hour, orderevents.FulfillmentRecorded{Type: "shipped", Lines: lines(1, 1, 2, 1), TrackingNumber: "1Z1", TrackingURL: "https://ups.example/1Z1", Carrier: "UPS"}),
		e("dlv1", 50*time.Hour, orderevents.FulfillmentRecorded{Type: "delivered", Lines: lines(1, 1, 2, 1), TrackingNumber: "1Z1", TrackingURL: "https://ups.example/1Z1", Carrier: "UPS", Description: "front door"}),
		e("ret1", 100*time.Hour, orderevents.AdjustmentRecorded{Type: "return", Status: "completed", Lines: lines(1, -1), Description: "too small"}),
		e("rfd1", 101*time.Hour, orderevents.AdjustmentRecorded{Type: "refund", Status: "completed", Currency: "USD", Lines: lines(1, -1),
			Totals: []orderevents.Total{{Type: "total", Amount: -12990, DisplayText: "Refunded to Visa"}}}),
		e("crd_p", 102*time.Hour, orderevents.AdjustmentRecorded{AdjustmentID: orderID + "_credit", Type: "credit", Status: "pending",
			Totals: []orderevents.Total{{Type: "total", Amount: -500}}, Description: "goodwill"}),
		e("crd_c", 103*time.Hour, orderevents.AdjustmentRecorded{AdjustmentID: orderID + "_credit", Type: "credit", Status: "completed",
			Totals: []orderevents.Total{{Type: "total", Amount: -500}}, Description: "goodwill"}),
		e("label", 104*time.Hour, orderevents.OrderDetailsChanged{Label: str("#10452-B")}),
	}
}

// Canceled returns a placement of orderID followed by a whole-order cancellation.
func Canceled(orderID string) []orderevents.Event {
	evs := Lifecycle(orderID)[:1]
	return append(evs, orderevents.Event{ID: orderID + "_ocxl", OrderID: orderID, OccurredAt: Placed.Add(time.Hour), Source: "shop",
		Payload: orderevents.OrderCanceled{Description: "buyer asked"}})
}
