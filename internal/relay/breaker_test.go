package relay_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
)

// P6: while the partner is down the breaker opens and deliveries wait instead of
// spending their retries and flooding the dead-letter topic; after the outage every
// order is delivered, and nothing was dead-lettered.
func TestOutageOpensBreakerAndNothingIsDeadLettered(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	e := newEnv(t, kafkatest.Fake(t, 2).ListenAddrs(), 2, sink.Config{})
	snk := e.snk
	snk.StartOutage()

	var mu sync.Mutex
	var transitions []string
	var deadLetters []deadletter.Record
	cfg := e.config("a")
	cfg.MaxAttempts = 3
	cfg.Breaker = relay.BreakerConfig{FailuresToTrip: 3, OpenFor: 100 * time.Millisecond, Hold: time.Minute, Poll: 10 * time.Millisecond}
	cfg.OnBreakerChange = func(_ string, from, to gobreaker.State) {
		mu.Lock()
		transitions = append(transitions, from.String()+"->"+to.String())
		mu.Unlock()
	}
	cfg.OnDeadLetter = func(d deadletter.Record) { mu.Lock(); deadLetters = append(deadLetters, d); mu.Unlock() }
	const orders = 6
	for i := range orders {
		e.produce(ctx, gen.Placed(fmt.Sprintf("ord_%d", i), "google", uint64(i), time.Now()))
	}
	run := e.start(cfg)

	// Outage: far more requests than 3 attempts x 6 orders would allow without waiting.
	if err := snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Injected >= 3*orders+5 }); err != nil {
		mu.Lock()
		t.Fatalf("%v: sink %+v, transitions %v, dead letters %d", err, snk.Stats(), transitions, len(deadLetters))
	}
	snk.EndOutage()
	if err := snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Accepted >= orders }); err != nil {
		t.Fatal(err, snk.Stats())
	}
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deadLetters) != 0 {
		t.Fatalf("outage dead-lettered %d orders: %+v", len(deadLetters), deadLetters[0])
	}
	want := map[string]bool{"closed->open": false, "open->half-open": false, "half-open->closed": false}
	for _, tr := range transitions {
		if _, ok := want[tr]; ok {
			want[tr] = true
		}
	}
	for tr, seen := range want {
		if !seen {
			t.Errorf("breaker never went %s (transitions %v)", tr, transitions)
		}
	}
}
