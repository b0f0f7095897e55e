package relay

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// seedLags gives each newly assigned partition its lag before the first fetch brings
// records: the end offset minus the group's committed offset (or the log start when the
// group has none, as the relay starts there). Fetches carry the high watermark only with
// records, so without this an idle partition assigned again after a rebalance would have
// no lag at all, and a dashboard would show a gap where the answer is 0. It runs off the
// group's callbacks, best effort: an error leaves the gauge to the next fetch, and an
// assignment that changed meanwhile (gen) discards the answer.
func (r *Relay) seedLags(ctx context.Context, assigned map[string][]int32, gen uint64) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics := slices.Collect(maps.Keys(assigned))
	adm := kadm.NewClient(r.cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		r.log.Debug("consumer lag: end offsets unknown until records arrive", "err", err)
		return
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		r.log.Debug("consumer lag: start offsets unknown until records arrive", "err", err)
		return
	}
	commits, err := adm.FetchOffsets(ctx, r.cfg.Group)
	if err != nil {
		r.log.Debug("consumer lag: committed offsets unknown until records arrive", "err", err)
		return
	}
	seed := map[tp]int64{}
	for t, ids := range assigned {
		for _, id := range ids {
			end, ok := ends.Lookup(t, id)
			if !ok || end.Err != nil {
				continue
			}
			next := int64(-1)
			if c, ok := commits.Lookup(t, id); ok && c.Err == nil && c.At >= 0 {
				next = c.At
			} else if s, ok := starts.Lookup(t, id); ok && s.Err == nil {
				next = s.Offset
			}
			if next >= 0 {
				seed[tp{t, id}] = max(end.Offset-next, 0)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.assignGen != gen {
		return // revoked or assigned again meanwhile: the next seed or fetch answers
	}
	for k, n := range seed {
		if _, fetched := r.lags[k]; !fetched {
			r.lags[k] = n
		}
	}
}
