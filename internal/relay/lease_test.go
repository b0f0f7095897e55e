package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A delivery waits while the replica cannot vouch for its membership; a successful group
// round trip renews the lease, and it ends two thirds of a session timeout later.
func TestLeaseGatesDeliveries(t *testing.T) {
	t.Parallel()
	l := newLease(300 * time.Millisecond) // lasts 200ms from the heartbeat
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no heartbeat yet: wait returned %v", err)
	}
	l.OnBrokerE2E(kgo.BrokerMetadata{}, keyFetchForTest, kgo.BrokerE2E{})
	if !l.end().IsZero() {
		t.Fatal("a fetch renewed the lease")
	}
	l.OnBrokerE2E(kgo.BrokerMetadata{}, keyHeartbeat, kgo.BrokerE2E{ReadErr: errors.New("reset")})
	if !l.end().IsZero() {
		t.Fatal("a failed heartbeat renewed the lease")
	}
	l.OnBrokerE2E(kgo.BrokerMetadata{}, keyHeartbeat, kgo.BrokerE2E{})
	if err := l.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer wcancel()
	if err := l.wait(wctx); err == nil {
		t.Fatal("wait passed an expired lease")
	}
}

const keyFetchForTest = 1
