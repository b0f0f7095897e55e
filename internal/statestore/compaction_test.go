package statestore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/topics"
)

// The state topic's settings let the broker's cleaner keep one live record per order.
// Proven as real-kafka.md says: small segments, wait past segment.ms, append a marker
// that rolls the segment, wait for the cleaner, then read physically from offset 0 and
// count data records per key.
func TestCompactionKeepsOneRecordPerOrder(t *testing.T) {
	t.Parallel()
	seeds := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := kafkatest.NewNames(t)
	topic := n.Topic("state")
	cfg := topics.StateConfigs()
	cfg["segment.ms"] = ptr("100")
	cfg["min.cleanable.dirty.ratio"] = ptr("0.01")
	cfg["min.compaction.lag.ms"] = ptr("0")
	kafkatest.CreateTopic(t, kafkatest.Admin(t, seeds), topic, 1, cfg)

	txn, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID(n.TxnID()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	const orders, versions = 50, 6
	for v := int64(1); v <= versions; v++ {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range orders {
			id := fmt.Sprintf("o%02d", i)
			r := &statestore.Record{OrderID: id, Partner: "p", Version: v, Events: [][]byte{make([]byte, 200)}}
			txn.Produce(ctx, &kgo.Record{Key: []byte(id), Value: r.Marshal()}, nil)
		}
		if err := txn.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	for {
		time.Sleep(300 * time.Millisecond) // past segment.ms, so the next append rolls the segment
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		txn.Produce(ctx, &kgo.Record{Key: []byte("~marker")}, nil) // a tombstone: restore ignores it
		if err := txn.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		perKey, total := physicalCount(ctx, t, seeds, topic)
		max := 0
		for k, c := range perKey {
			if k != "~marker" && c > max {
				max = c
			}
		}
		if max == 1 && len(perKey) >= orders {
			// The latest version survived for every order.
			p, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(seeds...)}, topic, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range orders {
				h, err := statestore.ParseHeader(p.Orders[fmt.Sprintf("o%02d", i)])
				if err != nil || h.Version != versions {
					t.Fatalf("order %d after compaction: version %d, %v", i, h.Version, err)
				}
			}
			t.Logf("compacted %d records to %d", orders*versions, total)
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the cleaner never left one record per order: up to %d per key, %d records", max, total)
		}
	}
}

// physicalCount reads every data record from offset 0 (uncommitted, control records
// skipped) and counts them per key.
func physicalCount(ctx context.Context, t *testing.T, seeds []string, topic string) (map[string]int, int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kafkatest.Admin(t, seeds).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	counts, total := map[string]int{}, 0
	var next int64
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for next < end.Offset-1 && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			next = r.Offset
			if !r.Attrs.IsControl() {
				counts[string(r.Key)]++
				total++
			}
		})
	}
	return counts, total
}
