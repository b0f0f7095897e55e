package relay

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// errNotOwned: a poll returned records of a partition the relay dropped; the transaction
// aborts so that nothing of that partition is committed, and the client's own revocation
// follows.
var errNotOwned = errors.New("relay: records of a partition this replica no longer holds")

// reconcile drops the partitions the relay holds but the group coordinator no longer
// assigns to this member. It exists because kgo's GroupTransactSession calls
// OnPartitionsRevoked (and OnPartitionsLost) at most once per transaction: a second
// revocation before the transaction ends reaches the client but not the relay, which
// would otherwise go on delivering, and writing acknowledgements, for partitions another
// replica now owns (P2). It runs between transactions, whenever the group generation
// changed, against the coordinator's view of a stable group.
func (r *Relay) reconcile(ctx context.Context) {
	member, gen := r.cl.GroupMetadata()
	if member == "" || gen == r.lastGen {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	assigned, ok := r.describeAssignment(dctx, member)
	if !ok {
		return // not stable yet, or we are not listed: look again next cycle
	}
	r.lastGen = gen
	var gone []int32
	r.mu.Lock()
	for id := range r.parts {
		for _, t := range r.direct {
			if !assigned[tp{t, id}] {
				gone = append(gone, id)
				break
			}
		}
	}
	r.mu.Unlock()
	if len(gone) > 0 {
		r.log.Warn("the coordinator no longer assigns these partitions to this replica; releasing them", "partitions", gone, "generation", gen)
		r.onRevoked(ctx, r.cl, r.unitPartitions(gone...))
	}
}

// describeAssignment returns the partitions the coordinator assigns to member, and
// whether the answer can be trusted (the group is stable and lists the member).
func (r *Relay) describeAssignment(ctx context.Context, member string) (map[tp]bool, bool) {
	adm := kadm.NewClient(r.cl)
	out := map[tp]bool{}
	if r.cfg.GroupProtocol == GroupConsumer {
		gs, err := adm.DescribeConsumerGroups(ctx, r.cfg.Group)
		if err != nil {
			return nil, false
		}
		g, ok := gs[r.cfg.Group]
		if !ok || g.Err != nil || g.State != "Stable" {
			return nil, false
		}
		for _, m := range g.Members {
			if m.MemberID == member {
				for t, ps := range m.Assignment {
					for p := range ps {
						out[tp{t, p}] = true
					}
				}
				return out, true
			}
		}
		return nil, false
	}
	gs, err := adm.DescribeGroups(ctx, r.cfg.Group)
	if err != nil {
		return nil, false
	}
	g, ok := gs[r.cfg.Group]
	if !ok || g.Err != nil || g.State != "Stable" {
		return nil, false
	}
	for _, m := range g.Members {
		if m.MemberID != member {
			continue
		}
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			return nil, false
		}
		for _, t := range c.Topics {
			for _, p := range t.Partitions {
				out[tp{t.Topic, p}] = true
			}
		}
		return out, true
	}
	return nil, false
}
