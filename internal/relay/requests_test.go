package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// TestStateDropRealKafka: `ucprelay state drop` (a drop request on the input, as the
// command writes it) removes a parked order (its stored state unreadable) and a not-ours
// marker. Until then neither order is sent; after it, each order starts anew: the parked
// order's placement replayed, and a corrected placement of the order that was not ours,
// now naming the configured partner, are delivered.
func TestStateDropRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	e := newEnv(t, seeds, 2, sink.Config{})
	part := keys.MustNew(keys.Murmur2)
	raw, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ProduceSync(ctx, &kgo.Record{Topic: e.state, Partition: part.Partition([]byte("ord_parked"), 2), Key: []byte("ord_parked"),
		Value: []byte{0x01, 0xff, 0xff, 0xff}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	run := e.start(e.config("a"))
	at := time.Now().Add(-time.Hour)
	parked := gen.Placed("ord_parked", "google", 3, at)
	theirs := gen.Placed("ord_theirs", "nobody", 4, at)
	// Its drop and its corrected placement arrive in one batch, so one poll: the records
	// after the drop are the order's again.
	together := gen.Placed("ord_together", "nobody", 5, at)
	e.produce(ctx, parked, theirs, together)
	waitStats(ctx, t, run.r, func(st relay.Stats) bool { return st.Parked >= 1 && st.NotOursOrders == 2 })

	drop := func(id string) *kgo.Record {
		return &kgo.Record{Key: []byte(id), Value: deadletter.EncodeReference(deadletter.Reference{OrderID: id}),
			Headers: []kgo.RecordHeader{{Key: deadletter.HeaderReplayKind, Value: []byte(deadletter.RequestDrop)}}}
	}
	if err := e.prod.ProduceSync(ctx, drop("ord_parked"), drop("ord_theirs")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	corrected := gen.Placed("ord_theirs", "google", 4, at)
	corrected.ID = "ord_theirs-corrected"
	e.produce(ctx, parked, corrected)
	togetherCorrected := gen.Placed("ord_together", "google", 5, at)
	togetherCorrected.ID = "ord_together-corrected"
	v, err := e.codec.EncodeSingleObject(togetherCorrected)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.prod.ProduceSync(ctx, drop("ord_together"), &kgo.Record{Key: []byte("ord_together"), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitConverged(ctx, oracle(t, map[string][]orderevents.Event{"ord_parked": {parked}, "ord_theirs": {corrected}, "ord_together": {togetherCorrected}}))
	for _, d := range e.snk.History("ord_theirs") {
		if d.Partner != "google" {
			t.Errorf("a delivery of ord_theirs went to %q", d.Partner)
		}
	}
	if n := len(e.snk.History("ord_theirs")); n != 1 {
		t.Errorf("ord_theirs delivered %d times, want once (its corrected placement)", n)
	}
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
}

// waitStats waits until ok holds for the relay's counters.
func waitStats(ctx context.Context, t *testing.T, r *relay.Relay, ok func(relay.Stats) bool) {
	t.Helper()
	for !ok(r.Stats()) {
		select {
		case <-ctx.Done():
			t.Fatalf("stats %+v", r.Stats())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
