package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
)

// produce on the real broker: generated lifecycles and a hand-edited event from
// --print-sample arrive as decodable Avro keyed by order id; a bad event is refused with
// its position and nothing of that file is sent.
func TestProduceCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 3)
	input := tt.input
	dir := t.TempDir()
	cfg := tt.config(t, seeds[0], "", nowhere, "")
	out, err := run(t, nil, "--config", cfg, "produce", "--sample", "5", "--seed", "3")
	if err != nil || !strings.Contains(out, "of 5 orders to "+input) {
		t.Fatalf("produce --sample: %v\n%s", err, out)
	}
	sample, err := run(t, nil, "produce", "--print-sample", "--partner", "acme")
	if err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(dir, "one.json")
	if err := os.WriteFile(one, []byte(strings.ReplaceAll(sample, "ord_sample_1", "ord_by_hand")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, nil, "--config", cfg, "produce", "--file", one); err != nil || !strings.Contains(out, "produced 1 events of 1 orders") {
		t.Fatalf("produce --file: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(strings.TrimSpace(strings.ReplaceAll(sample, "\n", ""))+"\n"+`{"event_id":"x"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, nil, "--config", cfg, "produce", "--file", bad); err == nil || !strings.Contains(err.Error(), "event 2") {
		t.Fatalf("a bad event was not refused by position: %v\n%s", err, out)
	}

	codec, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(input), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	orders := map[string]int{}
	for len(orders) < 6 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			ev, err := codec.Decode(ctx, r.Value)
			if err != nil {
				t.Fatalf("record %d@%d: %v", r.Partition, r.Offset, err)
			}
			if ev.OrderID != string(r.Key) {
				t.Errorf("key %s, event of %s", r.Key, ev.OrderID)
			}
			orders[ev.OrderID]++
		})
	}
	// Nothing of the bad file arrived: its valid first event would be a seventh order.
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { orders[string(r.Key)]++ })
	if len(orders) != 6 || orders["ord_by_hand"] != 1 {
		t.Fatalf("orders on the topic: %v", orders)
	}
}
