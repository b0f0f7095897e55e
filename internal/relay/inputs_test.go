package relay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// TestSeveralInputsRealKafka: on the real broker, one order's events come from three
// topics: orders (keyed by order id), payments (keyed by order id, co-partitioned) and
// shipments (keyed by shipment id, with another partition count), read by two replicas.
// Each order's events fold together: the partner gets the snapshot of all of them. The
// shipments fold where their order's unit is owned, or are re-keyed into the repartition
// topic exactly once (never two committed copies of one), and a shipment the mapping
// fails on is dead-lettered with no order id; once the mapping is fixed, `dlq replay` re-keys it and its order takes it.
// Both group protocols: classic (the copartitioned balancer) and consumer (KIP-848, the
// broker's range assignor).
func TestSeveralInputsRealKafka(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{relay.GroupClassic, relay.GroupConsumer} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			testSeveralInputs(t, protocol)
		})
	}
}

func testSeveralInputs(t *testing.T, protocol string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEnv(t, kafkatest.Brokers(t), 3, sink.Config{})
	payments, shipments, repartition := e.names.Topic("payments"), e.names.Topic("shipments"), e.names.Topic("repartition")
	kafkatest.CreateTopic(t, e.adm, payments, 3, nil)
	kafkatest.CreateTopic(t, e.adm, shipments, 2, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := topics.Create(ctx, topics.NewAdmin(cl), topics.Layout{Input: []string{e.input, payments}, Repartition: repartition,
		Rekeyed: []string{shipments}, State: e.state, DeadLetter: e.dlq}, 1, 1); err != nil {
		t.Fatal(err)
	}

	shop := newShopRegistry(ctx, t)
	created, shipped := shop.schema("order_created.avsc", "shop-created"), shop.schema("shipment_dispatched.avsc", "shop-shipped")
	refunded := shop.schema("refund_issued.avsc", "shop-refunds")
	rules := append(append([]mapping.Rule{}, shopRules...), refundRule) // the shipment rule requires the source-system header
	mapped := func(rules []mapping.Rule) mapping.Records {
		var ts []mapping.Topic
		for _, name := range []string{e.input, payments, shipments} {
			ts = append(ts, mapping.Topic{Name: name, Rules: rules})
		}
		m, err := mapping.New(ts)
		if err != nil {
			t.Fatal(err)
		}
		return mapping.Records{Mapper: m, Codec: shop.codec}
	}
	records := mapped(rules)

	at := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)
	var first, second []*kgo.Record
	for i := range 8 {
		id := fmt.Sprintf("ord_multi_%d", i)
		recs := []*kgo.Record{{Topic: e.input, Key: []byte(id), Value: shop.frame(created, fmt.Sprintf(`{"id": %q, "number": %d, "created_at": %d,
			"channel": "google", "currency": "USD", "shipping_cents": 800, "tax_cents": 1200,
			"items": [{"sku": "SKU-%d", "title": "Item %d", "qty": 2, "unit_price_cents": 2500, "image": null}]}`, id, 2000+i, at.UnixMilli(), i, i))}}
		if i < 6 {
			recs = append(recs, &kgo.Record{Topic: shipments, Key: fmt.Appendf(nil, "shp_%d", i), Value: shop.frame(shipped, fmt.Sprintf(
				`{"shipment_id": "shp_%d", "order_id": %q, "dispatched_at": %d, "carrier": "UPS", "tracking": "1Z%d", "lines": [{"sku": "SKU-%d", "qty": 2}]}`,
				i, id, at.Add(time.Minute).UnixMilli(), i, i)), Headers: []kgo.RecordHeader{{Key: "source-system", Value: []byte("wms")}}})
		}
		if i < 3 {
			recs = append(recs, &kgo.Record{Topic: payments, Key: []byte(id), Value: shop.frame(refunded, fmt.Sprintf(
				`{"payment_id": "pay_%d", "order_id": %q, "amount_cents": 500}`, i, id))})
		}
		if i < 4 {
			first = append(first, recs...)
		} else {
			second = append(second, recs...)
		}
	}
	want := map[string][]orderevents.Event{}
	for i, rec := range append(append([]*kgo.Record{}, first...), second...) {
		rec.Timestamp = at.Add(time.Duration(i) * time.Second)
		m, err := records.MapRecord(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		want[m.Event.OrderID] = append(want[m.Event.OrderID], m.Event)
	}
	// A shipment the rule fails on: it lacks the header the rule reads.
	failing := &kgo.Record{Topic: shipments, Key: []byte("shp_bad"), Timestamp: at, Value: shop.frame(shipped, fmt.Sprintf(
		`{"shipment_id": "shp_bad", "order_id": "ord_multi_7", "dispatched_at": %d, "carrier": "DHL", "tracking": null, "lines": [{"sku": "SKU-7", "qty": 2}]}`,
		at.Add(2*time.Minute).UnixMilli()))}
	second = append(second, failing)

	cfg := func(replica string, rs mapping.Records) relay.Config {
		c := e.config(replica)
		c.CoTopics, c.RekeyTopics, c.RepartitionTopic, c.Mapper = []string{payments}, []string{shipments}, repartition, rs
		c.GroupProtocol = protocol
		return c
	}
	e.codec = shop.codec
	a := e.start(cfg("a", records))
	if err := e.prod.ProduceSync(ctx, first...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	b := e.start(cfg("b", records)) // a rebalance moves units (every input's partition p) to b
	if err := e.prod.ProduceSync(ctx, second...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitConverged(ctx, oracle(t, want))
	dl := e.deadLetters(ctx, 1)
	if len(dl) != 1 || dl[0].Reason != mapping.ReasonMappingFailed || dl[0].OrderID != "" || dl[0].SourceTopic != shipments {
		t.Fatalf("dead letters %+v: want the failing shipment, mapping_failed, no order id, from %s", dl, shipments)
	}
	if err := errors.Join(a.wait(), b.wait()); err != nil {
		t.Fatal(err)
	}

	// The rule is fixed; the replay re-keys the dead-lettered shipment through the
	// repartition topic, and its order takes it.
	fixed := mapped(withDefaultSource(rules))
	m, err := fixed.MapRecord(ctx, failing)
	if err != nil {
		t.Fatal(err)
	}
	want[m.Event.OrderID] = append(want[m.Event.OrderID], m.Event)
	c := e.start(cfg("c", fixed))
	st, err := deadletter.Replay(ctx, deadletter.ReplayConfig{KafkaOpts: []kgo.Opt{kgo.SeedBrokers(e.seeds...)}, Topic: e.dlq,
		InputTopic: e.input, RepartitionTopic: repartition, Filter: deadletter.Filter{Reasons: []string{mapping.ReasonMappingFailed}}})
	if err != nil || st.Replayed != 1 || st.Unroutable != 0 {
		t.Fatalf("replay: %+v, %v", st, err)
	}
	e.waitConverged(ctx, oracle(t, want))
	if err := c.wait(); err != nil {
		t.Fatal(err)
	}
	// Exactly once: a shipment folded where its order's unit was owned left no copy; one
	// forwarded to another replica's unit left one committed copy, never two. The replay's
	// request to re-key is there too (the replica then owned every unit: no copy of it).
	copies := map[string]int{}
	requests := 0
	for _, rec := range committedRecords(ctx, t, e.seeds, repartition, 3) {
		from := deadletter.HeaderValue(rec.Headers, mapping.HeaderRekeyedFrom)
		switch {
		case from != "":
			copies[from]++
		case deadletter.HeaderValue(rec.Headers, mapping.HeaderRekey) != "":
			requests++
		default:
			t.Errorf("a repartition record names no source: %+v", rec.Headers)
		}
	}
	for from, n := range copies {
		if n != 1 || !strings.HasPrefix(from, shipments+"/") {
			t.Errorf("%s: %d committed copies, want one of a shipment", from, n)
		}
	}
	if len(copies) > 6 || requests != 1 {
		t.Errorf("%d copies of shipments (at most 6) and %d requests to re-key (want 1)", len(copies), requests)
	}
}

// committedRecords counts the committed records of a topic of partitions partitions (no
// one may write to it meanwhile): it appends a sentinel to each partition and reads, read
// committed, up to all of them.
func committedRecords(ctx context.Context, t *testing.T, seeds []string, topic string, partitions int32) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := range partitions {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Key: []byte("sentinel"),
			Headers: []kgo.RecordHeader{{Key: "test.sentinel"}}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var out []*kgo.Record
	seen := 0
	for seen < int(partitions) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Headers) > 0 && r.Headers[0].Key == "test.sentinel" {
				seen++
			} else {
				out = append(out, r)
			}
		})
	}
	return out
}
