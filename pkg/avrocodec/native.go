package avrocodec

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

const namespace = "dev.ucprelay.order.v1."

// rec reads fields of a decoded Avro record by name. A field the writer's schema lacks
// reads as its zero value (the reader's default), a field our types lack is ignored:
// that is what makes older and newer compatible writers work. A field present with the
// wrong shape is recorded as the first error.
type rec struct {
	m map[string]any
	// up is the record holding this one (nil at the root), name this record's field in
	// it (the root's name at the root) and index its place in that array field (or -1):
	// the path an error names, spelt out only when there is an error.
	up    *rec
	name  string
	index int
	err   *error
}

func root(m map[string]any, name string, err *error) rec {
	return rec{m: m, name: name, index: -1, err: err}
}

func (r *rec) path() string {
	if r.up == nil {
		return r.name
	}
	p := r.up.path() + "." + r.name
	if r.index >= 0 {
		p += "[" + strconv.Itoa(r.index) + "]"
	}
	return p
}

func (r rec) fail(field, format string, args ...any) {
	if *r.err == nil {
		*r.err = decodeErr(ReasonCorruptPayload, "%s.%s: %s", r.path(), field, fmt.Sprintf(format, args...))
	}
}

func (r rec) str(field string) string {
	switch v := r.m[field].(type) {
	case nil:
		return ""
	case string:
		return v
	case map[string]any: // union ["null","string"]
		if s, ok := v["string"].(string); ok {
			return s
		}
	}
	r.fail(field, "not a string: %T", r.m[field])
	return ""
}

// strMap reads a map<string>; empty reads as nil.
func (r rec) strMap(field string) map[string]string {
	switch v := r.m[field].(type) {
	case nil:
		return nil
	case map[string]any:
		if len(v) == 0 {
			return nil
		}
		out := make(map[string]string, len(v))
		for k, x := range v {
			s, ok := x.(string)
			if !ok {
				r.fail(field, "value of %q is %T", k, x)
				return nil
			}
			out[k] = s
		}
		return out
	}
	r.fail(field, "not a map: %T", r.m[field])
	return nil
}

// optStr reads a ["null","string"] union, telling null from "".
func (r rec) optStr(field string) *string {
	if r.m[field] == nil {
		return nil
	}
	v := r.str(field)
	return &v
}

func (r rec) long(field string) int64 {
	switch v := r.m[field].(type) {
	case nil:
		return 0
	case int64:
		return v
	case int32:
		return int64(v)
	}
	r.fail(field, "not a long: %T", r.m[field])
	return 0
}

func (r rec) time(field string) time.Time {
	switch v := r.m[field].(type) {
	case time.Time:
		return v.UTC()
	case int64:
		return time.UnixMilli(v).UTC()
	}
	r.fail(field, "not a timestamp: %T", r.m[field])
	return time.Time{}
}

func (r rec) record(field string) rec {
	m, ok := r.m[field].(map[string]any)
	if !ok && r.m[field] != nil {
		r.fail(field, "not a record: %T", r.m[field])
	}
	return rec{m: m, up: &r, name: field, index: -1, err: r.err}
}

func (r rec) each(field string, fn func(rec)) {
	switch v := r.m[field].(type) {
	case nil:
	case []any:
		for i, x := range v {
			m, ok := x.(map[string]any)
			if !ok {
				r.fail(field, "item %d not a record: %T", i, x)
				return
			}
			fn(rec{m: m, up: &r, name: field, index: i, err: r.err})
		}
	default:
		r.fail(field, "not an array: %T", v)
	}
}

