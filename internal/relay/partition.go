package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/wait"
)

// partition is an owned input partition and the state of its orders.
type partition struct {
	id int32
	// orders maps order id to its committed state record value. Only the relay loop
	// reads and writes it (apply runs between folds).
	orders map[string][]byte
	// ctx ends when the partition is revoked: its deliveries stop.
	ctx    context.Context
	cancel context.CancelFunc
	// inflight counts its jobs in the delivery queue; revocation waits for zero.
	inflight sync.WaitGroup
	pending  atomic.Int64

	// resends are restored pending snapshots not yet submitted (feedResends). Under r.mu.
	resends []Job
	// schemaStored: the partition holds this relay's schema record (schema.go).
	schemaStored bool
	// deferred maps the orders whose newest snapshot waits for the clock to the newest
	// stamp their partner may have seen (clock.go). Written by the loop goroutine (apply,
	// restore), read by the fold workers while it waits for them.
	deferred map[string]time.Time
	// parked maps the orders whose stored state cannot be read to why (park.go): parked
	// records, and records found unreadable at restore. Loop goroutine and r.mu.
	parked map[string]string
	// orphans maps the orders whose events wait for their placement to since when
	// (orphans.go). Loop goroutine and r.mu.
	orphans map[string]time.Time

	mu       sync.Mutex
	outcomes map[string]Outcome // delivery outcomes not yet written, newest per order
}

// onAssigned pauses each newly assigned unit (partition p of every direct input, inputs.go)
// and restores its state in the background; the unit is fetched once restored. A restore
// that fails (the broker, or an open transaction that keeps the partition from its end
// past RestoreStableTimeout) is reported in /readyz and retried with backoff; only a state
// written for another partition count or partitioner stops the relay: processing it would
// fold orders without their history. A re-keyed input's partitions need nothing.
func (r *Relay) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	pause := map[string][]int32{}
	var units []int32
	for _, t := range r.direct {
		for _, id := range assigned[t] {
			pause[t] = append(pause[t], id)
			if !slices.Contains(units, id) {
				units = append(units, id)
			}
		}
	}
	if len(pause) > 0 {
		cl.PauseFetchPartitions(pause)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(assigned) > 0 {
		r.joined = true
		r.assignGen++
		for t, ids := range assigned {
			for _, id := range ids {
				r.seedGen[tp{t, id}] = r.assignGen
			}
		}
		go r.seedLags(ctx, assigned, r.assignGen)
	}
	for t, ids := range pause {
		for _, id := range ids {
			if r.assignedTP[id] == nil {
				r.assignedTP[id] = map[string]bool{}
			}
			r.assignedTP[id][t] = true
		}
	}
	for _, id := range units {
		if !r.unitComplete(id) {
			r.restoreIssues[id] = r.incomplete(id)
			r.log.Error("a partition of some inputs only is assigned here; it waits unprocessed", "partition", id, "issue", r.restoreIssues[id])
			continue
		}
		delete(r.restoreIssues, id)
		if t := r.restores[id]; t != nil {
			t.cancel()
		}
		t := &restoreTask{}
		var tctx context.Context
		tctx, t.cancel = context.WithCancel(ctx)
		r.restores[id] = t
		r.restoring++
		go r.restoreLoop(tctx, id, t)
	}
}

// restoreTask is a partition's restore in progress.
type restoreTask struct{ cancel context.CancelFunc }

