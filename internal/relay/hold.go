package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/wait"
)

// Hold is an input partition whose next record needs a dependency that is down (the
// schema registry): retrying can change the outcome, so the record is neither
// dead-lettered nor skipped. Only that partition waits; the others flow (P8).
//
// The transaction that met the record aborts (the input rewinds to its last commit, so
// nothing of the partition is half done), the partition's fetching is paused, and a probe
// decodes the record again with backoff, outside any transaction. When the dependency
// answers (the record decodes, or fails for a reason of its own, which makes it a dead
// letter like any bad record), fetching resumes from the last commit.
type Hold struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Reason    string    `json:"reason"`
	Error     string    `json:"error"`
	Since     time.Time `json:"since"`
	Probes    int       `json:"probes"`

	value  []byte
	cancel context.CancelFunc
}

// holdError reports an input record that needs an unavailable dependency.
type holdError struct {
	rec *kgo.Record
	err error
}

func (e *holdError) Error() string {
	return fmt.Sprintf("%s/%d@%d needs a dependency that is unavailable: %v", e.rec.Topic, e.rec.Partition, e.rec.Offset, e.err)
}

func (e *holdError) Unwrap() error { return e.err }

// holdsOf splits the errors of a poll's orders into holds (one per partition, the lowest
// offset) and the rest.
func holdsOf(errs []error) (map[int32]*holdError, error) {
	holds := map[int32]*holdError{}
	var rest error
	for _, err := range errs {
		var he *holdError
		if errors.As(err, &he) {
			if h := holds[he.rec.Partition]; h == nil || he.rec.Offset < h.rec.Offset {
				holds[he.rec.Partition] = he
			}
			continue
		}
		rest = cmpErr(rest, err)
	}
	return holds, rest
}

// hold pauses the partitions of holds and starts their probes. The caller aborts the
// transaction, which rewinds them to their last commit.
func (r *Relay) hold(holds map[int32]*holdError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []int32
	for id, he := range holds {
		p := r.parts[id]
		if p == nil || r.held[id] != nil {
			continue
		}
		h := &Hold{Partition: id, Offset: he.rec.Offset, Reason: reasonOf(he.err, ReasonDecodeFailed), Error: he.err.Error(),
			Since: time.Now(), value: append([]byte(nil), he.rec.Value...)}
		var ctx context.Context
		ctx, h.cancel = context.WithCancel(p.ctx)
		r.held[id] = h
		ps = append(ps, id)
		r.stats.holds.Add(1)
		r.metrics.add(ctx, r.metrics.holds, 1, reasonAttr(h.Reason))
		r.log.Warn("partition held: its next record needs a dependency that is unavailable; other partitions go on",
			"partition", id, "offset", h.Offset, "reason", h.Reason, "err", h.Error)
		go r.probe(ctx, h)
	}
	if len(ps) > 0 {
		r.cl.PauseFetchPartitions(map[string][]int32{r.cfg.InputTopic: ps})
	}
}

// probe decodes the held record again with backoff until the dependency answers, then
// releases the hold. It ends with the partition (revocation cancels ctx).
func (r *Relay) probe(ctx context.Context, h *Hold) {
	for n := 0; ; n++ {
		if wait.Sleep(ctx, r.cfg.Backoff.Delay(n, nil)) != nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.Backoff.Max)
		_, err := r.codec.Decode(pctx, h.value)
		cancel()
		r.mu.Lock()
		h.Probes = n + 1
		if err != nil {
			h.Error = err.Error()
		}
		r.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if err == nil || !isTransient(err) {
			r.release(h)
			return
		}
	}
}

// release ends a hold: the partition fetches again from its last commit.
func (r *Relay) release(h *Hold) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held[h.Partition] != h {
		return
	}
	delete(r.held, h.Partition)
	h.cancel()
	if !r.paused[h.Partition] {
		r.cl.ResumeFetchPartitions(map[string][]int32{r.cfg.InputTopic: {h.Partition}})
	}
	r.log.Info("partition released: the dependency answers again", "partition", h.Partition,
		"held_for", time.Since(h.Since).Round(time.Millisecond), "probes", h.Probes)
}

// dropHold forgets the hold of a partition that is no longer owned. r.mu is held.
func (r *Relay) dropHold(id int32) bool {
	h := r.held[id]
	if h == nil {
		return false
	}
	h.cancel()
	delete(r.held, id)
	return true
}

// Holds returns the held partitions, by partition.
func (r *Relay) Holds() []Hold {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Hold, 0, len(r.held))
	for _, h := range r.held {
		out = append(out, *h)
	}
	return out
}
