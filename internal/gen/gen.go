// Package gen generates realistic order-domain events for the demo, tests and
// `ucprelay produce`: orders with one to three lines, an expectation with a US address,
// and totals that add up (8.25% tax on items, flat shipping).
package gen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

var products = []orderevents.Item{
	{ID: "SKU-TRS-42-BLU", Title: "Trail Running Shoe - Blue, US 10", Price: 12000, ImageURL: "https://cdn.shop.example.com/img/trs-42-blu.jpg"},
	{ID: "SKU-MWS-3PK-M", Title: "Merino Wool Running Socks (3-pack), M", Price: 2000},
	{ID: "SKU-HDL-250", Title: "Headlamp 250 lm", Price: 3450},
	{ID: "SKU-BTL-750", Title: "Insulated Bottle 750 ml", Price: 2890},
	{ID: "SKU-JKT-RAIN-L", Title: "Packable Rain Jacket, L", Price: 8900},
}

// Placed returns an OrderPlaced event for orderID, deterministic for a given seed.
func Placed(orderID, partner string, seed uint64, at time.Time) orderevents.Event {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	n := 1 + r.IntN(3)
	var (
		lines    []orderevents.PlacedLine
		refs     []orderevents.LineQuantity
		subtotal int64
	)
	for i := range n {
		it := products[(int(seed)+i)%len(products)]
		q := int64(1 + r.IntN(3))
		sub := it.Price * q
		tax := sub * 825 / 10000
		id := fmt.Sprintf("li_%d", i+1)
		lines = append(lines, orderevents.PlacedLine{ID: id, Item: it, Quantity: q, Totals: []orderevents.Total{
			{Type: "subtotal", Amount: sub}, {Type: "tax", Amount: tax}, {Type: "total", Amount: sub + tax},
		}})
		refs = append(refs, orderevents.LineQuantity{LineID: id, Quantity: q})
		subtotal += sub
	}
	var tax int64
	for _, l := range lines {
		tax += l.Totals[1].Amount
	}
	const shipping = 800
	return orderevents.Event{
		ID: orderID, OrderID: orderID, OccurredAt: at.UTC().Truncate(time.Millisecond), Source: "demo-shop", PartnerID: partner,
		Payload: orderevents.OrderPlaced{
			CheckoutID:   "chk_" + orderID,
			PermalinkURL: "https://shop.example.com/account/orders/" + orderID,
			Label:        fmt.Sprintf("#%d", 10000+seed%90000),
			Currency:     "USD",
			LineItems:    lines,
			Expectations: []orderevents.Expectation{{
				ID: "exp_1", Lines: refs, MethodType: "shipping", Description: "Arrives in 3-5 business days", FulfillableOn: "now",
				Destination: orderevents.Address{
					FirstName: "Alex", LastName: "Rivera", StreetAddress: "500 W 2nd St", Locality: "Austin",
					Region: "TX", PostalCode: "78701", Country: "US",
				},
			}},
			Totals: []orderevents.Total{
				{Type: "subtotal", Amount: subtotal, DisplayText: "Subtotal"},
				{Type: "fulfillment", Amount: shipping, DisplayText: "Shipping"},
				{Type: "tax", Amount: tax, DisplayText: "Sales tax"},
				{Type: "total", Amount: subtotal + shipping + tax, DisplayText: "Total"},
			},
		},
	}
}

// Lifecycle returns the events of one order, deterministic for a seed, in time order:
// the placement, then a shipment of every line, its delivery, and for one order in five
// a return of one unit with its refund, or for one in seven a cancellation instead of
// the shipment. Event ids are unique per order.
func Lifecycle(orderID, partner string, seed uint64, at time.Time) []orderevents.Event {
	placed := Placed(orderID, partner, seed, at)
	p := placed.Payload.(orderevents.OrderPlaced)
	var all []orderevents.LineQuantity
	for _, l := range p.LineItems {
		all = append(all, orderevents.LineQuantity{LineID: l.ID, Quantity: l.Quantity})
	}
	ev := func(kind string, after time.Duration, pl orderevents.Payload) orderevents.Event {
		return orderevents.Event{ID: orderID + "_" + kind, OrderID: orderID, OccurredAt: placed.OccurredAt.Add(after),
			Source: placed.Source, PartnerID: partner, Payload: pl}
	}
	if seed%7 == 3 {
		return []orderevents.Event{placed, ev("canceled", 30*time.Minute, orderevents.OrderCanceled{Description: "buyer asked"})}
	}
	tracking := fmt.Sprintf("1Z%010d", seed)
	evs := []orderevents.Event{
		placed,
		ev("shipped", 20*time.Hour, orderevents.FulfillmentRecorded{Type: "shipped", Lines: all, TrackingNumber: tracking,
			TrackingURL: "https://ups.example/track/" + tracking, Carrier: "UPS"}),
		ev("delivered", 50*time.Hour, orderevents.FulfillmentRecorded{Type: "delivered", Lines: all, TrackingNumber: tracking,
			TrackingURL: "https://ups.example/track/" + tracking, Carrier: "UPS", Description: "left at the front door"}),
	}
	if seed%5 == 1 {
		l := p.LineItems[0]
		unit := l.Totals[2].Amount / l.Quantity
		evs = append(evs,
			ev("returned", 100*time.Hour, orderevents.AdjustmentRecorded{Type: "return", Status: "completed",
				Lines: []orderevents.LineQuantity{{LineID: l.ID, Quantity: -1}}, Description: "did not fit"}),
			ev("refunded", 101*time.Hour, orderevents.AdjustmentRecorded{Type: "refund", Status: "completed", Currency: p.Currency,
				Lines:  []orderevents.LineQuantity{{LineID: l.ID, Quantity: -1}},
				Totals: []orderevents.Total{{Type: "total", Amount: -unit, DisplayText: "Refunded to card"}}}))
	}
	return evs
}
