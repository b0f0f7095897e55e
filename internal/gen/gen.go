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
