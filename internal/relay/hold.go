package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/wait"
)

// Hold is an input topic partition whose next record needs a dependency that is down (the
// schema registry): retrying can change the outcome, so the record is neither
// dead-lettered nor skipped. Only that partition waits; the others flow (P8).
//
// The transaction that met the record aborts (the input rewinds to its last commit, so
// nothing of the partition is half done), the partition's fetching is paused, and a probe
// decodes the record again with backoff, outside any transaction. When the dependency
// answers (the record decodes, or fails for a reason of its own, which makes it a dead
// letter like any bad record), fetching resumes from the last commit.
type Hold struct {
	Topic     string    `json:"topic"`
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

// holdsOf splits the errors of a poll's orders into holds (one per topic partition, the
// lowest offset) and the rest.
func holdsOf(errs []error) (map[tp]*holdError, error) {
	holds := map[tp]*holdError{}
	var rest error
	for _, err := range errs {
		var he *holdError
		if errors.As(err, &he) {
			k := tp{he.rec.Topic, he.rec.Partition}
			if h := holds[k]; h == nil || he.rec.Offset < h.rec.Offset {
				holds[k] = he
			}
			continue
		}
		rest = cmpErr(rest, err)
	}
	return holds, rest
}

// hold pauses the partitions of holds and starts their probes. The caller aborts the
// transaction, which rewinds them to their last commit.
func (r *Relay) hold(holds map[tp]*holdError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := map[string][]int32{}
	for k, he := range holds {
		if r.held[k] != nil {
			continue
		}
		// A unit's hold ends with the unit; a re-keyed partition's (no state) with Run.
		base := r.runCtx
		if !r.rekeyed[k.topic] {
			p := r.parts[k.partition]
			if p == nil {
				continue
			}
			base = p.ctx
		}
		h := &Hold{Topic: k.topic, Partition: k.partition, Offset: he.rec.Offset, Reason: reasonOf(he.err, ReasonDecodeFailed), Error: he.err.Error(),
			Since: time.Now(), value: append([]byte(nil), he.rec.Value...)}
		var ctx context.Context
		ctx, h.cancel = context.WithCancel(base)
		r.held[k] = h
		ps[k.topic] = append(ps[k.topic], k.partition)
		r.stats.holds.Add(1)
		r.metrics.add(ctx, r.metrics.holds, 1, reasonAttr(h.Reason))
		r.log.Warn("partition held: its next record needs a dependency that is unavailable; other partitions go on",
			"topic", k.topic, "partition", k.partition, "offset", h.Offset, "reason", h.Reason, "err", h.Error)
		go r.probe(ctx, h)
	}
	if len(ps) > 0 {
		r.cl.PauseFetchPartitions(ps)
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
	k := tp{h.Topic, h.Partition}
	if r.held[k] != h {
		return
	}
	delete(r.held, k)
	h.cancel()
	if r.rekeyed[h.Topic] || !r.paused[h.Partition] {
		r.cl.ResumeFetchPartitions(map[string][]int32{h.Topic: {h.Partition}})
	}
	r.log.Info("partition released: the dependency answers again", "topic", h.Topic, "partition", h.Partition,
		"held_for", time.Since(h.Since).Round(time.Millisecond), "probes", h.Probes)
}

// unitHeld reports whether any input of unit id is held. r.mu is held.
func (r *Relay) unitHeld(id int32) bool {
	for _, t := range r.direct {
		if r.held[tp{t, id}] != nil {
			return true
		}
	}
	return false
}

// dropHold forgets the hold of a partition that is no longer owned. r.mu is held.
func (r *Relay) dropHold(k tp) {
	if h := r.held[k]; h != nil {
		h.cancel()
		delete(r.held, k)
	}
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
