package fold

import (
	"crypto/sha1" //nolint:gosec // UUIDv5 is defined on SHA-1; this is an identifier, not security
	"encoding/hex"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
)

// folder applies events to an order under construction.
type folder struct {
	o     *ucp.Order
	lines map[string]*ucp.LineItem
	// adjustments by UCP id: the index in o.Adjustments, the quantity deltas applied, and
	// the id of the event that created it.
	adj map[string]*adjState
}

type adjState struct {
	index   int
	deltas  map[string]int64
	creator string
}

func newFolder(placed *orderevents.Event) *folder {
	p := placed.Payload.(orderevents.OrderPlaced)
	o := &ucp.Order{
		ID: placed.OrderID, Label: p.Label, CheckoutID: p.CheckoutID, PermalinkURL: p.PermalinkURL, Currency: p.Currency,
		Totals: totals(p.Totals), LineItems: make([]ucp.LineItem, 0, len(p.LineItems)), Attribution: p.Attribution,
		Fulfillment: ucp.Fulfillment{Expectations: expectations(p.Expectations)},
	}
	for _, l := range p.LineItems {
		o.LineItems = append(o.LineItems, ucp.LineItem{
			ID: l.ID, ParentID: l.ParentID, Totals: totals(l.Totals),
			Item:     ucp.Item{ID: l.Item.ID, Title: l.Item.Title, Price: l.Item.Price, ImageURL: l.Item.ImageURL},
			Quantity: ucp.Quantity{Original: l.Quantity, HasOriginal: true, Total: l.Quantity},
		})
	}
	f := &folder{o: o, lines: make(map[string]*ucp.LineItem, len(o.LineItems)), adj: map[string]*adjState{}}
	for i := range o.LineItems {
		f.lines[o.LineItems[i].ID] = &o.LineItems[i]
	}
	return f
}

func (f *folder) line(id string) (*ucp.LineItem, error) {
	l, ok := f.lines[id]
	if !ok {
		return nil, fail(ErrUnknownLine, "order %s has no line %q", f.o.ID, id)
	}
	return l, nil
}

func (f *folder) checkExpectations(xs []ucp.Expectation) error {
	for _, x := range xs {
		for _, r := range x.LineItems {
			if _, err := f.line(r.ID); err != nil {
				return fail(ErrUnknownLine, "order %s expectation %s references line %q", f.o.ID, x.ID, r.ID)
			}
		}
	}
	return nil
}

func (f *folder) apply(ev *orderevents.Event) error {
	switch p := ev.Payload.(type) {
	case orderevents.FulfillmentRecorded:
		return f.fulfillment(ev, p)
	case orderevents.ExpectationsChanged:
		xs := expectations(p.Expectations)
		if err := f.checkExpectations(xs); err != nil {
			return err
		}
		f.o.Fulfillment.Expectations = xs
	case orderevents.LinesCanceled:
		return f.cancel(ev, p.Lines, p.Description)
	case orderevents.OrderCanceled:
		var rest []orderevents.LineQuantity
		for _, l := range f.o.LineItems {
			if n := l.Quantity.Total - l.Quantity.Fulfilled; n > 0 {
				rest = append(rest, orderevents.LineQuantity{LineID: l.ID, Quantity: n})
			}
		}
		return f.cancel(ev, rest, p.Description)
	case orderevents.AdjustmentRecorded:
		return f.adjustment(ev, p)
	case orderevents.OrderDetailsChanged:
		if p.Label != nil {
			f.o.Label = *p.Label
		}
		if p.PermalinkURL != nil {
			f.o.PermalinkURL = *p.PermalinkURL
		}
	default:
		return fail(ErrInvalid, "event %s: payload %T is not folded by this version", ev.ID, ev.Payload)
	}
	return nil
}

func (f *folder) fulfillment(ev *orderevents.Event, p orderevents.FulfillmentRecorded) error {
	refs := make([]ucp.LineRef, 0, len(p.Lines))
	for _, q := range p.Lines {
		l, err := f.line(q.LineID)
		if err != nil {
			return err
		}
		if p.Type == orderevents.FulfillmentShipped {
			if l.Quantity.Fulfilled+q.Quantity > l.Quantity.Total {
				return fail(ErrOverFulfilled, "event %s ships %d of line %s, which has %d left to ship",
					ev.ID, q.Quantity, l.ID, l.Quantity.Total-l.Quantity.Fulfilled)
			}
			l.Quantity.Fulfilled += q.Quantity
		}
		refs = append(refs, ucp.LineRef{ID: q.LineID, Quantity: q.Quantity})
	}
	f.o.Fulfillment.Events = append(f.o.Fulfillment.Events, ucp.FulfillmentEvent{
		ID: ev.ID, OccurredAt: ev.OccurredAt, Type: p.Type, LineItems: refs,
		TrackingNumber: p.TrackingNumber, TrackingURL: p.TrackingURL, Carrier: p.Carrier, Description: p.Description,
	})
	return nil
}

