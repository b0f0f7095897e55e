// Package fold derives the UCP order snapshot from the set of an order's events, as a
// pure function (P4): events are deduplicated by id and ordered by occurred time, then
// id, before they are applied, so duplicates, redeliveries and arrival order do not
// change the result. It imports no Kafka, HTTP or Avro.
//
// What depends on delivery history (the freshness stamp of a send) is not part of the
// snapshot; [NextEnvelope] derives it from the snapshot and the previous stamp.
package fold

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
)

// Domain errors. Each carries a stable dead-letter reason through [Reason].
var (
	// ErrNotPlaced: the order has events but no OrderPlaced yet; its snapshot waits.
	ErrNotPlaced = errors.New("fold: order not placed yet")
	// ErrMixedOrders: the events belong to more than one order.
	ErrMixedOrders = errors.New("fold: events of different orders")
	// ErrDuplicatePlacement: two different OrderPlaced events for one order.
	ErrDuplicatePlacement = errors.New("fold: order placed twice")
	// ErrUnknownLine: an event references a line the order does not have.
	ErrUnknownLine = errors.New("fold: unknown line")
	// ErrInvalid: an event is malformed on its own.
	ErrInvalid = errors.New("fold: invalid event")
)

// Reason returns the dead-letter reason of a fold error.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrNotPlaced):
		return "orphan"
	case errors.Is(err, ErrMixedOrders):
		return "mixed_orders"
	case errors.Is(err, ErrDuplicatePlacement):
		return "duplicate_placement"
	case errors.Is(err, ErrUnknownLine):
		return "unknown_line"
	case errors.Is(err, ErrInvalid):
		return "invalid_event"
	}
	return "fold_failed"
}

// Error is a fold failure with its reason, for the dead-letter record.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Reason returns the dead-letter reason of the failure.
func (e *Error) Reason() string { return Reason(e.Err) }

func fail(err error, format string, args ...any) error {
	return &Error{Err: fmt.Errorf("%w: "+format, append([]any{err}, args...)...)}
}

// Snapshot is the order derived from a set of events.
type Snapshot struct {
	// Order is the complete entity.
	Order *ucp.Order
	// PartnerID is the partner named by the events ("" when none names one).
	PartnerID string
	// Version is the number of distinct events folded: it grows with every new event.
	Version int64
	// Newest is the latest occurred time among the events.
	Newest time.Time
	// WebhookID identifies this snapshot to the partner (ucp-order.md §3): the id of the
	// primary (newest) event's UCP entry, or the order id for the placement.
	WebhookID string
}

// Fold derives the snapshot of one order from its events, in any order and with
// duplicates.
func Fold(events []orderevents.Event) (*Snapshot, error) {
	evs, err := normalize(events)
	if err != nil {
		return nil, err
	}
	var placed *orderevents.OrderPlaced
	s := &Snapshot{Version: int64(len(evs))}
	for i := range evs {
		ev := &evs[i]
		if ev.PartnerID != "" {
			s.PartnerID = ev.PartnerID
		}
		if ev.OccurredAt.After(s.Newest) {
			s.Newest = ev.OccurredAt
		}
		switch p := ev.Payload.(type) {
		case orderevents.OrderPlaced:
			if placed != nil {
				return nil, fail(ErrDuplicatePlacement, "order %s: events %s and another", ev.OrderID, ev.ID)
			}
			placed = &p
			s.Order = fromPlaced(ev.OrderID, p)
			s.WebhookID = ev.OrderID
		default:
			return nil, fail(ErrInvalid, "event %s: payload %T is not folded by this version", ev.ID, ev.Payload)
		}
	}
	if placed == nil {
		return nil, fail(ErrNotPlaced, "order %s has %d event(s) and no placement", evs[0].OrderID, len(evs))
	}
	if err := checkLines(s.Order); err != nil {
		return nil, err
	}
	return s, nil
}

