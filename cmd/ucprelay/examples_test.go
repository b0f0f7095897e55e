package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/oracle"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

const exampleOrderChanged = "../../examples/order-changed"

// Each example's samples map without a failure, as its README says.
func TestExampleSamples(t *testing.T) {
	t.Parallel()
	for dir, want := range map[string]string{
		exampleOrderChanged: "4 records: 4 mapped, 0 ignored, 0 failed",
		exampleThreeTopics:  "6 records: 6 mapped, 0 ignored, 0 failed",
	} {
		out, err := run(t, nil, "mapping", "test", "--config", filepath.Join(dir, "relay.yaml"), "--file", filepath.Join(dir, "samples.jsonl"))
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s: mapping test: %v\n%s", dir, err, out)
		}
	}
}

// changeHistory is one order's "order changed" records (the example's schema, standard
// JSON) and the same history in ucprelay's own events.
type changeHistory struct {
	records []string
	events  []orderevents.Event
}

// orderChanges writes order i's history: created with two lines, line 1 shipped, then
// (by i) line 2 canceled, line 1 delivered, or the whole order canceled.
func orderChanges(i int, at time.Time) changeHistory {
	id := fmt.Sprintf("ord_chg_%03d", i)
	ms := func(d time.Duration) int64 { return at.Add(d).UnixMilli() }
	ts := func(d time.Duration) time.Time { return at.Add(d).UTC().Truncate(time.Millisecond) }
	var h changeHistory
	add := func(rec string, ev orderevents.Event) {
		h.records = append(h.records, rec)
		ev.OrderID, ev.Source = id, "TOPIC"
		h.events = append(h.events, ev)
	}
	qty := int64(1 + i%3)
	add(fmt.Sprintf(`{"change_id": "%s_c1", "order_id": %q, "changed_at": %d, "status": "CREATED", "sales_channel": "google",
		"order_number": "#%d", "checkout_id": "chk_%d", "order_url": "https://shop.example.com/orders/%d", "currency": "USD",
		"lines": [{"line_id": "li_1", "sku": "SKU-A", "title": "Jacket", "quantity": %d, "unit_price_cents": 8900},
		          {"line_id": "li_2", "sku": "SKU-B", "title": "Shoe", "quantity": 1, "unit_price_cents": 12000}],
		"shipping_cents": 800, "tax_cents": 1500, "carrier": null, "tracking_number": null, "note": null}`, id, id, ms(0), 5000+i, i, i, qty),
		orderevents.Event{ID: id + "_c1", OccurredAt: ts(0), PartnerID: "google", Payload: orderevents.OrderPlaced{
			CheckoutID: fmt.Sprintf("chk_%d", i), PermalinkURL: fmt.Sprintf("https://shop.example.com/orders/%d", i), Label: fmt.Sprintf("#%d", 5000+i), Currency: "USD",
			LineItems: []orderevents.PlacedLine{
				{ID: "li_1", Item: orderevents.Item{ID: "SKU-A", Title: "Jacket", Price: 8900}, Quantity: qty, Totals: []orderevents.Total{{Type: "subtotal", Amount: 8900 * qty}}},
				{ID: "li_2", Item: orderevents.Item{ID: "SKU-B", Title: "Shoe", Price: 12000}, Quantity: 1, Totals: []orderevents.Total{{Type: "subtotal", Amount: 12000}}},
			},
			Totals: []orderevents.Total{{Type: "subtotal", Amount: 8900*qty + 12000}, {Type: "fulfillment", Amount: 800}, {Type: "tax", Amount: 1500}, {Type: "total", Amount: 8900*qty + 12000 + 2300}},
		}})
	if i%4 == 3 {
		add(fmt.Sprintf(`{"change_id": "%s_c2", "order_id": %q, "changed_at": %d, "status": "CANCELED", "lines": [], "note": "customer asked"}`, id, id, ms(time.Hour)),
			orderevents.Event{ID: id + "_c2", OccurredAt: ts(time.Hour), Payload: orderevents.OrderCanceled{Description: "customer asked"}})
		return h
	}
	ship := func(n int, status string, d time.Duration) {
		add(fmt.Sprintf(`{"change_id": "%s_c%d", "order_id": %q, "changed_at": %d, "status": %q,
			"lines": [{"line_id": "li_1", "sku": "SKU-A", "quantity": %d}], "carrier": "UPS", "tracking_number": "1Z%03d"}`, id, n, id, ms(d), status, qty, i),
			orderevents.Event{ID: fmt.Sprintf("%s_c%d", id, n), OccurredAt: ts(d), Payload: orderevents.FulfillmentRecorded{
				Type: strings.ToLower(status), Lines: []orderevents.LineQuantity{{LineID: "li_1", Quantity: qty}}, Carrier: "UPS", TrackingNumber: fmt.Sprintf("1Z%03d", i)}})
	}
	ship(2, "SHIPPED", time.Hour)
	if i%2 == 0 {
		add(fmt.Sprintf(`{"change_id": "%s_c3", "order_id": %q, "changed_at": %d, "status": "CANCELED",
			"lines": [{"line_id": "li_2", "sku": "SKU-B", "quantity": 1}], "note": "out of stock"}`, id, id, ms(2*time.Hour)),
			orderevents.Event{ID: id + "_c3", OccurredAt: ts(2 * time.Hour), Payload: orderevents.LinesCanceled{
				Lines: []orderevents.LineQuantity{{LineID: "li_2", Quantity: 1}}, Description: "out of stock"}})
	}
	ship(4, "DELIVERED", 24*time.Hour)
	return h
}

