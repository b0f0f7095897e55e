package statestore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// Inspection is what `ucprelay state inspect` shows of one order: its state record, its
// events, and the snapshot its partner has or is about to get.
type Inspection struct {
	OrderID   string `json:"order_id"`
	Topic     string `json:"state_topic"`
	Partition int32  `json:"partition"`
	Partner   string `json:"partner_id"`
	Version   int64  `json:"version"`
	Acked     *Mark  `json:"acked,omitempty"`
	Pending   *Mark  `json:"pending,omitempty"`
	// Deferred: the order's newest snapshot waits for the clock (its stamp would run
	// more than delivery.max_clock_skew ahead); Snapshot is the last one sent.
	Deferred bool             `json:"deferred,omitempty"`
	Events   []InspectedEvent `json:"events"`
	// Snapshot is the body of the current snapshot with the envelope of the newest
	// delivery recorded (pending, else acknowledged).
	Snapshot json.RawMessage `json:"snapshot,omitempty"`
	// Held says why there is no snapshot: the order's placement has not arrived.
	Held string `json:"held,omitempty"`
	// HeldSince is since when the events wait (they expire as orphans after
	// state.orphan_after).
	HeldSince *time.Time `json:"held_since,omitempty"`
	Layout    *Layout    `json:"layout,omitempty"`
	// Parked describes an order parked because its stored state could not be read.
	Parked *ParkedInfo `json:"parked,omitempty"`
	// NotOurs is set for an order that is not the relay's (its placement named no
	// configured partner): nothing of it is kept or sent.
	NotOurs *NotOurs `json:"not_ours,omitempty"`
	// Unreadable is why the order's stored state cannot be read now (then Events and
	// Snapshot are absent).
	Unreadable string `json:"unreadable,omitempty"`
}

// ParkedInfo is a parked order as inspection shows it.
type ParkedInfo struct {
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
	Since  time.Time `json:"since"`
	// OriginalBytes is the size of the stored record kept as it was.
	OriginalBytes int `json:"original_bytes"`
	// HeldEvents are the ids of the events that arrived since, held with the order.
	HeldEvents []string `json:"held_events"`
}

// Mark is a delivery mark as inspection shows it.
type Mark struct {
	Version   int64     `json:"version"`
	Stamp     time.Time `json:"stamp"`
	WebhookID string    `json:"webhook_id"`
	// BodyDigest is the hex digest of the body sent under WebhookID (empty in records
	// written before digests were kept).
	BodyDigest string `json:"body_digest,omitempty"`
}

// InspectedEvent is one stored event as inspection shows it.
type InspectedEvent struct {
	ID         string           `json:"id"`
	Kind       orderevents.Kind `json:"kind"`
	OccurredAt time.Time        `json:"occurred_at"`
}

func markOf(d Delivery) *Mark {
	if d.IsZero() {
		return nil
	}
	return &Mark{Version: d.Version, Stamp: d.Stamp, WebhookID: d.WebhookID, BodyDigest: hex.EncodeToString(d.Digest)}
}

// ErrNoState means the state topic holds no record of the order.
var ErrNoState = errors.New("statestore: no state for the order")

// Inspect reads the state partition that holds orderID (placed among the topic's
// partitions by part, as the relays place it) to its end and describes the order.
func Inspect(ctx context.Context, kafkaOpts []kgo.Opt, topic string, part *keys.Partitioner, orderID string, dec Decoder, p Partners) (*Inspection, error) {
	cl, err := kgo.NewClient(kafkaOpts...)
	if err != nil {
		return nil, fmt.Errorf("statestore: client: %w", err)
	}
	n, err := partitionCount(ctx, kadm.NewClient(cl), topic)
	cl.Close()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("statestore: state topic %s does not exist", topic)
	}
	id := part.Partition([]byte(orderID), n)
	st, err := Restore(ctx, kafkaOpts, topic, id, nil)
	if err != nil {
		return nil, err
	}
	v, ok := st.Orders[orderID]
	if !ok {
		return nil, fmt.Errorf("%w: order %q in %s/%d", ErrNoState, orderID, topic, id)
	}
	if l, ok := dec.(interface{ Learn(string) (uint64, error) }); ok {
		for _, s := range st.Schemas {
			_, _ = l.Learn(s) // one that does not parse leaves its events unreadable, shown below
		}
	}
	in := &Inspection{OrderID: orderID, Topic: topic, Partition: id, Layout: st.Layout}
	if IsNotOurs(v) {
		n, err := UnmarshalNotOurs(orderID, v)
		if err != nil {
			return in.unreadable(err), nil
		}
		in.NotOurs = &n
		return in, nil
	}
	if IsParked(v) {
		pk, err := UnmarshalParked(orderID, v)
		if err != nil {
			return in.unreadable(err), nil
		}
		in.Parked = &ParkedInfo{Reason: pk.Reason, Error: pk.Error, Since: pk.Since, OriginalBytes: len(pk.Original), HeldEvents: []string{}}
		for _, h := range pk.Held {
			in.Parked.HeldEvents = append(in.Parked.HeldEvents, h.ID)
		}
		v = pk.Original
	}
	o, err := OpenOrder(ctx, dec, orderID, v)
	if err != nil {
		return in.unreadable(err), nil
	}
	rec := o.Record
	in.Partner, in.Version, in.Acked, in.Pending = rec.Partner, rec.Version, markOf(rec.Acked), markOf(rec.Pending)
	in.Deferred = rec.Deferred
	if !rec.HeldSince.IsZero() {
		since := rec.HeldSince
		in.HeldSince = &since
	}
	for _, ev := range o.Events {
		in.Events = append(in.Events, InspectedEvent{ID: ev.ID, Kind: ev.Payload.Kind(), OccurredAt: ev.OccurredAt})
	}
	s, err := o.Render(nil, nil, LastEnvelope, p, time.Now())
	switch {
	case errors.Is(err, fold.ErrNotPlaced):
		in.Held = "the order's placement has not arrived: its events wait"
	case err != nil && errors.As(err, new(*fold.Error)):
		in.Unreadable = err.Error() // the stored events no longer fold
	case err != nil:
		return nil, fmt.Errorf("statestore: inspect order %s: %w", orderID, err)
	default:
		in.Snapshot = s.Body
	}
	return in, nil
}

// unreadable records why the order's state cannot be read: an answer of the inspection,
// not an error of it.
func (in *Inspection) unreadable(err error) *Inspection {
	in.Unreadable = err.Error()
	return in
}
