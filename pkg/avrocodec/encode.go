package avrocodec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// The stored form of an event is its single-object encoding with ucprelay's own schema,
// written here straight from the struct: goavro's way (a native map per record, then the
// map walked by the schema) costs a map and a union wrapper per record and field, most of
// a mapped event's cost after the mapping itself. The bytes are goavro's, but for maps of
// more than one entry, which goavro writes in Go's random map order and this writes with
// the keys sorted (either decodes alike). New checks the two agree on events of every
// kind and falls back to goavro if they do not (a schema change the writer does not know).

// payloadIndex is each payload kind's branch in OrderEvent.payload.
var payloadIndex = map[orderevents.Kind]int64{
	orderevents.KindOrderPlaced: 0, orderevents.KindFulfillmentRecorded: 1, orderevents.KindExpectationsChanged: 2,
	orderevents.KindLinesCanceled: 3, orderevents.KindOrderCanceled: 4, orderevents.KindAdjustmentRecorded: 5,
	orderevents.KindOrderDetailsChanged: 6,
}

// appendEvent appends the Avro binary encoding of ev (without the single-object header).
func appendEvent(b []byte, ev orderevents.Event) ([]byte, error) {
	if ev.Payload == nil {
		return nil, fmt.Errorf("avrocodec: cannot encode payload %T", ev.Payload)
	}
	idx, ok := payloadIndex[ev.Payload.Kind()]
	if !ok {
		return nil, fmt.Errorf("avrocodec: cannot encode payload %T", ev.Payload)
	}
	b = appendString(b, ev.ID)
	b = appendString(b, ev.OrderID)
	at := ev.OccurredAt
	b = binary.AppendVarint(b, at.Unix()*1e3+int64(at.Nanosecond()/1e6))
	b = appendString(b, ev.Source)
	b = appendOptional(b, ev.PartnerID)
	b = binary.AppendVarint(b, idx)
	switch p := ev.Payload.(type) {
	case orderevents.OrderPlaced:
		b = appendString(b, p.CheckoutID)
		b = appendString(b, p.PermalinkURL)
		b = appendOptional(b, p.Label)
		b = appendString(b, p.Currency)
		b = appendCount(b, len(p.LineItems))
		for _, l := range p.LineItems {
			b = appendString(b, l.ID)
			b = appendOptional(b, l.ParentID)
			b = appendString(b, l.Item.ID)
			b = appendString(b, l.Item.Title)
			b = binary.AppendVarint(b, l.Item.Price)
			b = appendOptional(b, l.Item.ImageURL)
			b = binary.AppendVarint(b, l.Quantity)
			b = appendTotals(b, l.Totals)
		}
		b = appendEnd(b)
		b = appendExpectations(b, p.Expectations)
		b = appendTotals(b, p.Totals)
		b = appendCount(b, len(p.Attribution))
		for _, k := range slices.Sorted(maps.Keys(p.Attribution)) {
			b = appendString(b, k)
			b = appendString(b, p.Attribution[k])
		}
		b = appendEnd(b)
	case orderevents.FulfillmentRecorded:
		b = appendString(b, p.Type)
		b = appendLines(b, p.Lines)
		b = appendOptional(b, p.TrackingNumber)
		b = appendOptional(b, p.TrackingURL)
		b = appendOptional(b, p.Carrier)
		b = appendOptional(b, p.Description)
	case orderevents.ExpectationsChanged:
		b = appendExpectations(b, p.Expectations)
	case orderevents.LinesCanceled:
		b = appendLines(b, p.Lines)
		b = appendOptional(b, p.Description)
	case orderevents.OrderCanceled:
		b = appendOptional(b, p.Description)
	case orderevents.AdjustmentRecorded:
		b = appendOptional(b, p.AdjustmentID)
		b = appendString(b, p.Type)
		b = appendString(b, p.Status)
		b = appendLines(b, p.Lines)
		b = appendTotals(b, p.Totals)
		b = appendOptional(b, p.Currency)
		b = appendOptional(b, p.Description)
	case orderevents.OrderDetailsChanged:
		b = appendOptionalPtr(b, p.Label)
		b = appendOptionalPtr(b, p.PermalinkURL)
	default:
		return nil, fmt.Errorf("avrocodec: cannot encode payload %T", ev.Payload)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendVarint(b, int64(len(s)))
	return append(b, s...)
}

// appendOptional writes a ["null","string"] union, "" as null (as toNative does).
func appendOptional(b []byte, s string) []byte {
	if s == "" {
		return binary.AppendVarint(b, 0)
	}
	return appendString(binary.AppendVarint(b, 1), s)
}

func appendOptionalPtr(b []byte, s *string) []byte {
	if s == nil {
		return binary.AppendVarint(b, 0)
	}
	return appendString(binary.AppendVarint(b, 1), *s)
}

// appendCount opens an array or map of n items as one block (none for an empty one);
// appendEnd closes it.
func appendCount(b []byte, n int) []byte {
	if n == 0 {
		return b
	}
	return binary.AppendVarint(b, int64(n))
}

func appendEnd(b []byte) []byte { return binary.AppendVarint(b, 0) }

func appendTotals(b []byte, ts []orderevents.Total) []byte {
	b = appendCount(b, len(ts))
	for _, t := range ts {
		b = appendString(b, t.Type)
		b = binary.AppendVarint(b, t.Amount)
		b = appendOptional(b, t.DisplayText)
	}
	return appendEnd(b)
}

func appendLines(b []byte, qs []orderevents.LineQuantity) []byte {
	b = appendCount(b, len(qs))
	for _, q := range qs {
		b = appendString(b, q.LineID)
		b = binary.AppendVarint(b, q.Quantity)
	}
	return appendEnd(b)
}

func appendExpectations(b []byte, xs []orderevents.Expectation) []byte {
	b = appendCount(b, len(xs))
	for _, x := range xs {
		b = appendString(b, x.ID)
		b = appendLines(b, x.Lines)
		b = appendString(b, x.MethodType)
		d := x.Destination
		for _, s := range []string{d.FullName, d.FirstName, d.LastName, d.StreetAddress, d.ExtendedAddress,
			d.Locality, d.Region, d.PostalCode, d.Country, d.PhoneNumber} {
			b = appendOptional(b, s)
		}
		b = appendOptional(b, x.Description)
		b = appendOptional(b, x.FulfillableOn)
	}
	return appendEnd(b)
}

// soeHeader is the single-object header of a schema: the marker and its fingerprint.
func soeHeader(wc *goavro.Codec) []byte {
	return binary.LittleEndian.AppendUint64([]byte{soeMagic0, soeMagic1}, wc.Rabin)
}

// writerAgrees reports whether appendEvent writes what goavro writes with wc, on events of
// every kind with every field set and with every optional field empty.
func writerAgrees(wc *goavro.Codec) bool {
	for _, ev := range encoderSamples() {
		n, err := toNative(ev)
		if err != nil {
			return false
		}
		want, err := wc.SingleFromNative(nil, n)
		if err != nil {
			return false
		}
		got, err := appendEvent(soeHeader(wc), ev)
		if err != nil || !bytes.Equal(got, want) {
			return false
		}
	}
	return true
}

// encoderSamples are events of every kind, once with every field set (and one
// attribution, the most whose order goavro keeps) and once with every optional field
// and list empty.
func encoderSamples() []orderevents.Event {
	at := time.UnixMilli(1788000000123).UTC()
	lines := []orderevents.LineQuantity{{LineID: "l1", Quantity: 2}, {LineID: "l2", Quantity: -1}}
	totals := []orderevents.Total{{Type: "subtotal", Amount: 100, DisplayText: "Subtotal"}, {Type: "total", Amount: -5}}
	x := []orderevents.Expectation{{ID: "x1", Lines: lines, MethodType: "shipping", Description: "d", FulfillableOn: "now",
		Destination: orderevents.Address{FullName: "a", FirstName: "b", LastName: "c", StreetAddress: "d", ExtendedAddress: "e",
			Locality: "f", Region: "g", PostalCode: "h", Country: "i", PhoneNumber: "j"}}}
	label, url := "#1", "https://x"
	full := []orderevents.Payload{
		orderevents.OrderPlaced{CheckoutID: "c", PermalinkURL: "u", Label: "#1", Currency: "USD",
			LineItems: []orderevents.PlacedLine{{ID: "l1", ParentID: "p", Quantity: 2, Totals: totals,
				Item: orderevents.Item{ID: "i", Title: "t", Price: 150, ImageURL: "https://img"}}},
			Expectations: x, Totals: totals, Attribution: map[string]string{"k": "v"}},
		orderevents.FulfillmentRecorded{Type: "shipped", Lines: lines, TrackingNumber: "1Z", TrackingURL: "https://t", Carrier: "UPS", Description: "d"},
		orderevents.ExpectationsChanged{Expectations: x},
		orderevents.LinesCanceled{Lines: lines, Description: "d"},
		orderevents.OrderCanceled{Description: "d"},
		orderevents.AdjustmentRecorded{AdjustmentID: "a", Type: "refund", Status: "completed", Lines: lines, Totals: totals, Currency: "USD", Description: "d"},
		orderevents.OrderDetailsChanged{Label: &label, PermalinkURL: &url},
	}
	empty := []orderevents.Payload{
		orderevents.OrderPlaced{}, orderevents.FulfillmentRecorded{}, orderevents.ExpectationsChanged{},
		orderevents.LinesCanceled{}, orderevents.OrderCanceled{}, orderevents.AdjustmentRecorded{}, orderevents.OrderDetailsChanged{},
	}
	var out []orderevents.Event
	for _, p := range full {
		out = append(out, orderevents.Event{ID: "e", OrderID: "o", OccurredAt: at, Source: "s", PartnerID: "google", Payload: p})
	}
	for _, p := range empty {
		out = append(out, orderevents.Event{ID: "e", OrderID: "o", OccurredAt: at.Add(-time.Hour * 24 * 365 * 60), Payload: p})
	}
	return out
}
