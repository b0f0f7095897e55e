package statestore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// Decoder turns a stored event's canonical bytes back into the event.
type Decoder interface {
	Decode(ctx context.Context, value []byte) (orderevents.Event, error)
}

// Order is one order's state record with its events decoded: the one view of a stored
// order that the relay's fold and resends and `ucprelay state inspect` share.
type Order struct {
	// Record is the state record; its Events are the canonical bytes of Events.
	Record *Record
	// Events are the order's events, in stored order.
	Events []orderevents.Event
	// Placed: the events hold the order's placement, so the order has a snapshot.
	Placed bool
}

// OpenOrder decodes the state record value of an order; a nil value is an order without
// state yet.
func OpenOrder(ctx context.Context, dec Decoder, orderID string, value []byte) (*Order, error) {
	o := &Order{Record: &Record{OrderID: orderID}}
	if value == nil {
		return o, nil
	}
	rec, err := Unmarshal(orderID, value)
	if err != nil {
		return nil, err
	}
	o.Record = rec
	o.Events = make([]orderevents.Event, 0, len(rec.Events))
	for _, raw := range rec.Events {
		ev, err := dec.Decode(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("statestore: order %s: stored event: %w", orderID, err)
		}
		o.Events = append(o.Events, ev)
		if _, ok := ev.Payload.(orderevents.OrderPlaced); ok {
			o.Placed = true
		}
	}
	return o, nil
}

// LastStamp is the newest freshness stamp the order's partner may have seen: a pending
// snapshot's may have reached it even if it was never acknowledged.
func (r *Record) LastStamp() time.Time { return lastStamp(r.Acked, r.Pending) }

// LastStamp is the record's LastStamp.
func (h Header) LastStamp() time.Time { return lastStamp(h.Acked, h.Pending) }

func lastStamp(acked, pending Delivery) time.Time {
	if pending.Stamp.After(acked.Stamp) {
		return pending.Stamp
	}
	return acked.Stamp
}

// EnvelopeRule chooses the envelope of a rendered snapshot.
type EnvelopeRule int

const (
	// NextEnvelope is the envelope of a new delivery: stamped after anything the partner
	// may have seen (fold.NextEnvelope).
	NextEnvelope EnvelopeRule = iota
	// ResendEnvelope repeats the pending delivery's recorded Webhook-Id and stamp, so the
	// partner gets the same request again; a snapshot of other events than the pending
	// one, or one whose body no longer matches the recorded digest, gets the next
	// envelope.
	ResendEnvelope
	// LastEnvelope is the newest delivery's recorded envelope (pending, else acknowledged):
	// what the partner has or is about to get, for inspection.
	LastEnvelope
)

// Partners says where an order's snapshots go and in which UCP version.
type Partners struct {
	// Default receives orders whose events name no partner.
	Default string
	// Version returns the UCP version of a partner's bodies; an error when the partner
	// cannot be delivered to (not configured), which [Order.Render] returns.
	Version func(partner string) (ucp.Version, error)
}

// PartnerOf returns the partner of the order's snapshot snap: the one its events name,
// else the one its state records, else the default.
func (o *Order) PartnerOf(snap *fold.Snapshot, p Partners) string {
	switch {
	case snap != nil && snap.PartnerID != "":
		return snap.PartnerID
	case o.Record.Partner != "":
		return o.Record.Partner
	}
	return p.Default
}

// Snapshot is an order's snapshot as its partner gets it.
type Snapshot struct {
	*fold.Snapshot
	// Partner receives it.
	Partner string
	// Envelope holds its Webhook-Id and freshness stamp.
	Envelope fold.Envelope
	// Body is the whole order entity in the partner's UCP version.
	Body []byte
}

// nextEnvelope is the envelope of a new send of snap (whose events in stored order are
// events) in version v at the time now: fold.NextEnvelope's stamp, and the Webhook-Id of
// fold.Snapshot.Identity after what the record marks sent.
func (o *Order) nextEnvelope(snap *fold.Snapshot, events []orderevents.Event, v ucp.Version, now time.Time) fold.Envelope {
	rec := o.Record
	env := fold.NextEnvelope(snap, rec.LastStamp(), now)
	sent := fold.Sent{Version: max(rec.Acked.Version, rec.Pending.Version), IDs: []string{rec.Acked.WebhookID, rec.Pending.WebhookID}}
	env.WebhookID = snap.Identity(events, sent, func() []byte {
		// The body apart from its envelope: a fixed one stands in for it (2026-01-xx
		// bodies carry event_id and created_time and do not render without them).
		b, err := ucp.Marshal(snap.Order, v, digestEnvelope)
		if err != nil {
			return nil // the caller's Marshal fails the same way
		}
		return BodyDigest(b)
	})
	return env
}

// digestEnvelope stands in for the envelope in the body digest of a Webhook-Id.
var digestEnvelope = ucp.Envelope{EventID: "-", CreatedTime: time.Unix(0, 0).UTC()}

// Render derives what the partner gets from the order: the snapshot (snap, or the fold
// of the stored events when snap is nil), its envelope by rule, and the body rendered in
// the partner's version. events are snap's events in stored order (nil: the order's own,
// o.Events): a new envelope's Webhook-Id names the newest of the events added since the
// last send (fold.Snapshot.Identity). now is the time a new envelope is stamped at (its
// stamp is never later, unless the order's last stamp already is). A stored order without
// its placement returns fold.ErrNotPlaced.
func (o *Order) Render(snap *fold.Snapshot, events []orderevents.Event, rule EnvelopeRule, p Partners, now time.Time) (*Snapshot, error) {
	if events == nil {
		events = o.Events
	}
	if snap == nil {
		var err error
		if snap, err = fold.Fold(events); err != nil {
			return nil, fmt.Errorf("statestore: order %s: %w", o.Record.OrderID, err)
		}
	}
	s := &Snapshot{Snapshot: snap, Partner: o.PartnerOf(snap, p)}
	v, err := p.Version(s.Partner)
	if err != nil {
		return nil, err
	}
	rec := o.Record
	switch d := rec.Pending; {
	case rule == ResendEnvelope && d.Version == snap.Version:
		s.Envelope = fold.Envelope{WebhookID: d.WebhookID, Stamp: d.Stamp}
		if s.Body, err = ucp.Marshal(snap.Order, v, s.Envelope.Body()); err != nil {
			return nil, err
		}
		if d.Digest == nil || bytes.Equal(BodyDigest(s.Body), d.Digest) {
			return s, nil
		}
		// The body no longer renders as the one sent under the pending id (the partner's
		// version or the rendering changed): a new send, stamped one second after the last,
		// so that a second restore before the acknowledgement picks the same envelope.
		s.Envelope = o.nextEnvelope(snap, events, v, rec.LastStamp())
	case rule == LastEnvelope:
		if d.IsZero() {
			d = rec.Acked
		}
		s.Envelope = fold.Envelope{WebhookID: d.WebhookID, Stamp: d.Stamp}
	default:
		s.Envelope = o.nextEnvelope(snap, events, v, now)
	}
	if s.Body, err = ucp.Marshal(snap.Order, v, s.Envelope.Body()); err != nil {
		return nil, err
	}
	return s, nil
}