func fromNative(native any) (orderevents.Event, error) {
	var err error
	m, ok := native.(map[string]any)
	if !ok {
		return orderevents.Event{}, decodeErr(ReasonCorruptPayload, "datum is %T, not a record", native)
	}
	r := root(m, "OrderEvent", &err)
	ev := orderevents.Event{
		ID: r.str("event_id"), OrderID: r.str("order_id"), OccurredAt: r.time("occurred_at"),
		Source: r.str("source"), PartnerID: r.str("partner_id"),
	}
	union, ok := m["payload"].(map[string]any)
	if !ok || len(union) != 1 {
		return ev, decodeErr(ReasonCorruptPayload, "payload is %T, not a union value", m["payload"])
	}
	for name, v := range union {
		pm, ok := v.(map[string]any)
		if !ok {
			return ev, decodeErr(ReasonCorruptPayload, "payload branch %s is %T", name, v)
		}
		p := root(pm, "payload", &err)
		switch short := name[strings.LastIndexByte(name, '.')+1:]; short {
		case "OrderPlaced":
			ev.Payload = orderPlaced(p)
		case "FulfillmentRecorded":
			ev.Payload = orderevents.FulfillmentRecorded{
				Type: p.str("type"), Lines: lineQuantities(p, "lines"), TrackingNumber: p.str("tracking_number"),
				TrackingURL: p.str("tracking_url"), Carrier: p.str("carrier"), Description: p.str("description"),
			}
		case "ExpectationsChanged":
			ev.Payload = orderevents.ExpectationsChanged{Expectations: expectations(p, "expectations")}
		case "LinesCanceled":
			ev.Payload = orderevents.LinesCanceled{Lines: lineQuantities(p, "lines"), Description: p.str("description")}
		case "OrderCanceled":
			ev.Payload = orderevents.OrderCanceled{Description: p.str("description")}
		case "AdjustmentRecorded":
			ev.Payload = orderevents.AdjustmentRecorded{
				AdjustmentID: p.str("adjustment_id"), Type: p.str("type"), Status: p.str("status"),
				Lines: lineQuantities(p, "lines"), Totals: totals(p, "totals"), Currency: p.str("currency"),
				Description: p.str("description"),
			}
		case "OrderDetailsChanged":
			ev.Payload = orderevents.OrderDetailsChanged{Label: p.optStr("label"), PermalinkURL: p.optStr("permalink_url")}
		default:
			return ev, decodeErr(ReasonUnknownEventType, "event %s has payload %s, which this version does not know", ev.ID, name)
		}
	}
	if err != nil {
		return ev, err
	}
	if err := ev.Validate(); err != nil {
		return ev, &DecodeError{Code: ReasonInvalidEvent, Err: err}
	}
	return ev, nil
}

func orderPlaced(p rec) orderevents.OrderPlaced {
	o := orderevents.OrderPlaced{
		CheckoutID: p.str("checkout_id"), PermalinkURL: p.str("permalink_url"),
		Label: p.str("label"), Currency: p.str("currency"), Totals: totals(p, "totals"),
		Attribution: p.strMap("attribution"),
	}
	p.each("line_items", func(l rec) {
		it := l.record("item")
		o.LineItems = append(o.LineItems, orderevents.PlacedLine{
			ID: l.str("id"), ParentID: l.str("parent_id"), Quantity: l.long("quantity"), Totals: totals(l, "totals"),
			Item: orderevents.Item{ID: it.str("id"), Title: it.str("title"), Price: it.long("price"), ImageURL: it.str("image_url")},
		})
	})
	o.Expectations = expectations(p, "expectations")
	return o
}

func expectations(r rec, field string) []orderevents.Expectation {
	var out []orderevents.Expectation
	r.each(field, func(x rec) {
		d := x.record("destination")
		out = append(out, orderevents.Expectation{
			ID: x.str("id"), Lines: lineQuantities(x, "lines"), MethodType: x.str("method_type"),
			Description: x.str("description"), FulfillableOn: x.str("fulfillable_on"),
			Destination: orderevents.Address{
				FullName: d.str("full_name"), FirstName: d.str("first_name"), LastName: d.str("last_name"),
				StreetAddress: d.str("street_address"), ExtendedAddress: d.str("extended_address"),
				Locality: d.str("locality"), Region: d.str("region"), PostalCode: d.str("postal_code"),
				Country: d.str("country"), PhoneNumber: d.str("phone_number"),
			},
		})
	})
	return out
}

func totals(r rec, field string) []orderevents.Total {
	var out []orderevents.Total
	r.each(field, func(t rec) {
		out = append(out, orderevents.Total{Type: t.str("type"), Amount: t.long("amount"), DisplayText: t.str("display_text")})
	})
	return out
}

func lineQuantities(r rec, field string) []orderevents.LineQuantity {
	var out []orderevents.LineQuantity
	r.each(field, func(q rec) {
		out = append(out, orderevents.LineQuantity{LineID: q.str("line_id"), Quantity: q.long("quantity")})
	})
	return out
}

// optional is the native value of a ["null","string"] union.
func optional(s string) any {
	if s == "" {
		return nil
	}
	return goavro.Union("string", s)
}

