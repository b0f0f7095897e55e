package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/ucprelay/ucprelay/internal/statestore"
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
	// lag is the records between the last one fetched and the high watermark.
	lag atomic.Int64

	mu       sync.Mutex
	outcomes map[string]Outcome // delivery outcomes not yet written, newest per order
}

// onAssigned restores the state of each newly assigned partition before its records are
// fetched, then resends the snapshots its state marks pending. A partition whose state
// was written for another partition count stops the relay: processing it would fold
// orders without their history.
func (r *Relay) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ids := assigned[r.cfg.InputTopic]
	r.mu.Lock()
	r.joined = true
	r.restoring += len(ids)
	r.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			err := r.restore(ctx, id)
			r.mu.Lock()
			r.restoring--
			r.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				r.setFatal(err)
			}
		})
	}
	wg.Wait()
}

func (r *Relay) restore(ctx context.Context, id int32) error {
	log := r.log.With("partition", id)
	log.Info("restoring state", "topic", r.cfg.StateTopic)
	last := time.Now()
	st, err := statestore.Restore(ctx, r.kafka, r.cfg.StateTopic, id, func(next, end int64) {
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			log.Info("restoring state", "offset", next, "end", end)
		}
	})
	if err != nil {
		return fmt.Errorf("relay: restore state partition %d: %w", id, err)
	}
	n := r.inputPartitions.Load()
	if st.Layout == nil || st.Layout.Partitions != n {
		r.metrics.add(ctx, r.metrics.layoutMismatch, 1)
	}
	switch {
	case st.Layout == nil:
		return fmt.Errorf("relay: %w: state partition %s/%d has no layout record; run `ucprelay state migrate` (a migration may be in progress)",
			ErrLayout, r.cfg.StateTopic, id)
	case st.Layout.Partitions != n:
		return fmt.Errorf("relay: %w: state partition %s/%d was written for %d partitions, the input has %d; run `ucprelay state migrate`",
			ErrLayout, r.cfg.StateTopic, id, st.Layout.Partitions, n)
	}
	p := &partition{id: id, orders: st.Orders, outcomes: map[string]Outcome{}}
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.stats.restored.Add(st.Records)
	r.metrics.add(ctx, r.metrics.restored, st.Records)
	log.Info("state restored", "orders", len(st.Orders), "records", st.Records, "bytes", st.Bytes,
		"pending", len(st.Pending), "took", st.Took.Round(time.Millisecond))
	var jobs []Job
	settle := time.Now().Add(r.cfg.ResendSettle)
	for _, oid := range st.Pending {
		j, err := r.resendJob(ctx, oid, st.Orders[oid])
		if err != nil {
			log.Error("pending snapshot cannot be rebuilt; it stays pending", "order_id", oid, "err", err)
			continue
		}
		j.NotBefore = settle
		jobs = append(jobs, j)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts[id] = p
	for _, j := range jobs {
		r.stats.resent.Add(1)
		r.submit(p, j)
	}
	return nil
}

// resendJob rebuilds the pending snapshot of a restored order with the envelope its state
// recorded, so the partner gets the same Webhook-Id, stamp and body again.
func (r *Relay) resendJob(ctx context.Context, orderID string, v []byte) (Job, error) {
	o, err := statestore.OpenOrder(ctx, r.codec, orderID, v)
	if err != nil {
		return Job{}, err
	}
	s, err := o.Render(nil, statestore.ResendEnvelope, r.partners)
	if err != nil {
		return Job{}, err
	}
	return r.job(ctx, orderID, s, trace.SpanContext{}), nil
}

// ErrLayout means a state partition does not match the input topic's partitioning.
var ErrLayout = errors.New("state layout does not match the input topic")

// onRevoked stops the deliveries of revoked (or lost) partitions and waits until none is
// in flight, so that the next owner's first POST of an order can never race an older one
// from here (P2). Their unwritten outcomes are dropped: the next owner resends what the
// state marks pending, with the same Webhook-Id and stamp.
func (r *Relay) onRevoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	var gone []*partition
	r.mu.Lock()
	var unpause []int32
	for _, id := range revoked[r.cfg.InputTopic] {
		if p := r.parts[id]; p != nil {
			delete(r.parts, id)
			p.cancel()
			gone = append(gone, p)
		}
		if r.paused[id] {
			delete(r.paused, id)
			unpause = append(unpause, id)
		}
	}
	r.mu.Unlock()
	if len(unpause) > 0 {
		cl.ResumeFetchPartitions(map[string][]int32{r.cfg.InputTopic: unpause})
	}
	for _, p := range gone {
		p.inflight.Wait()
	}
	if len(gone) > 0 {
		r.log.Info("partitions released", "partitions", revoked[r.cfg.InputTopic])
	}
}
