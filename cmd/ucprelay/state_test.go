package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents/ordereventstest"
)

// `state inspect` on the real broker: it finds the order's state partition as the relays
// place it, and prints the record, its events and the snapshot with the envelope of the
// newest delivery; an order still waiting for its placement is shown as held, and an
// order without state is an error naming it.
func TestStateInspectCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 3)
	cfg := tt.config(t, seeds[0], "", nowhere, "")
	if out, err := run(t, nil, "--config", cfg, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	codec, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	part := keys.MustNew(keys.Murmur2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	stamp := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	write := func(id string, skip int, pending statestore.Delivery) {
		t.Helper()
		evs := ordereventstest.Lifecycle(id)[skip:]
		rec := &statestore.Record{OrderID: id, Partner: "google", Version: int64(len(evs)), Pending: pending}
		for _, ev := range evs {
			raw, err := codec.EncodeSingleObject(ev)
			if err != nil {
				t.Fatal(err)
			}
			rec.Events = append(rec.Events, raw)
		}
		r := &kgo.Record{Topic: tt.state, Partition: part.Partition([]byte(id), 3), Key: []byte(id), Value: rec.Marshal()}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	n := int64(len(ordereventstest.Lifecycle("x")))
	digest := statestore.BodyDigest([]byte("the body sent"))
	write("ord_inspect", 0, statestore.Delivery{Version: n, Stamp: stamp, WebhookID: "wh-1", Digest: digest})
	write("ord_held", 1, statestore.Delivery{})

	out, err := run(t, nil, "--config", cfg, "state", "inspect", "ord_inspect")
	if err != nil {
		t.Fatalf("state inspect: %v\n%s", err, out)
	}
	var in statestore.Inspection
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("state inspect output: %v\n%s", err, out)
	}
	if in.Partition != part.Partition([]byte("ord_inspect"), 3) || in.Partner != "google" || int64(len(in.Events)) != n ||
		in.Pending == nil || in.Pending.WebhookID != "wh-1" || in.Pending.BodyDigest != hex.EncodeToString(digest) || in.Layout == nil || in.Layout.Partitions != 3 || in.Held != "" {
		t.Errorf("inspection %+v", in)
	}
	var body struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(in.Snapshot, &body); err != nil || body.ID != "ord_inspect" {
		t.Errorf("snapshot %s: %v", in.Snapshot, err)
	}

	out, err = run(t, nil, "--config", cfg, "state", "inspect", "ord_held")
	if err != nil {
		t.Fatalf("state inspect of a held order: %v\n%s", err, out)
	}
	var held statestore.Inspection
	if err := json.Unmarshal([]byte(out), &held); err != nil || held.Held == "" || held.Snapshot != nil || len(held.Events) != int(n-1) {
		t.Errorf("held order inspection: held %q, snapshot %d bytes, %d events: %v", held.Held, len(held.Snapshot), len(held.Events), err)
	}

	if out, err := run(t, nil, "--config", cfg, "state", "inspect", "ord_unknown"); err == nil || !strings.Contains(err.Error(), "ord_unknown") {
		t.Errorf("inspect of an order without state: %v\n%s", err, out)
	}
}
