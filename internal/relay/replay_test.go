package relay_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Reprocessing from the dead-letter topic on the real broker, while the relay runs:
//
//   - "changed" fails (422), then changes and its newer snapshot is delivered; its replay
//     sends nothing: the partner already has the current snapshot;
//   - "twice" fails, changes, fails again (two dead letters); its replay delivers only the
//     current, newer snapshot, once, never the stale one;
//   - "plain" fails; its replay delivers it;
//   - a poison record is dead-lettered again by its replay, and nothing else breaks.
//
// A second replay of everything changes nothing at the partner; a third run with the
// same progress group reads only what was dead-lettered since; a dry run writes nothing.
func TestDeadLetterReplayRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	kopts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	e := newEnv(t, seeds, 3, sink.Config{})
	var mu sync.Mutex
	var dead []deadletter.Record
	deadCount := func() int { mu.Lock(); defer mu.Unlock(); return len(dead) }
	waitDead := func(n int) {
		t.Helper()
		for deadCount() < n {
			if ctx.Err() != nil {
				t.Fatalf("%d dead letters, want %d", deadCount(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cfg := e.config("a")
	cfg.MaxAttempts = 2
	cfg.OnDeadLetter = func(d deadletter.Record) { mu.Lock(); dead = append(dead, d); mu.Unlock() }
	e.snk.FailRate(1, sink.Fault{Status: 422, Body: `{"error":"rejected for the test"}`})
	run := e.start(cfg)

	at := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	life := map[string][]orderevents.Event{}
	for i, id := range []string{"changed", "twice", "plain"} {
		life[id] = gen.Lifecycle(id, "google", uint64(10+i), at) // shipped lifecycles: seed%7 != 3
	}
	// The partner rejects: the three placements, then twice's shipment, and a poison record.
	e.produce(ctx, life["changed"][0], life["twice"][0], life["plain"][0])
	waitDead(3)
	e.produce(ctx, life["twice"][1])
	waitDead(4)
	if err := e.prod.ProduceSync(ctx, &kgo.Record{Key: []byte("poison"), Value: []byte("not an event")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitDead(5)

	// The partner recovers; "changed" changes and its newer snapshot goes out normally.
	e.snk.FailRate(0, sink.Fault{})
	e.produce(ctx, life["changed"][1])
	want := oracle(t, map[string][]orderevents.Event{"changed": life["changed"][:2]})
	e.waitConverged(ctx, want)

	s, err := deadletter.Inspect(ctx, kopts, e.dlq, deadletter.Filter{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Matched != 5 || s.ByReason[relay.ReasonRejected] != 4 || s.ByStage["decode"] != 1 || s.ByPartner["google"] != 4 || len(s.Samples) != 2 {
		t.Fatalf("inspect: %+v", s)
	}
	if s.Oldest.IsZero() || s.Newest.Before(s.Oldest) {
		t.Errorf("inspect: oldest %v newest %v", s.Oldest, s.Newest)
	}

	inputEnd := func() int64 {
		offs, err := e.adm.ListEndOffsets(ctx, e.input)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	before := inputEnd()
	var listed []string
	dry, err := deadletter.Replay(ctx, deadletter.ReplayConfig{KafkaOpts: kopts, Topic: e.dlq, InputTopic: e.input, DryRun: true,
		Filter: deadletter.Filter{Stages: []deadletter.Stage{deadletter.StageDeliver}}, OnRecord: func(r deadletter.Record) { listed = append(listed, r.OrderID) }})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Replayed != 4 || dry.Skipped != 1 || len(listed) != 4 || inputEnd() != before {
		t.Fatalf("dry run: %+v, listed %v, input end %d -> %d", dry, listed, before, inputEnd())
	}

	// Replay everything.
	group := e.names.Group() + ".replay"
	st, err := deadletter.Replay(ctx, deadletter.ReplayConfig{KafkaOpts: kopts, Topic: e.dlq, InputTopic: e.input, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	if st.Replayed != 5 || st.Scanned != 5 || st.Position != st.Span {
		t.Fatalf("replay: %+v", st)
	}
	want = oracle(t, map[string][]orderevents.Event{"changed": life["changed"][:2], "twice": life["twice"][:2], "plain": life["plain"][:1]})
	e.waitConverged(ctx, want)
	waitDead(6) // the poison, again
	mu.Lock()
	if d := dead[5]; d.OrderID != "poison" || d.Stage != deadletter.StageDecode || d.SourceTopic != e.input {
		t.Errorf("replayed poison: %+v", d)
	}
	mu.Unlock()
	for id := range want {
		if h := e.snk.History(id); len(h) != 1 {
			t.Errorf("order %s: the partner got %d snapshots, want only the current one", id, len(h))
		}
	}
	e.waitAcked(ctx, 3, map[string]int64{"changed": 2, "twice": 2, "plain": 1})

	// Replaying everything again is harmless: the partner has every current snapshot.
	accepted, resent := e.snk.Stats().Accepted, run.r.Stats().Replayed
	skipped := run.r.Stats().ReplaySkipped
	start := time.Now()
	st, err = deadletter.Replay(ctx, deadletter.ReplayConfig{KafkaOpts: kopts, Topic: e.dlq, InputTopic: e.input, Group: group, FromStart: true, Rate: 20})
	if err != nil {
		t.Fatal(err)
	}
	if st.Replayed != 6 || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("second replay: %+v in %s (6 records at 20/s take at least 250ms)", st, time.Since(start))
	}
	waitDead(8) // both poison dead letters, again
	for run.r.Stats().ReplaySkipped < skipped+3 {
		if ctx.Err() != nil {
			t.Fatalf("the relay skipped %d replays, want 3 more: %+v", run.r.Stats().ReplaySkipped-skipped, run.r.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := run.r.Stats().Replayed; got != resent || e.snk.Stats().Accepted != accepted || e.snk.Stats().Stale != 0 {
		t.Errorf("second replay resent %d snapshots; sink %+v (accepted before %d)", got-resent, e.snk.Stats(), accepted)
	}

	// The group kept the progress: a third run reads only the two poison dead letters
	// written since.
	st, err = deadletter.Replay(ctx, deadletter.ReplayConfig{KafkaOpts: kopts, Topic: e.dlq, InputTopic: e.input, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	if st.Scanned != 2 || st.Replayed != 2 {
		t.Errorf("resumed replay: %+v, want the two records dead-lettered since", st)
	}
	waitDead(10)
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
}
