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
// group's callbacks and retries with backoff what it could not learn (a broker that is
// busy, a topic whose leader is not known yet) until every partition has its lag, a
// fetch answered first, or the partitions are no longer this assignment's (gen) or the
// relay stops (ctx).
func (r *Relay) seedLags(ctx context.Context, assigned map[string][]int32, gen uint64) {
	wait := seedBackoffMin
	for {
		missing, err := r.seedLagsOnce(ctx, assigned, gen)
		if missing == 0 {
			return
		}
		r.log.Debug("consumer lag: not known yet for some partitions; retrying", "partitions", missing, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, seedBackoffMax)
	}
}

// seedBackoffMin and seedBackoffMax bound the wait between two attempts of seedLags.
var seedBackoffMin, seedBackoffMax = 100 * time.Millisecond, 5 * time.Second

// seedLagsOnce makes one attempt; it answers how many of the partitions still this
// assignment's have no lag.
func (r *Relay) seedLagsOnce(ctx context.Context, assigned map[string][]int32, gen uint64) (int, error) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics := slices.Collect(maps.Keys(assigned))
	adm := kadm.NewClient(r.cl)
	seed := map[tp]int64{}
	ends, err := adm.ListEndOffsets(actx, topics...)
	var starts kadm.ListedOffsets
	var commits kadm.OffsetResponses
	if err == nil {
		starts, err = adm.ListStartOffsets(actx, topics...)
	}
	if err == nil {
		commits, err = adm.FetchOffsets(actx, r.cfg.Group)
	}
	if err == nil {
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
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	missing := 0
	for t, ids := range assigned {
		for _, id := range ids {
			k := tp{t, id}
			if r.seedGen[k] != gen {
				continue // revoked, or assigned again: that assignment's seed answers
			}
			if _, known := r.lags[k]; known {
				continue // a fetch answered, or an earlier attempt did
			}
			if n, ok := seed[k]; ok {
				r.lags[k] = n
				continue
			}
			missing++
		}
	}
	return missing, err
}
