package relay

import (
	"fmt"
	"time"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/statestore"
)

// Orphans expire (P4). Events that arrive before their order's placement are stored and
// wait for it, each such record marked with the time the order's first one was stored
// (statestore.Record.HeldSince). A partition keeps those times of its orders (restored
// from the headers, kept in step by apply), so that each cycle finds the orders that
// have waited OrphanAfter without reading any state: their events go to the
// dead-letter topic as `orphan`, each with its canonical bytes (a replay after the
// placement folds them in), and their state is tombstoned, in the cycle's transaction.

// expireOrphans dead-letters and tombstones, in b, the orders that waited for their
// placement for OrphanAfter or longer. An order this batch changes already (its
// placement may have arrived) is left for the next cycle; a parked one stays parked.
func (r *Relay) expireOrphans(b *batch) {
	if r.cfg.OrphanAfter <= 0 {
		return
	}
	now := time.Now()
	type expiring struct {
		p     *partition
		key   string
		since time.Time
	}
	var due []expiring
	r.mu.Lock()
	for id, p := range r.parts {
		if r.unitHeld(id) {
			continue
		}
		for key, since := range p.orphans {
			if _, parked := p.parked[key]; !parked && now.Sub(since) >= r.cfg.OrphanAfter {
				due = append(due, expiring{p, key, since})
			}
		}
	}
	r.mu.Unlock()
	for _, e := range due {
		sp := b.part(e.p)
		if _, staged, _ := sp.snapshot(e.key); staged {
			continue
		}
		v := e.p.orders[e.key]
		rec, err := statestore.Unmarshal(e.key, v)
		if err != nil || rec.HeldSince.IsZero() {
			// The index and the record disagree (not expected): the record decides, and the
			// order's next write sets the index again.
			r.log.Error("orphan index: the order's record is no waiting orphan; left as it is", "order_id", e.key, "partition", e.p.id, "err", err)
			r.mu.Lock()
			delete(e.p.orphans, e.key)
			r.mu.Unlock()
			continue
		}
		why := fmt.Sprintf("order %s: its events waited %s for the order's placement (since %s; state.orphan_after %s), which never arrived; the order's state is removed. Replay once the placement is on the input: the event folds in then",
			e.key, now.Sub(e.since).Round(time.Second), e.since.Format(time.RFC3339), r.cfg.OrphanAfter)
		for _, raw := range rec.Events {
			b.deadLetter(r.dlq, deadletter.Record{
				OrderID: e.key, Partner: rec.Partner, Stage: deadletter.StageFold, Reason: ReasonOrphan, Error: why,
				SourceTopic: r.cfg.StateTopic, SourcePartition: e.p.id, SourceOffset: -1, Value: raw,
			})
		}
		sp.stage(e.key, nil, nil)
		sp.mu.Lock()
		sp.expiredOrphans++
		sp.mu.Unlock()
	}
}

// indexOrphan keeps p's orphan index in step with an order's committed value v (nil: a
// tombstone). Called by apply, under r.mu.
func indexOrphan(p *partition, key string, v []byte) {
	if since := statestore.HeldSince(v); !since.IsZero() {
		p.orphans[key] = since
	} else if len(p.orphans) > 0 {
		delete(p.orphans, key)
	}
}

// oldestOrphan is the time since which p's longest-waiting orphan waits (zero: none).
func oldestOrphan(p *partition) time.Time {
	var oldest time.Time
	for _, since := range p.orphans {
		if oldest.IsZero() || since.Before(oldest) {
			oldest = since
		}
	}
	return oldest
}
