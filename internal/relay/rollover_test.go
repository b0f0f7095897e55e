package relay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// TestSchemaRolloverRealKafka: on the real broker, a relay of the previous schema version
// writes state, a relay of the current version takes over (rolling update), then one of
// the previous version again (rollback), each with producers of its own version. Every
// stored event decodes with its own writer schema: each order folds its whole history
// and the partner ends with its full current order; no order is parked or dead-lettered.
// The producers partition by CRC32 (kafka.partitioner: crc32), not Kafka's default, so
// every state and schema record must be placed by the relay, not hashed by its client.
func TestSchemaRolloverRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const parts = 2
	e := newEnv(t, kafkatest.Brokers(t), parts, sink.Config{})
	prev := len(avro.History()) - 1
	at := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	part := keys.MustNew(keys.CRC32)
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...), kgo.DefaultProduceTopic(e.input), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// The state topic records the producers' partitioner (as `topics create` with
	// kafka.partitioner: crc32 does).
	if err := prod.ProduceSync(ctx, statestore.LayoutRecords(e.state, statestore.Layout{Partitions: parts, Partitioner: keys.CRC32})...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Each order's lifecycle in three parts, one per relay.
	var thirds [3][]orderevents.Event
	all := map[string][]orderevents.Event{}
	for i := range 12 {
		id := fmt.Sprintf("ord_roll_%02d", i)
		evs := gen.Lifecycle(id, "google", uint64(i), at.Add(time.Duration(i)*time.Minute))
		for j := range evs {
			if pl, ok := evs[j].Payload.(orderevents.OrderPlaced); ok {
				pl.Attribution = nil // the previous version has no attribution: its producers cannot send it
				evs[j].Payload = pl
			}
		}
		all[id] = evs
		n := len(evs)
		for k := range 3 {
			thirds[k] = append(thirds[k], evs[k*n/3:(k+1)*n/3]...)
		}
	}
	so := map[string][]orderevents.Event{}
	for k, version := range []int{prev, prev + 1, prev} {
		codec, err := avrocodec.New(avrocodec.AsVersion(version))
		if err != nil {
			t.Fatal(err)
		}
		e.codec = codec
		cfg := e.config(fmt.Sprint("v", version))
		cfg.Partitioner = keys.CRC32
		r := e.start(cfg)
		var recs []*kgo.Record
		for _, ev := range thirds[k] {
			v, err := codec.EncodeSingleObject(ev)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Key: []byte(ev.OrderID), Value: v, Partition: part.Partition([]byte(ev.OrderID), parts)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range thirds[k] {
			so[ev.OrderID] = append(so[ev.OrderID], ev)
		}
		e.waitConverged(ctx, oracle(t, so))
		if err := r.wait(); err != nil {
			t.Fatalf("relay of version %d: %v", version, err)
		}
		if st := r.r.Stats(); st.Parked != 0 || st.DeadLettered != 0 {
			t.Fatalf("relay of version %d: %+v", version, st)
		}
	}
	e.waitConverged(ctx, oracle(t, all))

	// Each state partition holds the writer schemas of both versions and exactly the
	// orders of its input partition.
	for p := range int32(parts) {
		st, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(e.seeds...)}, e.state, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Schemas) != 2 {
			t.Errorf("state partition %d holds %d writer schemas, want 2 (previous and current)", p, len(st.Schemas))
		}
		for id := range st.Orders {
			if want := part.Partition([]byte(id), parts); want != p {
				t.Errorf("order %s stored in state partition %d, its input partition is %d", id, p, want)
			}
		}
		if len(st.Orders) == 0 {
			t.Errorf("state partition %d holds no order", p)
		}
	}
}
