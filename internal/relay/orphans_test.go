package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Orphans expire, on the real broker: events whose placement does not come within
// OrphanAfter are dead-lettered as orphan, each with its canonical bytes, and the order's
// state is removed; a placed order beside them is untouched, and one whose placement
// comes in time folds as ever. Replayed after the placement, the orphans fold in: the
// partner ends with the whole order. The expiry survives a restart of the relay (the
// waiting time is in the state record).
func TestOrphansExpireRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := newEnv(t, kafkatest.Brokers(t), 2, sink.Config{})
	cfg := e.config("a")
	cfg.OrphanAfter = 2 * time.Second
	now := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Second)
	lost := gen.Lifecycle("ord_lost", "google", 2, now) // placed, shipped, delivered
	late := gen.Lifecycle("ord_late", "google", 4, now)
	fine := gen.Lifecycle("ord_fine", "google", 6, now)

	a := e.start(cfg)
	e.produce(ctx, lost[1:]...)
	e.produce(ctx, late[1:]...)
	e.produce(ctx, fine...)
	// The relay restarts while the orphans wait: the new one expires them on time.
	for a.r.Orders() < 3 {
		if ctx.Err() != nil {
			t.Fatalf("orders held: %d", a.r.Orders())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.wait(); err != nil {
		t.Fatal(err)
	}
	b := e.start(cfg)
	e.produce(ctx, late[0]) // in time
	dead := e.deadLetters(ctx, len(lost)-1)
	if len(dead) != len(lost)-1 {
		t.Fatalf("%d dead letters, want the %d orphaned events of ord_lost", len(dead), len(lost)-1)
	}
	replay := make([]*kgo.Record, 0, len(dead))
	for _, d := range dead {
		if d.Reason != relay.ReasonOrphan || d.OrderID != "ord_lost" || d.SourceOffset != -1 || d.SourceTopic != e.state {
			t.Errorf("dead letter %+v", d)
		}
		ev, err := e.codec.Decode(ctx, d.Value)
		if err != nil || ev.OrderID != "ord_lost" {
			t.Errorf("dead letter value: %v, %v", ev, err)
		}
		replay = append(replay, &kgo.Record{Key: []byte(d.OrderID), Value: d.Value})
	}
	e.waitConverged(ctx, oracle(t, map[string][]orderevents.Event{"ord_fine": fine, "ord_late": late}))
	for {
		st := e.readState(ctx, 2)
		if _, ok := st["ord_lost"]; !ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("ord_lost's state was not removed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Counted once the relay applied its commit (which readers may see a moment before).
	for b.r.Stats().OrphansExpired != 1 {
		if ctx.Err() != nil {
			t.Fatalf("stats %+v", b.r.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The placement comes at last, and the operator replays the orphans.
	e.produce(ctx, lost[0])
	if err := e.prod.ProduceSync(ctx, replay...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitConverged(ctx, oracle(t, map[string][]orderevents.Event{"ord_fine": fine, "ord_late": late, "ord_lost": lost}))
	if s := e.snk.Stats(); s.Invalid != 0 || s.Stale != 0 {
		t.Errorf("sink %+v", s)
	}
}
