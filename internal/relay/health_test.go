package relay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
)

// Health transitions: not ready before the relay joined; ready with its partitions once
// restored; still ready, with the breaker reported open, while the partner is down
// (deliveries wait, P6: a restart would not help); the breaker closed again after.
func TestHealthTransitionsKfake(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t, kafkatest.Fake(t, 2).ListenAddrs(), 2, sink.Config{})
	cfg := e.config("a")
	cfg.Breaker = relay.BreakerConfig{FailuresToTrip: 2, OpenFor: 200 * time.Millisecond, Hold: time.Minute, Poll: 10 * time.Millisecond}
	idle, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(e.seeds...)}, e.codec, newTestSender(t))
	if err != nil {
		t.Fatal(err)
	}
	if h := idle.Health(); h.Ready || h.Joined || h.Problem == "" {
		t.Fatalf("a relay that never ran: %+v", h)
	}
	idle.Close()
	run := e.start(cfg)
	waitHealth := func(what string, ok func(relay.Health) bool) relay.Health {
		t.Helper()
		for {
			h := run.r.Health()
			if ok(h) {
				return h
			}
			if ctx.Err() != nil {
				t.Fatalf("never %s: %+v", what, h)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	h := waitHealth("ready", func(h relay.Health) bool { return h.Ready })
	if !h.Joined || h.Restoring != 0 || !h.BrokerReachable || len(h.Partitions) != 2 || h.Breakers["google"] != "closed" || h.Problem != "" {
		t.Fatalf("ready health %+v", h)
	}
	e.snk.StartOutage()
	for i := range 4 {
		e.produce(ctx, gen.Placed(fmt.Sprintf("ord_%d", i), "google", uint64(i), time.Now()))
	}
	h = waitHealth("open", func(h relay.Health) bool { return h.Breakers["google"] == "open" })
	if !h.Ready || h.Pending == 0 {
		t.Errorf("during the outage: %+v, want ready with pending deliveries", h)
	}
	e.snk.EndOutage()
	waitHealth("recovered", func(h relay.Health) bool { return h.Breakers["google"] == "closed" && h.Pending == 0 })
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
}