// exampleRun is an example's relay.yaml run with `ucprelay run` against the test's broker,
// a schema registry (srfake) and a validating sink.
type exampleRun struct {
	t     *testing.T
	ctx   context.Context
	seeds []string
	snk   *sink.Sink
	reg   *sr.Client
	out   syncBuffer
	file  string
	env   []string
	stop  context.CancelFunc
	done  chan error
}

// startExample rewrites the example's relay.yaml for the test (its brokers, group and
// transactional id, the topics in topics, state and dead-letter topics of the test's,
// the registry and the partner), runs `topics create` and starts `ucprelay run`.
func startExample(ctx context.Context, t *testing.T, dir string, tt testTopics, topics map[string]string) *exampleRun {
	t.Helper()
	e := &exampleRun{t: t, ctx: ctx, seeds: kafkatest.Brokers(t), env: []string{"UCPRELAY_SECRET_GOOGLE_API_KEY=test-key"}}
	val, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	if e.snk, err = sink.New(sink.Config{Validator: val}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(e.snk)
	t.Cleanup(hs.Close)
	fake := srfake.New()
	t.Cleanup(fake.Close)
	if e.reg, err = sr.NewClient(sr.URLs(fake.URL())); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "relay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(text)
	repl := map[string]string{
		"brokers: [kafka-1:9092]":         "brokers: [" + e.seeds[0] + "]\n  group: " + tt.names.Group() + "\n  transactional_id: " + tt.names.TxnID(),
		"state_topic: ucprelay.state":     "state_topic: " + tt.state,
		"dead_letter_topic: ucprelay.dlq": "dead_letter_topic: " + tt.dlq,
		"http://schema-registry:8081":     fake.URL(),
		"https://partner.example.com":     hs.URL,
	}
	maps.Copy(repl, topics)
	for old, new := range repl {
		if !strings.Contains(cfg, old) {
			t.Fatalf("the example's relay.yaml no longer has %q", old)
		}
		cfg = strings.ReplaceAll(cfg, old, new)
	}
	// The test's sink is plain http on loopback: say so, as a local test sink must.
	cfg = regexp.MustCompile(`(?m)^( *)base_url: `+regexp.QuoteMeta(hs.URL)+`$`).ReplaceAllString(cfg, "${0}\n${1}allow_insecure_http: true")
	e.file = writeConfig(t, cfg)
	if out, err := run(t, e.env, "--config", e.file, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	root := newRootCmdFor(&app{stdout: &e.out, stderr: &e.out, environ: e.env})
	root.SetArgs([]string{"--config", e.file, "run", "--telemetry.listen", ""})
	var runCtx context.Context
	runCtx, e.stop = context.WithCancel(ctx)
	e.done = make(chan error, 1)
	go func() { e.done <- root.ExecuteContext(runCtx) }()
	return e
}

// schema registers an example schema under subject; its writer encodes Confluent frames.
func (e *exampleRun) schema(file, subject string) exampleWriter {
	e.t.Helper()
	text, err := os.ReadFile(file)
	if err != nil {
		e.t.Fatal(err)
	}
	sch, err := e.reg.CreateSchema(e.ctx, subject, sr.Schema{Schema: string(text), Type: sr.TypeAvro})
	if err != nil {
		e.t.Fatal(err)
	}
	codec, err := goavro.NewCodecForStandardJSONFull(string(text))
	if err != nil {
		e.t.Fatal(err)
	}
	return exampleWriter{t: e.t, id: sch.ID, codec: codec}
}

// exampleWriter encodes records of one registered schema.
type exampleWriter struct {
	t     *testing.T
	id    int
	codec *goavro.Codec
}

// frame encodes a record in the standard JSON of the schema, Confluent-framed.
func (w exampleWriter) frame(text string) []byte {
	w.t.Helper()
	native, _, err := w.codec.NativeFromTextual([]byte(text))
	if err != nil {
		w.t.Fatalf("%v: %s", err, text)
	}
	v, err := w.codec.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(w.id)), native)
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}

