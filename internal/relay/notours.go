package relay

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/statestore"
)

// Only a partner's own orders leave (P1 counts the events of a partner's orders). A
// merchant's bus carries every order, most not placed through an agent: an order whose
// placement names no configured partner, or names none while no default_partner claims
// the input, is not the relay's. Sending it to some partner would leak a customer's
// data, and holding it would keep state for orders that never leave. So when its
// placement is folded, the order's state becomes a small not-ours marker (its events are
// not kept), nothing is sent or dead-lettered, and its later records are skipped and
// counted (ucprelay.not_ours.records by topic).

// ours reports whether snapshots of partner may be sent: it is configured.
func (r *Relay) ours(partner string) bool {
	if partner == "" {
		return false
	}
	_, ok := r.cfg.Partners[partner]
	return ok
}

// markNotOurs replaces the order's state with a not-ours marker; events counts the
// events dropped with it (the placement and those held before it).
func (r *Relay) markNotOurs(w *keyWork, partner string, events int) {
	w.sp.stage(w.key, statestore.NotOurs{Partner: partner, Since: time.Now().UTC()}.Marshal(), nil)
	w.sp.mu.Lock()
	w.sp.notOurs = append(w.sp.notOurs, notOursOrder{key: w.key, partner: partner})
	w.sp.mu.Unlock()
	r.countNotOurs(w, w.recs[len(w.recs)-1].Topic, events)
}

// notOursOrder is an order a transaction marks not ours.
type notOursOrder struct{ key, partner string }

// skipNotOurs passes over the records of an order that is not ours, up to a `state drop`
// request, which removes the marker: the records after it (a corrected placement
// fetched in the same poll) are the order's again, left in w.recs for the caller to
// process; it reports whether there are any.
func (r *Relay) skipNotOurs(w *keyWork) bool {
	for i, rec := range w.recs {
		if deadletter.ReplayKindOf(rec.Headers) == deadletter.RequestDrop {
			r.drop(w, rec)
			w.recs = w.recs[i+1:]
			return len(w.recs) > 0
		}
		r.countNotOurs(w, rec.Topic, 1)
	}
	return false
}

// countNotOurs counts n records of not-ours orders, once the transaction commits (a
// transaction redone after an abort does not count them twice).
func (r *Relay) countNotOurs(w *keyWork, topic string, n int) {
	w.sp.mu.Lock()
	if w.sp.notOursRecords == nil {
		w.sp.notOursRecords = map[string]int{}
	}
	w.sp.notOursRecords[topic] += n
	w.sp.mu.Unlock()
}

// appliedNotOurs counts what a committed transaction found not ours.
func (r *Relay) appliedNotOurs(ctx context.Context, id int32, sp *stagedPart) {
	for _, n := range sp.notOurs {
		r.stats.notOursOrders.Add(1)
		r.log.Info("order not ours: its placement names no configured partner; nothing of it is kept or sent",
			"order_id", n.key, "partition", id, "partner", n.partner)
	}
	for topic, n := range sp.notOursRecords {
		r.stats.notOurs.Add(int64(n))
		r.metrics.add(ctx, r.metrics.notOurs, int64(n), attribute.String("topic", topic))
	}
}