func (r *Relay) restoreLoop(ctx context.Context, id int32, t *restoreTask) {
	defer func() {
		r.mu.Lock()
		r.restoring--
		if r.restores[id] == t {
			delete(r.restores, id)
		}
		r.mu.Unlock()
	}()
	for n := 0; ; n++ {
		select {
		case r.restoreSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := r.restore(ctx, id, t)
		<-r.restoreSlots
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		if err == nil {
			delete(r.restoreIssues, id)
		} else {
			r.restoreIssues[id] = fmt.Sprintf("partition %d: %v (attempt %d, retrying)", id, err, n+1)
		}
		r.mu.Unlock()
		switch {
		case err == nil:
			return
		case errors.Is(err, ErrLayout):
			r.setFatal(err)
			return
		}
		r.log.Error("restore failed; retrying", "partition", id, "attempt", n+1, "err", err)
		if wait.Sleep(ctx, r.cfg.Backoff.Delay(n, nil)) != nil {
			return
		}
	}
}

func (r *Relay) restore(ctx context.Context, id int32, t *restoreTask) error {
	log := r.log.With("partition", id)
	log.Info("restoring state", "topic", r.cfg.StateTopic)
	last := time.Now()
	st, err := statestore.RestoreBounded(ctx, r.kafka, r.cfg.StateTopic, id, r.cfg.RestoreStableTimeout, func(next, end int64) {
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			log.Info("restoring state", "offset", next, "end", end)
		}
	})
	if err != nil {
		return fmt.Errorf("relay: restore state partition %d: %w", id, err)
	}
	n := r.inputPartitions.Load()
	want := r.part.Name()
	if st.Layout == nil || st.Layout.Partitions != n || (st.Layout.Partitioner != "" && st.Layout.Partitioner != want) {
		r.metrics.add(ctx, r.metrics.layoutMismatch, 1)
	}
	switch {
	case st.Layout == nil:
		return fmt.Errorf("relay: %w: state partition %s/%d has no layout record; run `ucprelay state migrate` (a migration may be in progress)",
			ErrLayout, r.cfg.StateTopic, id)
	case st.Layout.Partitions != n:
		return fmt.Errorf("relay: %w: state partition %s/%d was written for %d partitions, the input has %d; run `ucprelay state migrate`",
			ErrLayout, r.cfg.StateTopic, id, st.Layout.Partitions, n)
	case st.Layout.Partitioner != "" && st.Layout.Partitioner != want:
		return fmt.Errorf("relay: %w: state partition %s/%d places orders by the %s partitioner, this relay's kafka.partitioner is %s: set kafka.partitioner to the producers' (all replicas alike)",
			ErrLayout, r.cfg.StateTopic, id, st.Layout.Partitioner, want)
	}
	for _, s := range st.Schemas {
		if _, err := r.codec.Learn(s); err != nil {
			log.Warn("a schema recorded in the state partition does not parse; events stored with it park their orders", "err", err)
		}
	}
	p := &partition{id: id, orders: st.Orders, outcomes: map[string]Outcome{}, parked: map[string]string{}, deferred: st.Deferred, orphans: st.Orphans}
	if p.orphans == nil {
		p.orphans = map[string]time.Time{}
	}
	if p.deferred == nil {
		p.deferred = map[string]time.Time{}
	}
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.schemaStored = slices.ContainsFunc(st.Schemas, func(s string) bool { return s == r.codec.Schema() })
	for _, oid := range st.Parked {
		p.parked[oid] = ReasonStateUnreadable
	}
	for oid, err := range st.Unreadable {
		p.parked[oid] = ReasonStateUnreadable
		log.Error("order's state record cannot be read; the order is parked when its next event arrives", "order_id", oid, "err", err)
	}
	r.stats.restored.Add(st.Records)
	r.metrics.add(ctx, r.metrics.restored, st.Records)
	var jobs []Job
	settle := time.Now().Add(r.cfg.ResendSettle)
	for _, oid := range st.Pending {
		j, err := r.resendJob(ctx, oid, st.Orders[oid])
		if err != nil {
			p.parked[oid] = ReasonStateUnreadable
			log.Error("pending snapshot cannot be rebuilt; it stays pending and the order is parked when its next event arrives", "order_id", oid, "err", err)
			continue
		}
		j.NotBefore = settle
		jobs = append(jobs, j)
	}
	log.Info("state restored", "orders", len(st.Orders), "records", st.Records, "bytes", st.Bytes,
		"pending", len(st.Pending), "parked", len(p.parked), "took", st.Took.Round(time.Millisecond))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.restores[id] != t {
		p.cancel()
		return nil // revoked (and maybe assigned again) meanwhile
	}
	r.parts[id] = p
	// Resends go through the same bound as new snapshots: feedResends submits them while
	// the delivery queue holds fewer than MaxPending.
	p.resends = jobs
	r.feedResendsLocked()
	r.cl.ResumeFetchPartitions(r.unitPartitions(id))
	return nil
}