// produce writes records.
func (e *exampleRun) produce(recs ...*kgo.Record) {
	e.t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// converge waits until every order's newest body at the sink is the oracle's of its
// events in ucprelay's own schema.
func (e *exampleRun) converge(want map[string][]orderevents.Event) {
	e.t.Helper()
	bodies, err := oracle.Bodies(want)
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		missing := ""
		for id, body := range bodies {
			if d, ok := e.snk.Latest(id); !ok || !oracle.SameJSON(d.Body, body) {
				missing = id
			}
		}
		if missing == "" {
			return
		}
		select {
		case err := <-e.done:
			e.t.Fatalf("run ended: %v\n%s", err, e.out.String())
		case <-e.ctx.Done():
			d, _ := e.snk.Latest(missing)
			e.t.Fatalf("order %s never converged\ngot  %s\nwant %s\n%s", missing, d.Body, bodies[missing], e.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// finish stops the relay and checks that nothing was invalid, stale or dead-lettered.
func (e *exampleRun) finish() {
	e.t.Helper()
	e.stop()
	if err := <-e.done; err != nil {
		e.t.Fatalf("run: %v\n%s", err, e.out.String())
	}
	if st := e.snk.Stats(); st.Invalid != 0 || st.Stale != 0 {
		e.t.Errorf("sink %+v", st)
	}
	if strings.Contains(e.out.String(), "dead-lettered") {
		e.t.Errorf("a record was dead-lettered:\n%s", e.out.String())
	}
}

// TestExampleOrderChangedRealKafka: `ucprelay run` with the example's configuration (its
// topic, registry and partner pointed at the test's) on "order changed" records framed
// through a schema registry: every order's final snapshot at the partner equals the one
// of the same history written in ucprelay's own schema, and nothing is dead-lettered.
func TestExampleOrderChangedRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tt := newTestTopics(t, kafkatest.Brokers(t), 3)
	e := startExample(ctx, t, exampleOrderChanged, tt, map[string]string{"shop.order-changes": tt.input})
	w := e.schema(filepath.Join(exampleOrderChanged, "order_changed.avsc"), tt.input+"-value")
	at := time.Now().Add(-48 * time.Hour)
	want := map[string][]orderevents.Event{}
	var recs []*kgo.Record
	for i := range 16 {
		h := orderChanges(i, at.Add(time.Duration(i)*time.Minute))
		for j, rec := range h.records {
			ev := h.events[j]
			ev.Source = tt.input
			want[ev.OrderID] = append(want[ev.OrderID], ev)
			recs = append(recs, &kgo.Record{Topic: tt.input, Key: []byte(ev.OrderID), Value: w.frame(rec)})
		}
	}
	e.produce(recs...)
	e.converge(want)
	e.finish()
}

const exampleThreeTopics = "../../examples/three-topics"

// shopRecord is one record of the three-topics example: its topic, key, writer schema
// (by file) and value in the schema's standard JSON.
type shopRecord struct {
	topic, key, schema, value string
	// late records are written after the compatible schema change.
	late bool
}

// shopHistory is order i of the three-topics example: created (on orders), dispatched
// (on shipments, keyed by shipment id), then by i refunded in part (on refunds, keyed by
// payment id), delivered (the warehouse's schema version 2), or cancelled as a whole.
// Order 11 comes from another channel: not ours. events is the same history in
// ucprelay's own events; topics names the test's topics by their role.
func shopHistory(i int, at time.Time, topics map[string]string) (recs []shopRecord, events []orderevents.Event) {
	id := fmt.Sprintf("ord_3t_%03d", i)
	ms := func(d time.Duration) int64 { return at.Add(d).UnixMilli() }
	ts := func(d time.Duration) time.Time { return at.Add(d).UTC().Truncate(time.Millisecond) }
	add := func(rec shopRecord, ev orderevents.Event) {
		rec.topic = topics[rec.topic]
		recs = append(recs, rec)
		ev.OrderID, ev.Source = id, rec.topic
		events = append(events, ev)
	}
	q := int64(1 + i%2)
	channel := "google"
	if i == 11 {
		channel = "another_agent"
	}
	sub := 24900 + 3900*q
	add(shopRecord{topic: "orders", key: id, schema: "order_created.avsc", value: fmt.Sprintf(`{"id": %q, "number": %d, "created_at": %d,
		"channel": %q, "currency": "USD", "shipping_cents": 500, "tax_cents": 1000,
		"items": [{"sku": "SKU-TENT", "title": "Trail Tent", "qty": 1, "unit_price_cents": 24900, "image": "https://shop.example.com/img/tent.jpg"},
		          {"sku": "SKU-MAT", "title": "Sleeping Mat", "qty": %d, "unit_price_cents": 3900, "image": null}]}`, id, 7000+i, ms(0), channel, q)},
		orderevents.Event{ID: "created-" + id, OccurredAt: ts(0), PartnerID: channel, Payload: orderevents.OrderPlaced{
			CheckoutID: "chk_" + id, PermalinkURL: "https://shop.example.com/orders/" + id, Label: fmt.Sprintf("#%d", 7000+i), Currency: "USD",
			LineItems: []orderevents.PlacedLine{
				{ID: "SKU-TENT", Item: orderevents.Item{ID: "SKU-TENT", Title: "Trail Tent", Price: 24900, ImageURL: "https://shop.example.com/img/tent.jpg"},
					Quantity: 1, Totals: []orderevents.Total{{Type: "subtotal", Amount: 24900}}},
				{ID: "SKU-MAT", Item: orderevents.Item{ID: "SKU-MAT", Title: "Sleeping Mat", Price: 3900}, Quantity: q, Totals: []orderevents.Total{{Type: "subtotal", Amount: 3900 * q}}},
			},
			Totals: []orderevents.Total{{Type: "subtotal", Amount: sub}, {Type: "fulfillment", Amount: 500}, {Type: "tax", Amount: 1000}, {Type: "total", Amount: sub + 1500}},
		}})
	if i%4 == 3 {
		add(shopRecord{topic: "orders", key: id, schema: "order_cancelled.avsc", value: fmt.Sprintf(`{"id": %q, "cancelled_at": %d, "reason": "customer asked"}`, id, ms(time.Hour))},
			orderevents.Event{ID: "cancelled-" + id, OccurredAt: ts(time.Hour), Payload: orderevents.OrderCanceled{Description: "customer asked"}})
		return recs, events
	}
	shp := fmt.Sprintf("shp_%03d", i)
	lines := func(status, schema, extra, carrier string, d time.Duration, late bool) {
		add(shopRecord{topic: "shipments", key: shp, schema: schema, late: late, value: fmt.Sprintf(`{"shipment_id": %q, "order_id": %q, "status": %q, "at": %d,
			"carrier": "UPS", "tracking": "1Z%03d"%s, "lines": [{"sku": "SKU-TENT", "qty": 1}, {"sku": "SKU-MAT", "qty": %d}]}`, shp, id, status, ms(d), i, extra, q)},
			orderevents.Event{ID: "shipment-" + shp + "-" + status, OccurredAt: ts(d), Payload: orderevents.FulfillmentRecorded{
				Type: map[string]string{"DISPATCHED": "shipped", "DELIVERED": "delivered"}[status], Carrier: carrier, TrackingNumber: fmt.Sprintf("1Z%03d", i),
				Lines: []orderevents.LineQuantity{{LineID: "SKU-TENT", Quantity: 1}, {LineID: "SKU-MAT", Quantity: q}}}})
	}
	lines("DISPATCHED", "shipment_updated.avsc", "", "UPS", 2*time.Hour, false)
	if i%3 == 0 {
		add(shopRecord{topic: "refunds", key: fmt.Sprintf("pay_%03d", i), schema: "refund_issued.avsc", value: fmt.Sprintf(
			`{"payment_id": "pay_%03d", "refund_id": "rf_%03d", "order_id": %q, "issued_at": %d, "amount_cents": 3900, "currency": "USD"}`, i, i, id, ms(3*time.Hour))},
			orderevents.Event{ID: fmt.Sprintf("refund-rf_%03d", i), OccurredAt: ts(3 * time.Hour), Payload: orderevents.AdjustmentRecorded{
				AdjustmentID: fmt.Sprintf("rf_%03d", i), Type: "refund", Status: "completed", Currency: "USD", Totals: []orderevents.Total{{Type: "total", Amount: -3900}}}})
	}
	if i%2 == 0 {
		lines("DELIVERED", "shipment_updated.v2.avsc", `, "service_level": "Express"`, "UPS Express", 24*time.Hour, true)
	}
	return recs, events
}

// TestExampleThreeTopicsRealKafka: `ucprelay run` with the example's configuration on the
// real broker, three topics with three partition counts (orders keyed by order id,
// shipments by shipment id, refunds by payment id), Confluent-framed through a schema
// registry. Half way the warehouse's schema changes compatibly (version 2 adds a field the
// rule uses when present). Every order's final snapshot equals the one of the same
// history in ucprelay's own schema, nothing is dead-lettered, and the order of another
// channel never reaches the partner.
func TestExampleThreeTopicsRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 3)
	topics := map[string]string{"orders": tt.input, "shipments": tt.names.Topic("shipments"), "refunds": tt.names.Topic("refunds"),
		"repartition": tt.names.Topic("repartition")}
	kafkatest.CreateTopic(t, tt.adm, topics["shipments"], 2, nil)
	kafkatest.CreateTopic(t, tt.adm, topics["refunds"], 4, nil)
	e := startExample(ctx, t, exampleThreeTopics, tt, map[string]string{"topic: shop.orders": "topic: " + topics["orders"],
		"topic: shop.shipments": "topic: " + topics["shipments"], "topic: shop.refunds": "topic: " + topics["refunds"], "repartition_topic: ucprelay.repartition": "repartition_topic: " + topics["repartition"]})
	t.Cleanup(func() { _, _ = tt.adm.DeleteTopics(context.Background(), topics["repartition"]) })
	writers := map[string]exampleWriter{}
	register := func(file, topic string) {
		writers[file] = e.schema(filepath.Join(exampleThreeTopics, file), topic+"-value")
	}
	register("order_created.avsc", topics["orders"])
	register("order_cancelled.avsc", topics["orders"])
	register("shipment_updated.avsc", topics["shipments"])
	register("refund_issued.avsc", topics["refunds"])

	at := time.Now().Add(-48 * time.Hour)
	early, all := map[string][]orderevents.Event{}, map[string][]orderevents.Event{}
	var first, late []shopRecord
	for i := range 12 {
		recs, evs := shopHistory(i, at.Add(time.Duration(i)*time.Minute), topics)
		for j, rec := range recs {
			if i != 11 {
				all[evs[j].OrderID] = append(all[evs[j].OrderID], evs[j])
				if !rec.late {
					early[evs[j].OrderID] = append(early[evs[j].OrderID], evs[j])
				}
			}
			if rec.late {
				late = append(late, rec)
			} else {
				first = append(first, rec)
			}
		}
	}
	write := func(recs []shopRecord) {
		out := make([]*kgo.Record, 0, len(recs))
		for _, r := range recs {
			out = append(out, &kgo.Record{Topic: r.topic, Key: []byte(r.key), Value: writers[r.schema].frame(r.value)})
		}
		e.produce(out...)
	}
	write(first)
	e.converge(early)
	// The warehouse deploys version 2 of its schema; the relay learns it from the registry.
	register("shipment_updated.v2.avsc", topics["shipments"])
	write(late)
	e.converge(all)
	if d, ok := e.snk.Latest("ord_3t_011"); ok {
		t.Errorf("the order of another channel reached the partner: %s", d.Body)
	}
	e.finish()
}
