package statestore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/statestore"
)

// BenchmarkRestore restores a state partition of 100k orders (≈700-byte records) on the
// real broker, and reads the same partition with a plain franz-go consumer in the same
// run: the limit restore is measured against (records/s and the ratio to the limit).
func BenchmarkRestore(b *testing.B) {
	seeds := kafkatest.Brokers(b)
	ctx := context.Background()
	n := kafkatest.NewNames(b)
	topic := n.Topic("state")
	kafkatest.CreateTopic(b, kafkatest.Admin(b, seeds), topic, 1, map[string]*string{"cleanup.policy": ptr("compact")})
	txn, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID(n.TxnID()), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	const orders = 100_000
	for start := 0; start < orders; start += 20_000 {
		if err := txn.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		for i := start; i < start+20_000; i++ {
			id := fmt.Sprintf("ord_%06d", i)
			r := &statestore.Record{OrderID: id, Partner: "google", Version: 4, Acked: statestore.Delivery{Version: 4, Stamp: time.Unix(1789480992, 0), WebhookID: id},
				Events: [][]byte{make([]byte, 300), make([]byte, 150), make([]byte, 120), make([]byte, 120)}}
			txn.Produce(ctx, &kgo.Record{Key: []byte(id), Value: r.Marshal()}, nil)
		}
		if err := txn.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatal(err)
		}
	}
	txn.Close()
	var rawRate, restoreRate float64
	b.Run("limit-raw-consume", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(32<<20))
			if err != nil {
				b.Fatal(err)
			}
			seen := 0
			for seen < orders {
				cl.PollFetches(ctx).EachRecord(func(*kgo.Record) { seen++ })
			}
			cl.Close()
			rawRate = orders / time.Since(start).Seconds()
		}
		b.ReportMetric(rawRate, "records/s")
	})
	b.Run("restore", func(b *testing.B) {
		for b.Loop() {
			p, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(seeds...)}, topic, 0, nil)
			if err != nil || len(p.Orders) != orders {
				b.Fatalf("%d orders, %v", len(p.Orders), err)
			}
			restoreRate = float64(p.Records) / p.Took.Seconds()
		}
		b.ReportMetric(restoreRate, "records/s")
		if rawRate > 0 {
			b.ReportMetric(restoreRate/rawRate, "ratio-to-raw")
		}
	})
}