// feedResends submits restored partitions' pending snapshots while fewer than MaxPending
// are pending.
func (r *Relay) feedResends() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.feedResendsLocked()
}

func (r *Relay) feedResendsLocked() {
	for _, p := range r.parts {
		for len(p.resends) > 0 && r.stats.pending.Load() < int64(r.cfg.MaxPending) {
			j := p.resends[0]
			p.resends = p.resends[1:]
			r.stats.resent.Add(1)
			r.submit(p, j)
		}
	}
}

// resendJob rebuilds the pending snapshot of a restored order with the envelope its state
// recorded, so the partner gets the same Webhook-Id, stamp and body again.
func (r *Relay) resendJob(ctx context.Context, orderID string, v []byte) (Job, error) {
	o, err := statestore.OpenOrder(ctx, r.codec, orderID, v)
	if err != nil {
		return Job{}, err
	}
	s, err := o.Render(nil, nil, statestore.ResendEnvelope, r.partners, time.Now())
	if err != nil {
		return Job{}, err
	}
	return r.job(orderID, s, trace.SpanContext{}), nil
}

// ErrLayout means a state partition does not match the input topic's partitioning.
var ErrLayout = errors.New("state layout does not match the input topic")

// onRevoked stops the deliveries of revoked (or lost) units and waits until none is in
// flight, so that the next owner's first POST of an order can never race an older one
// from here (P2). Their unwritten outcomes are dropped: the next owner resends what the
// state marks pending, with the same Webhook-Id and stamp. Losing one input's partition
// p loses unit p; what stays assigned of it waits, paused.
func (r *Relay) onRevoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	var gone []*partition
	resume, pause := map[string][]int32{}, map[string][]int32{}
	var units []int32
	r.mu.Lock()
	r.assignGen++
	for _, t := range r.consumedTopics() {
		for _, id := range revoked[t] {
			// No longer ours: no pause or hold may outlive the assignment.
			resume[t] = append(resume[t], id)
			r.dropHold(tp{t, id})
			delete(r.lags, tp{t, id})
			delete(r.seedGen, tp{t, id})
			if r.rekeyed[t] {
				continue
			}
			if a := r.assignedTP[id]; a != nil {
				delete(a, t)
				if len(a) == 0 {
					delete(r.assignedTP, id)
				}
			}
			if !slices.Contains(units, id) {
				units = append(units, id)
			}
		}
	}
	for _, id := range units {
		if t := r.restores[id]; t != nil {
			t.cancel()
			delete(r.restores, id)
		}
		delete(r.restoreIssues, id)
		for _, t := range r.direct {
			r.dropHold(tp{t, id})
		}
		if p := r.parts[id]; p != nil {
			delete(r.parts, id)
			p.cancel()
			gone = append(gone, p)
		}
		delete(r.paused, id)
		for t := range r.assignedTP[id] {
			pause[t] = append(pause[t], id)
		}
		if len(r.assignedTP[id]) > 0 {
			r.restoreIssues[id] = r.incomplete(id)
		}
	}
	r.mu.Unlock()
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
	}
	if len(pause) > 0 {
		cl.PauseFetchPartitions(pause)
	}
	for _, p := range gone {
		p.inflight.Wait()
	}
	if len(gone) > 0 {
		r.log.Info("partitions released", "partitions", units)
	}
}
