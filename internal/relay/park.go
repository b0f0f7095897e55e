package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// Unreadable state is one order's problem (P8). An order whose stored record does not
// parse, whose stored events do not decode, or whose stored events no longer fold is
// parked: its record is kept byte for byte inside a parked record (statestore.Parked),
// a state_unreadable dead letter is written once (none for a record of a newer ucprelay,
// which is no fault: the newer relay reads it again after a rollback is undone), and the
// order's later events are held with it, never folded onto a fresh empty state (that would
// send a partial order with reset stamps). Its partition goes on.
//
// Each time the order is touched (an event, `ucprelay state release`), the relay tries the
// original again: once it reads (after an upgrade), the held events fold onto it and the
// order is current again. `ucprelay state drop` removes it.

// opened is an order's stored state as processKey found it.
type opened struct {
	// order is the readable state; nil while the order is parked.
	order *statestore.Order
	// parked is the order's parked record; nil when its state reads.
	parked *statestore.Parked
	// fresh: parked by this transaction (its dead letter is due).
	fresh bool
	// released are the held events of a parked order that reads again, to fold as new.
	released []orderevents.Event
	// held are the parked record's held events, kept if the order parks again.
	held []statestore.HeldEvent
	// original is the order's stored record value (inside the parked record if parked).
	original []byte
	// newer: a newer ucprelay wrote the record; parking it is no fault.
	newer bool
	// unparked: the order was parked and its original reads again.
	unparked bool
}

// holds reports whether the order has the event already (stored, released or held).
func (o *opened) holds(id string) bool {
	if o.parked != nil {
		return o.parked.Holds(id)
	}
	if hasEvent(o.order.Events, id) {
		return true
	}
	return hasEvent(o.released, id)
}

// park turns o into a parked order, keeping what it held.
func (o *opened) park(reason string, err error) {
	o.parked = &statestore.Parked{Reason: reason, Error: err.Error(), Since: time.Now().UTC(), Original: o.original, Held: o.held}
	o.order, o.released, o.fresh = nil, nil, true
	o.newer = errors.Is(err, statestore.ErrNewerFormat)
}

// openOrder opens the order's stored state (staged in this batch, or committed).
func (r *Relay) openOrder(ctx context.Context, w *keyWork, rec *kgo.Record) *opened {
	v := w.sp.value(w.key)
	o := &opened{original: v}
	if statestore.IsParked(v) {
		pk, err := statestore.UnmarshalParked(w.key, v)
		if err != nil {
			// Not even the parked record parses: keep all of it as the original.
			o.park(ReasonStateUnreadable, err)
			return o
		}
		o.original, o.held = pk.Original, pk.Held
		st, err := statestore.OpenOrder(ctx, r.codec, w.key, pk.Original)
		if err == nil {
			var evs []orderevents.Event
			for _, h := range pk.Held {
				ev, derr := r.codec.Decode(ctx, h.Value)
				if derr != nil {
					err = fmt.Errorf("held event %s: %w", h.ID, derr)
					break
				}
				evs = append(evs, ev)
			}
			if err == nil {
				r.log.Info("parked order reads again: its held events fold onto its state", "order_id", w.key,
					"held", len(evs), "parked_since", pk.Since)
				o.order, o.released, o.unparked = st, evs, true
				return o
			}
		}
		pk.Error = err.Error()
		o.parked = pk
		return o
	}
	st, err := statestore.OpenOrder(ctx, r.codec, w.key, v)
	if err != nil {
		o.park(ReasonStateUnreadable, err)
		return o
	}
	o.order = st
	return o
}

// keepParked writes a parked order's record with its new events held, and on the first
// time the order's dead letter.
func (r *Relay) keepParked(ctx context.Context, w *keyWork, o *opened, news []orderevents.Event, newRecs map[string]*kgo.Record, release bool) error {
	pk := o.parked
	if len(news) == 0 && !o.fresh {
		if release {
			r.log.Warn("state release: the order's state still cannot be read; it stays parked", "order_id", w.key, "err", pk.Error)
		}
		return nil
	}
	// The held events that fit the state record are kept, in arrival order; the ones
	// after them are dead-lettered as order_too_large.
	changed := o.fresh
	for i, ev := range news {
		raw, err := r.codec.EncodeSingleObject(ev)
		if err != nil {
			return fmt.Errorf("relay: order %s: encode held event %s: %w", w.key, ev.ID, err)
		}
		pk.Held = append(pk.Held, statestore.HeldEvent{ID: ev.ID, Value: raw})
		if v := pk.Marshal(); !r.fitsState(w.key, v) {
			pk.Held = pk.Held[:len(pk.Held)-1]
			for _, ev := range news[i:] {
				r.tooLarge(w, ev, len(v), newRecs[ev.ID])
			}
			break
		}
		changed = true
	}
	if !changed {
		return nil
	}
	v := pk.Marshal()
	if o.fresh {
		newer := o.newer
		r.log.Error("order parked: its stored state cannot be read; its events are held with it", "order_id", w.key,
			"partition", w.p.id, "err", pk.Error, "held", len(pk.Held), "newer_relay", newer,
			"next", "`ucprelay state inspect --order` shows it; fix (e.g. upgrade) and `ucprelay state release`, or `ucprelay state drop`")
		if !newer {
			w.dead = append(w.dead, deadletter.Record{
				OrderID: w.key, Stage: deadletter.StageFold, Reason: pk.Reason, Error: pk.Error,
				SourceTopic: r.cfg.StateTopic, SourcePartition: w.p.id, SourceOffset: -1,
				Value: deadletter.EncodeReference(deadletter.Reference{OrderID: w.key}),
			})
		}
	}
	w.sp.stage(w.key, v, nil)
	w.sp.markParked(w.key, pk.Reason)
	if o.fresh {
		w.sp.mu.Lock()
		w.sp.freshParked = append(w.sp.freshParked, pk.Reason)
		w.sp.mu.Unlock()
	}
	return nil
}

// drop removes an order at the operator's request (`ucprelay state drop`): a tombstone
// in the state topic; what the order held is logged.
func (r *Relay) drop(w *keyWork, rec *kgo.Record) {
	v := w.sp.value(w.key)
	held, events := 0, 0
	if statestore.IsParked(v) {
		if pk, err := statestore.UnmarshalParked(w.key, v); err == nil {
			held = len(pk.Held)
		}
	} else if st, err := statestore.Unmarshal(w.key, v); err == nil {
		events = len(st.Events)
	}
	r.log.Warn("state drop: order removed at the operator's request", "order_id", w.key, "had_state", v != nil,
		"stored_bytes", len(v), "stored_events", events, "held_events", held,
		"request", fmt.Sprintf("%s/%d@%d", rec.Topic, rec.Partition, rec.Offset))
	if v == nil {
		return
	}
	w.sp.stage(w.key, nil, nil)
	w.sp.markParked(w.key, "")
	w.sp.mu.Lock()
	w.sp.dropped++
	w.sp.mu.Unlock()
}

// errNoLongerFolds is why an order whose stored events no longer fold is parked.
func errNoLongerFolds(evs []orderevents.Event) error {
	_, err := fold.Fold(evs)
	if err == nil {
		err = errors.New("fold failed")
	}
	return fmt.Errorf("the stored events no longer fold: %w", err)
}