// cancel lowers line totals by unshipped quantities and records a cancellation.
func (f *folder) cancel(ev *orderevents.Event, lines []orderevents.LineQuantity, desc string) error {
	deltas := map[string]int64{}
	refs := make([]ucp.LineRef, 0, len(lines))
	for _, q := range lines {
		l, err := f.line(q.LineID)
		if err != nil {
			return err
		}
		if left := l.Quantity.Total - l.Quantity.Fulfilled; q.Quantity > left {
			return fail(ErrOverCanceled, "event %s cancels %d of line %s, which has %d unshipped", ev.ID, q.Quantity, l.ID, left)
		}
		deltas[l.ID] -= q.Quantity
		refs = append(refs, ucp.LineRef{ID: l.ID, Quantity: -q.Quantity})
	}
	return f.upsert(ev, ucp.Adjustment{
		ID: ev.ID, Type: orderevents.AdjustmentCancellation, OccurredAt: ev.OccurredAt, Status: "completed",
		LineItems: refs, Description: desc,
	}, deltas)
}

func (f *folder) adjustment(ev *orderevents.Event, p orderevents.AdjustmentRecorded) error {
	if p.Currency != "" && f.o.Currency != "" && p.Currency != f.o.Currency {
		return fail(ErrCurrencyMismatch, "event %s is in %s, order %s in %s", ev.ID, p.Currency, f.o.ID, f.o.Currency)
	}
	id := p.AdjustmentID
	if id == "" {
		id = ev.ID
	}
	deltas := map[string]int64{}
	refs := make([]ucp.LineRef, 0, len(p.Lines))
	changesQuantity := p.Type == orderevents.AdjustmentReturn || p.Type == orderevents.AdjustmentCancellation
	for _, q := range p.Lines {
		if _, err := f.line(q.LineID); err != nil {
			return err
		}
		if changesQuantity {
			deltas[q.LineID] += q.Quantity
		}
		refs = append(refs, ucp.LineRef{ID: q.LineID, Quantity: q.Quantity})
	}
	return f.upsert(ev, ucp.Adjustment{
		ID: id, Type: p.Type, OccurredAt: ev.OccurredAt, Status: p.Status,
		LineItems: refs, Totals: totals(p.Totals), Description: p.Description,
	}, deltas)
}

// upsert adds an adjustment, or replaces the one with the same id in place (undoing its
// quantity changes first), and applies its quantity deltas.
func (f *folder) upsert(ev *orderevents.Event, a ucp.Adjustment, deltas map[string]int64) error {
	prev, exists := f.adj[a.ID]
	if exists {
		for id, d := range prev.deltas {
			f.lines[id].Quantity.Total -= d
		}
	}
	for id, d := range deltas {
		l := f.lines[id]
		if l.Quantity.Total+d < 0 {
			return fail(ErrNegativeQuantity, "event %s takes line %s from %d to %d", ev.ID, id, l.Quantity.Total, l.Quantity.Total+d)
		}
		l.Quantity.Total += d
	}
	if exists {
		f.o.Adjustments[prev.index] = a
		prev.deltas = deltas
		return nil
	}
	f.adj[a.ID] = &adjState{index: len(f.o.Adjustments), deltas: deltas, creator: ev.ID}
	f.o.Adjustments = append(f.o.Adjustments, a)
	return nil
}

// namespace is the UUIDv5 namespace of ucprelay's snapshot ids.
var namespace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// uuid5 returns the RFC 9562 version 5 UUID of name in ucprelay's namespace.
func uuid5(name string) string {
	h := sha1.New() //nolint:gosec // see import
	h.Write(namespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	b := hex.EncodeToString(u[:])
	return b[0:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:]
}

func totals(ts []orderevents.Total) []ucp.Total {
	out := make([]ucp.Total, 0, len(ts))
	for _, t := range ts {
		out = append(out, ucp.Total{Type: t.Type, Amount: t.Amount, DisplayText: t.DisplayText})
	}
	return out
}

func expectations(xs []orderevents.Expectation) []ucp.Expectation {
	out := make([]ucp.Expectation, 0, len(xs))
	for _, x := range xs {
		d := x.Destination
		refs := make([]ucp.LineRef, 0, len(x.Lines))
		for _, q := range x.Lines {
			refs = append(refs, ucp.LineRef{ID: q.LineID, Quantity: q.Quantity})
		}
		out = append(out, ucp.Expectation{
			ID: x.ID, LineItems: refs, MethodType: x.MethodType, Description: x.Description, FulfillableOn: x.FulfillableOn,
			Destination: ucp.PostalAddress{
				FullName: d.FullName, FirstName: d.FirstName, LastName: d.LastName, StreetAddress: d.StreetAddress,
				ExtendedAddress: d.ExtendedAddress, AddressLocality: d.Locality, AddressRegion: d.Region,
				PostalCode: d.PostalCode, AddressCountry: d.Country, PhoneNumber: d.PhoneNumber,
			},
		})
	}
	return out
}