// normalize validates, deduplicates by id and sorts by (occurred time, id).
func normalize(events []orderevents.Event) ([]orderevents.Event, error) {
	if len(events) == 0 {
		return nil, fail(ErrNotPlaced, "no events")
	}
	seen := make(map[string]bool, len(events))
	out := make([]orderevents.Event, 0, len(events))
	for _, ev := range events {
		if err := ev.Validate(); err != nil {
			return nil, &Error{Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
		}
		if ev.OrderID != events[0].OrderID {
			return nil, fail(ErrMixedOrders, "%s and %s", events[0].OrderID, ev.OrderID)
		}
		if seen[ev.ID] {
			continue
		}
		seen[ev.ID] = true
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].OccurredAt.Equal(out[j].OccurredAt) {
			return out[i].OccurredAt.Before(out[j].OccurredAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func fromPlaced(orderID string, p orderevents.OrderPlaced) *ucp.Order {
	o := &ucp.Order{
		ID: orderID, Label: p.Label, CheckoutID: p.CheckoutID, PermalinkURL: p.PermalinkURL, Currency: p.Currency,
		Totals: totals(p.Totals),
	}
	for _, l := range p.LineItems {
		o.LineItems = append(o.LineItems, ucp.LineItem{
			ID: l.ID, ParentID: l.ParentID, Totals: totals(l.Totals),
			Item:     ucp.Item{ID: l.Item.ID, Title: l.Item.Title, Price: l.Item.Price, ImageURL: l.Item.ImageURL},
			Quantity: ucp.Quantity{Original: l.Quantity, HasOriginal: true, Total: l.Quantity},
		})
	}
	for _, x := range p.Expectations {
		d := x.Destination
		o.Fulfillment.Expectations = append(o.Fulfillment.Expectations, ucp.Expectation{
			ID: x.ID, LineItems: refs(x.Lines), MethodType: x.MethodType, Description: x.Description, FulfillableOn: x.FulfillableOn,
			Destination: ucp.PostalAddress{
				FullName: d.FullName, FirstName: d.FirstName, LastName: d.LastName, StreetAddress: d.StreetAddress,
				ExtendedAddress: d.ExtendedAddress, AddressLocality: d.Locality, AddressRegion: d.Region,
				PostalCode: d.PostalCode, AddressCountry: d.Country, PhoneNumber: d.PhoneNumber,
			},
		})
	}
	return o
}

func totals(ts []orderevents.Total) []ucp.Total {
	out := make([]ucp.Total, 0, len(ts))
	for _, t := range ts {
		out = append(out, ucp.Total{Type: t.Type, Amount: t.Amount, DisplayText: t.DisplayText})
	}
	return out
}

func refs(qs []orderevents.LineQuantity) []ucp.LineRef {
	out := make([]ucp.LineRef, 0, len(qs))
	for _, q := range qs {
		out = append(out, ucp.LineRef{ID: q.LineID, Quantity: q.Quantity})
	}
	return out
}

// checkLines verifies that expectations reference existing lines.
func checkLines(o *ucp.Order) error {
	lines := make(map[string]bool, len(o.LineItems))
	for _, l := range o.LineItems {
		lines[l.ID] = true
	}
	for _, x := range o.Fulfillment.Expectations {
		for _, r := range x.LineItems {
			if !lines[r.ID] {
				return fail(ErrUnknownLine, "order %s expectation %s references line %q", o.ID, x.ID, r.ID)
			}
		}
	}
	return nil
}

// Envelope is what a send adds to a snapshot: the identity and freshness stamp the
// partner sees. A resend reuses it unchanged.
type Envelope struct {
	// WebhookID is the Webhook-Id header (2026-04-08) and body event_id (2026-01-xx).
	WebhookID string
	// Stamp is the Webhook-Timestamp header (2026-04-08) and body created_time (2026-01-xx).
	Stamp time.Time
}

// NextEnvelope returns the envelope of a new send of s after a send stamped prev (zero
// for the first): the stamp is max(newest occurred time, prev + 1 s), truncated to whole
// seconds, so it strictly increases per order even when events arrive late (P2).
func NextEnvelope(s *Snapshot, prev time.Time) Envelope {
	stamp := s.Newest.UTC().Truncate(time.Second)
	if !prev.IsZero() {
		if floor := prev.UTC().Truncate(time.Second).Add(time.Second); stamp.Before(floor) {
			stamp = floor
		}
	}
	return Envelope{WebhookID: s.WebhookID, Stamp: stamp}
}

// Body returns the 2026-01-xx body fields of the envelope.
func (e Envelope) Body() ucp.Envelope {
	return ucp.Envelope{EventID: e.WebhookID, CreatedTime: e.Stamp}
}
