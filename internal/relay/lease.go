package relay

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/wait"
)

// lease is how long this replica can vouch that it is still a member of the group. A
// replica that stops heartbeating (a long GC pause, CPU starvation, a network
// partition) is removed by the coordinator one session timeout after its last
// heartbeat, and its partitions go to another replica, which resends their pending
// snapshots and then newer ones. Kafka fences the old replica's transactions, but not
// its HTTP requests: it must stop posting before it can be replaced (P2). So a delivery
// attempt starts only within the lease. An attempt is not cut when the lease ends: a
// request the client abandons may still be processed by the partner, later than the
// requests that follow it. Instead an attempt is bounded by its timeout, which the
// configuration keeps within the last third of the session timeout, after the lease.
//
// The lease is renewed by every group request that reached the coordinator and came
// back (join, sync, heartbeat), and lasts two thirds of the session timeout from when
// the request was sent; heartbeats go every third of it. A renewal whose answer says
// the member is gone is followed by the client's OnPartitionsLost, which stops the
// partitions' deliveries.
type lease struct {
	ttl time.Duration

	mu    sync.Mutex
	until time.Time
}

func newLease(session time.Duration) *lease { return &lease{ttl: session * 2 / 3} }

func (l *lease) renew(sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := sent.Add(l.ttl); u.After(l.until) {
		l.until = u
	}
}

func (l *lease) end() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// valid reports whether the replica can vouch for its membership now.
func (l *lease) valid() bool { return time.Now().Before(l.end()) }

// OnGroupManageError implements kgo.HookGroupManageError: the group session ended (the
// client calls OnPartitionsLost first); nothing is vouched for until the next join.
func (l *lease) OnGroupManageError(error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.until = time.Time{}
}

// wait returns once the lease is valid, or ctx's error.
func (l *lease) wait(ctx context.Context) error {
	for time.Now().After(l.end()) {
		if err := wait.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// Group request keys whose answer proves the coordinator still knows the member.
const (
	keyJoinGroup              = 11
	keyHeartbeat              = 12
	keySyncGroup              = 14
	keyConsumerGroupHeartbeat = 68
)

// OnBrokerE2E implements kgo.HookBrokerE2E.
func (l *lease) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	switch key {
	case keyJoinGroup, keyHeartbeat, keySyncGroup, keyConsumerGroupHeartbeat:
	default:
		return
	}
	if e2e.Err() != nil {
		return
	}
	l.renew(time.Now().Add(-e2e.DurationE2E()))
}

var (
	_ kgo.HookBrokerE2E        = (*lease)(nil)
	_ kgo.HookGroupManageError = (*lease)(nil)
)