func toNative(ev orderevents.Event) (map[string]any, error) {
	var payload any
	switch p := ev.Payload.(type) {
	case orderevents.OrderPlaced:
		payload = goavro.Union(namespace+"OrderPlaced", placedNative(p))
	case orderevents.FulfillmentRecorded:
		payload = goavro.Union(namespace+"FulfillmentRecorded", map[string]any{
			"type": p.Type, "lines": lineQuantitiesNative(p.Lines), "tracking_number": optional(p.TrackingNumber),
			"tracking_url": optional(p.TrackingURL), "carrier": optional(p.Carrier), "description": optional(p.Description),
		})
	case orderevents.ExpectationsChanged:
		payload = goavro.Union(namespace+"ExpectationsChanged", map[string]any{"expectations": expectationsNative(p.Expectations)})
	case orderevents.LinesCanceled:
		payload = goavro.Union(namespace+"LinesCanceled", map[string]any{"lines": lineQuantitiesNative(p.Lines), "description": optional(p.Description)})
	case orderevents.OrderCanceled:
		payload = goavro.Union(namespace+"OrderCanceled", map[string]any{"description": optional(p.Description)})
	case orderevents.AdjustmentRecorded:
		payload = goavro.Union(namespace+"AdjustmentRecorded", map[string]any{
			"adjustment_id": optional(p.AdjustmentID), "type": p.Type, "status": p.Status,
			"lines": lineQuantitiesNative(p.Lines), "totals": totalsNative(p.Totals),
			"currency": optional(p.Currency), "description": optional(p.Description),
		})
	case orderevents.OrderDetailsChanged:
		payload = goavro.Union(namespace+"OrderDetailsChanged", map[string]any{"label": optionalPtr(p.Label), "permalink_url": optionalPtr(p.PermalinkURL)})
	default:
		return nil, fmt.Errorf("avrocodec: cannot encode payload %T", ev.Payload)
	}
	return map[string]any{
		"event_id": ev.ID, "order_id": ev.OrderID, "occurred_at": ev.OccurredAt.UTC(),
		"source": ev.Source, "partner_id": optional(ev.PartnerID), "payload": payload,
	}, nil
}

func placedNative(p orderevents.OrderPlaced) map[string]any {
	lines := make([]any, 0, len(p.LineItems))
	for _, l := range p.LineItems {
		lines = append(lines, map[string]any{
			"id": l.ID, "parent_id": optional(l.ParentID), "quantity": l.Quantity, "totals": totalsNative(l.Totals),
			"item": map[string]any{"id": l.Item.ID, "title": l.Item.Title, "price": l.Item.Price, "image_url": optional(l.Item.ImageURL)},
		})
	}
	return map[string]any{
		"checkout_id": p.CheckoutID, "permalink_url": p.PermalinkURL, "label": optional(p.Label),
		"currency": p.Currency, "line_items": lines, "expectations": expectationsNative(p.Expectations), "totals": totalsNative(p.Totals),
		"attribution": attributionNative(p.Attribution),
	}
}

func totalsNative(ts []orderevents.Total) []any {
	out := make([]any, 0, len(ts))
	for _, t := range ts {
		out = append(out, map[string]any{"type": t.Type, "amount": t.Amount, "display_text": optional(t.DisplayText)})
	}
	return out
}

// optionalPtr is the native value of a ["null","string"] union that tells null from "".
func optionalPtr(s *string) any {
	if s == nil {
		return nil
	}
	return goavro.Union("string", *s)
}

func lineQuantitiesNative(qs []orderevents.LineQuantity) []any {
	out := make([]any, 0, len(qs))
	for _, q := range qs {
		out = append(out, map[string]any{"line_id": q.LineID, "quantity": q.Quantity})
	}
	return out
}

func expectationsNative(xs []orderevents.Expectation) []any {
	out := make([]any, 0, len(xs))
	for _, x := range xs {
		d := x.Destination
		out = append(out, map[string]any{
			"id": x.ID, "lines": lineQuantitiesNative(x.Lines), "method_type": x.MethodType,
			"description": optional(x.Description), "fulfillable_on": optional(x.FulfillableOn),
			"destination": map[string]any{
				"full_name": optional(d.FullName), "first_name": optional(d.FirstName), "last_name": optional(d.LastName),
				"street_address": optional(d.StreetAddress), "extended_address": optional(d.ExtendedAddress),
				"locality": optional(d.Locality), "region": optional(d.Region), "postal_code": optional(d.PostalCode),
				"country": optional(d.Country), "phone_number": optional(d.PhoneNumber),
			},
		})
	}
	return out
}

func attributionNative(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
