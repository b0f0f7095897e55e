package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// Stamps stay near the clock. A snapshot's stamp is its newest event's time, clipped to
// the clock, and at least the previous stamp + 1 s (fold.NextEnvelope): strictly
// increasing per order (P2), it runs ahead of the clock only while an order gets more
// than one snapshot a second. A partner that checks timestamp tolerance would refuse a
// stamp far ahead, so at MaxClockSkew the next snapshot waits: its events are stored
// with the order (the record marked Deferred, which survives a restart or a move to
// another replica), nothing is sent, and once the clock allows a later stamp the order's
// snapshot of that moment is rendered and sent; the events that arrive meanwhile fold
// into it (coalescing). Strict increase is never given up.

// deferredDue is when a deferred order's snapshot may be rendered: its next stamp,
// floor + 1 s, is within MaxClockSkew of the clock.
func (r *Relay) deferredDue(floor time.Time) time.Time {
	return floor.Truncate(time.Second).Add(time.Second - r.cfg.MaxClockSkew)
}

// renderDeferred stages, in this transaction, the snapshots of the deferred orders whose
// time has come, on the partitions the relay owns and fetches.
func (r *Relay) renderDeferred(ctx context.Context, b *batch) {
	now := time.Now()
	var work []*keyWork
	r.mu.Lock()
	for id, p := range r.parts {
		if r.unitHeld(id) {
			continue
		}
		for key, floor := range p.deferred {
			if _, parked := p.parked[key]; !parked && !now.Before(r.deferredDue(floor)) {
				work = append(work, &keyWork{p: p, sp: b.part(p), key: key, render: true})
			}
		}
	}
	r.mu.Unlock()
	for _, w := range work {
		if err := r.processKeySafe(ctx, b, w); err != nil {
			// Not retried every cycle: the order's next event (or restore) takes it up.
			r.log.Error("deferred snapshot not rendered; the order's next event renders it", "order_id", w.key, "err", err)
			w.sp.mu.Lock()
			w.sp.deferred[w.key] = time.Time{}
			w.sp.mu.Unlock()
		}
	}
}

// renderCurrent renders a deferred order's current snapshot into the batch (or defers
// it again, if the clock is not there yet after all).
func (r *Relay) renderCurrent(ctx context.Context, b *batch, w *keyWork) error {
	v := w.sp.value(w.key)
	if v == nil {
		w.sp.mu.Lock()
		w.sp.deferred[w.key] = time.Time{}
		w.sp.mu.Unlock()
		return nil
	}
	st, err := statestore.OpenOrder(ctx, r.codec, w.key, v)
	if err != nil {
		return fmt.Errorf("relay: deferred order %s: %w", w.key, err)
	}
	if !st.Record.Deferred {
		return nil // rendered in this transaction already, with new events
	}
	snap, err := fold.Fold(st.Events)
	if err != nil {
		return fmt.Errorf("relay: deferred order %s: its stored events no longer fold: %w", w.key, err)
	}
	last := &kgo.Record{Topic: r.cfg.StateTopic, Partition: w.p.id, Offset: -1}
	if _, err := r.stage(ctx, b, w, st, merged{events: st.Events, snap: snap}, nil, trace.SpanContext{}, last); err != nil {
		return err
	}
	return nil
}
