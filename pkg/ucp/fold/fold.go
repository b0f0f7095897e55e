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
	// ErrOverFulfilled: a shipment of more than the line's remaining quantity.
	ErrOverFulfilled = errors.New("fold: shipped more than remains")
	// ErrOverCanceled: a cancellation of more than the line's unshipped quantity.
	ErrOverCanceled = errors.New("fold: canceled more than remains unshipped")
	// ErrNegativeQuantity: an adjustment would take a line's quantity below zero.
	ErrNegativeQuantity = errors.New("fold: negative quantity")
	// ErrCurrencyMismatch: an adjustment in another currency than the order's.
	ErrCurrencyMismatch = errors.New("fold: currency mismatch")
	// ErrInvalid: an event is malformed on its own.
	ErrInvalid = errors.New("fold: invalid event")
)

var reasons = []struct {
	err    error
	reason string
}{
	{ErrNotPlaced, "orphan"},
	{ErrMixedOrders, "mixed_orders"},
	{ErrDuplicatePlacement, "duplicate_placement"},
	{ErrUnknownLine, "unknown_line"},
	{ErrOverFulfilled, "over_fulfilled"},
	{ErrOverCanceled, "over_canceled"},
	{ErrNegativeQuantity, "negative_quantity"},
	{ErrCurrencyMismatch, "currency_mismatch"},
	{ErrInvalid, "invalid_event"},
}

// Reason returns the dead-letter reason of a fold error.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return ReasonUnclassified
}

// ReasonUnclassified is the dead-letter reason of a fold failure that is none of the
// domain errors above.
const ReasonUnclassified = "fold_failed"

// Reasons lists every reason [Reason] can return: one per domain error, in the order of
// the table above, then [ReasonUnclassified]. It includes "orphan" ([ErrNotPlaced]),
// which a caller that waits for the placement does not dead-letter.
// internal/deadletter checks its vocabulary against this list.
func Reasons() []string {
	out := make([]string, 0, len(reasons)+1)
	for _, r := range reasons {
		out = append(out, r.reason)
	}
	return append(out, ReasonUnclassified)
}

// Error is a fold failure with its reason, for the dead-letter record.
type Error struct {
	Err error
	// EventID is the event that broke the invariant, when one did.
	EventID string
}

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
	// WebhookID identifies this snapshot to the partner when it is the order's first send
	// (ucp-order.md §3): the id of the UCP entry (fulfilment event or adjustment) the
	// newest event created, the order id when the newest event is the placement, and
	// otherwise (a change without an entry of its own, or an adjustment updated in place)
	// a UUIDv5 of order id and version. A later send's id is Identity's (identity.go).
	WebhookID string
	// creators maps an adjustment's id to the event that created it (nil: none).
	creators map[string]string
}

// Fold derives the snapshot of one order from its events, in any order and with
// duplicates: the placement is applied first, then the other events by occurred time,
// then id.
func Fold(events []orderevents.Event) (*Snapshot, error) {
	evs, err := normalize(events)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{Version: int64(len(evs))}
	var placed *orderevents.Event
	for i := range evs {
		ev := &evs[i]
		if ev.PartnerID != "" && s.PartnerID == "" {
			s.PartnerID = ev.PartnerID
		}
		if ev.OccurredAt.After(s.Newest) {
			s.Newest = ev.OccurredAt
		}
		if _, ok := ev.Payload.(orderevents.OrderPlaced); ok {
			if placed != nil {
				// The later placement (by occurred time, then id) is the one to reject.
				return nil, withEvent(fail(ErrDuplicatePlacement, "order %s: events %s and %s", ev.OrderID, placed.ID, ev.ID), ev.ID)
			}
			placed = ev
		}
	}
	if placed == nil {
		return nil, fail(ErrNotPlaced, "order %s has %d event(s) and no placement", evs[0].OrderID, len(evs))
	}
	f := newFolder(placed)
	if err := f.checkExpectations(f.o.Fulfillment.Expectations); err != nil {
		return nil, withEvent(err, placed.ID)
	}
	for i := range evs {
		if &evs[i] == placed {
			continue
		}
		if err := f.apply(&evs[i]); err != nil {
			return nil, withEvent(err, evs[i].ID)
		}
	}
	s.Order = f.o
	for id, st := range f.adj {
		if s.creators == nil {
			s.creators = make(map[string]string, len(f.adj))
		}
		s.creators[id] = st.creator
	}
	s.WebhookID = s.idOf(&evs[len(evs)-1])
	return s, nil
}

func withEvent(err error, id string) error {
	var fe *Error
	if errors.As(err, &fe) && fe.EventID == "" {
		fe.EventID = id
	}
	return err
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

// Envelope is what a send adds to a snapshot: the identity and freshness stamp the
// partner sees. A resend reuses it unchanged.
type Envelope struct {
	// WebhookID is the Webhook-Id header (2026-04-08) and body event_id (2026-01-xx).
	WebhookID string
	// Stamp is the Webhook-Timestamp header (2026-04-08) and body created_time (2026-01-xx).
	Stamp time.Time
}

// NextEnvelope returns the envelope of a new send of s after a send stamped prev (zero
// for the first), at the time now (zero: not known). The stamp is the newest occurred
// time, clipped to now when an event claims a later time (a producer's clock ahead, a
// future-dated event), and at least prev + 1 s, truncated to whole seconds: it strictly
// increases per order even when events arrive late (P2), and one future-dated event does
// not push every later stamp of its order into the future with it.
func NextEnvelope(s *Snapshot, prev, now time.Time) Envelope {
	stamp := s.Newest.UTC()
	if !now.IsZero() && stamp.After(now) {
		stamp = now.UTC()
	}
	stamp = stamp.Truncate(time.Second)
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
