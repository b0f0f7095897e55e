package avrocodec_test

import (
	"encoding/binary"

	"github.com/linkedin/goavro/v2"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// encodeWith encodes ev with another writer schema (a newer producer), in the Confluent
// framing with id; giftWrapped replaces the payload by the v2-only branch.
func encodeWith(schema string, id int, ev orderevents.Event, giftWrapped bool) ([]byte, error) {
	c, err := goavro.NewCodec(schema)
	if err != nil {
		return nil, err
	}
	p := ev.Payload.(orderevents.OrderPlaced)
	lines := []any{}
	for _, l := range p.LineItems {
		totals := []any{}
		for _, t := range l.Totals {
			totals = append(totals, map[string]any{"type": t.Type, "amount": t.Amount, "display_text": nil})
		}
		img := any(nil)
		if l.Item.ImageURL != "" {
			img = goavro.Union("string", l.Item.ImageURL)
		}
		lines = append(lines, map[string]any{"id": l.ID, "parent_id": nil, "quantity": l.Quantity, "totals": totals,
			"item": map[string]any{"id": l.Item.ID, "title": l.Item.Title, "price": l.Item.Price, "image_url": img}})
	}
	exps := []any{}
	for _, x := range p.Expectations {
		qs := []any{}
		for _, q := range x.Lines {
			qs = append(qs, map[string]any{"line_id": q.LineID, "quantity": q.Quantity})
		}
		d := x.Destination
		s := func(v string) any {
			if v == "" {
				return nil
			}
			return goavro.Union("string", v)
		}
		exps = append(exps, map[string]any{"id": x.ID, "lines": qs, "method_type": x.MethodType,
			"description": s(x.Description), "fulfillable_on": s(x.FulfillableOn),
			"destination": map[string]any{"full_name": s(d.FullName), "first_name": s(d.FirstName), "last_name": s(d.LastName),
				"street_address": s(d.StreetAddress), "extended_address": s(d.ExtendedAddress), "locality": s(d.Locality),
				"region": s(d.Region), "postal_code": s(d.PostalCode), "country": s(d.Country), "phone_number": s(d.PhoneNumber)}})
	}
	totals := []any{}
	for _, t := range p.Totals {
		totals = append(totals, map[string]any{"type": t.Type, "amount": t.Amount, "display_text": goavro.Union("string", t.DisplayText)})
	}
	payload := goavro.Union("dev.ucprelay.order.v1.OrderPlaced", map[string]any{
		"checkout_id": p.CheckoutID, "permalink_url": p.PermalinkURL, "label": goavro.Union("string", p.Label),
		"currency": p.Currency, "line_items": lines, "expectations": exps, "totals": totals})
	if giftWrapped {
		payload = goavro.Union("dev.ucprelay.order.v1.GiftWrapped", map[string]any{"note": "for you"})
	}
	native := map[string]any{"event_id": ev.ID, "order_id": ev.OrderID, "occurred_at": ev.OccurredAt,
		"source": ev.Source, "tenant": goavro.Union("string", "t1"), "partner_id": goavro.Union("string", ev.PartnerID), "payload": payload}
	buf := make([]byte, 5)
	binary.BigEndian.PutUint32(buf[1:], uint32(id))
	return c.BinaryFromNative(buf, native)
}
