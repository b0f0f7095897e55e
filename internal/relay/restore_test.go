package relay_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// TestRestoreBehindAnOpenTransactionRealKafka: a transaction left open on one state
// partition keeps its restore from the partition's stable end. The relay reports it in
// its health (which partition, why, the attempt) and retries, while the other partition
// is restored and its orders delivered; once the transaction ends, the partition is
// restored and its orders delivered too.
func TestRestoreBehindAnOpenTransactionRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const parts = 2
	e := newEnv(t, kafkatest.Brokers(t), parts, sink.Config{})
	hang, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...), kgo.TransactionalID(e.names.TxnID()+".hang"),
		kgo.TransactionTimeout(time.Minute), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	if err := hang.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := hang.ProduceSync(ctx, &kgo.Record{Topic: e.state, Partition: 0, Key: []byte("\x00test.open-transaction"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	part := keys.MustNew(keys.Murmur2)
	byPart := [parts]map[string][]orderevents.Event{{}, {}}
	at := time.Now().Add(-time.Hour).UTC()
	for i := range 16 {
		id := fmt.Sprintf("ord_open_%02d", i)
		evs := gen.Lifecycle(id, "google", uint64(i), at)
		byPart[part.Partition([]byte(id), parts)][id] = evs
		e.produce(ctx, evs...)
	}
	if len(byPart[0]) == 0 || len(byPart[1]) == 0 {
		t.Fatal("the orders do not cover both partitions")
	}
	cfg := e.config("a")
	cfg.RestoreStableTimeout = 500 * time.Millisecond
	run := e.start(cfg)
	e.waitConverged(ctx, oracle(t, byPart[1]))
	for {
		h := run.r.Health()
		if len(h.Restore) == 1 && strings.Contains(h.Restore[0], "partition 0") && !h.Ready {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the waiting restore is not reported: %+v", h)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for id := range byPart[0] {
		if _, ok := e.snk.Latest(id); ok {
			t.Fatalf("order %s of the partition not restored was delivered", id)
		}
	}
	if err := hang.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	e.waitConverged(ctx, oracle(t, byPart[0]))
	for h := run.r.Health(); len(h.Restore) != 0 || !h.Ready; h = run.r.Health() {
		select {
		case <-ctx.Done():
			t.Fatalf("after the transaction ended: %+v", h)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
