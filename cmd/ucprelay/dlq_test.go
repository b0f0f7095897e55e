package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/keys"
)

// dlq inspect and dlq replay through the CLI on the real broker: inspect counts by
// reason and partner; replay --dry-run writes nothing; replay writes the selected records
// to the input partition that owns each order, marked as replays, and a second run with
// the same (default) progress group finds nothing left.
func TestDLQInspectAndReplayCommands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 4)
	adm, input, dlq := tt.adm, tt.input, tt.dlq
	cfg := tt.config(t, seeds[0], "", nowhere, "")
	if out, err := run(t, nil, "--config", cfg, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	w, err := deadletter.NewWriter(cl, dlq, "test")
	if err != nil {
		t.Fatal(err)
	}
	failed := time.Now().Add(-time.Hour).UTC()
	for _, d := range []deadletter.Record{
		{OrderID: "ord_a", Stage: deadletter.StageDeliver, Reason: "circuit_open", Partner: "google", HTTPStatus: 503, Attempts: 5, FirstFailure: failed, LastFailure: failed,
			Value: deadletter.EncodeReference(deadletter.Reference{OrderID: "ord_a", Partner: "google", SnapshotVersion: 2})},
		{OrderID: "ord_b", Stage: deadletter.StageDeliver, Reason: "circuit_open", Partner: "google", HTTPStatus: 503, Attempts: 5, FirstFailure: failed, LastFailure: failed,
			Value: deadletter.EncodeReference(deadletter.Reference{OrderID: "ord_b", Partner: "google", SnapshotVersion: 1})},
		{OrderID: "ord_c", Stage: deadletter.StageDecode, Reason: "corrupt_payload", Error: "truncated", Value: []byte{0xc3, 0x01, 0xff}},
	} {
		if err := w.Write(ctx, d); err != nil {
			t.Fatal(err)
		}
	}

	out, err := run(t, nil, "--config", cfg, "dlq", "inspect")
	if err != nil {
		t.Fatalf("dlq inspect: %v\n%s", err, out)
	}
	for _, want := range []string{"3 records read, 3 selected", "circuit_open     2", "corrupt_payload  1", "google", "order ord_c: decode/corrupt_payload", "(3 bytes) c301ff"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq inspect output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, nil, "--config", cfg, "dlq", "inspect", "--reason", "circuit_open", "--since", "2h", "--json")
	if err != nil || !strings.Contains(out, `"matched": 2`) {
		t.Errorf("dlq inspect --json: %v\n%s", err, out)
	}

	out, err = run(t, nil, "--config", cfg, "dlq", "replay", "--reason", "circuit_open", "--dry-run")
	if err != nil || !strings.Contains(out, "would replay 2 of 3") || !strings.Contains(out, "would replay order ord_a") {
		t.Fatalf("dlq replay --dry-run: %v\n%s", err, out)
	}
	ends, err := adm.ListEndOffsets(ctx, input)
	if err != nil {
		t.Fatal(err)
	}
	if err := ends.Error(); err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("dry run wrote to %s/%d", o.Topic, o.Partition)
		}
	})

	out, err = run(t, nil, "--config", cfg, "dlq", "replay", "--reason", "circuit_open", "--rate", "100")
	if err != nil || !strings.Contains(out, "replayed 2 of 3") {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(input), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	part := keys.MustNew(keys.Murmur2)
	got := map[string]bool{}
	for len(got) < 2 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got[string(r.Key)] = true
			if want := part.Partition(r.Key, 4); r.Partition != want {
				t.Errorf("order %s replayed to partition %d, its owner is %d", r.Key, r.Partition, want)
			}
			if deadletter.ReplayKindOf(r.Headers) != deadletter.ReplayResend {
				t.Errorf("order %s replayed without the resend kind: %v", r.Key, r.Headers)
			}
		})
	}
	if !got["ord_a"] || !got["ord_b"] || got["ord_c"] {
		t.Errorf("replayed %v, want ord_a and ord_b", got)
	}
	out, err = run(t, nil, "--config", cfg, "dlq", "replay", "--reason", "circuit_open")
	if err != nil || !strings.Contains(out, "replayed 0 of 0") {
		t.Errorf("dlq replay again (resumed): %v\n%s", err, out)
	}
}
