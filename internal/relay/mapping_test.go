package relay_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// The shop's own schemas (internal/mapping/testdata) and the rules that map them.
var shopRules = []mapping.Rule{
	{
		Name: "order-created", Match: `record_name == "com.shop.orders.OrderCreated"`, Kind: "OrderPlaced",
		Event: map[string]string{
			"event_id": `"created-" + value.id`, "order_id": `value.id`, "occurred_at": `millis(value.created_at)`,
			"partner_id": `value.channel`,
			"payload": `{
				"checkout_id": "chk_" + value.id, "permalink_url": "https://shop.example.com/orders/" + value.id,
				"label": "#" + string(value.number), "currency": value.currency,
				"line_items": value.items.map(i, {"id": i.sku, "quantity": i.qty,
					"item": {"id": i.sku, "title": i.title, "price": i.unit_price_cents, "image_url": i.image},
					"totals": [{"type": "subtotal", "amount": i.unit_price_cents * i.qty}]}),
				"totals": [
					{"type": "subtotal", "amount": value.items.map(i, i.unit_price_cents * i.qty).sum()},
					{"type": "fulfillment", "amount": value.shipping_cents},
					{"type": "tax", "amount": value.tax_cents},
					{"type": "total", "amount": value.items.map(i, i.unit_price_cents * i.qty).sum() + value.shipping_cents + value.tax_cents}]}`,
		},
	},
	{
		Name: "shipment-dispatched", Match: `record_name == "com.shop.wms.ShipmentDispatched"`, Kind: "FulfillmentRecorded",
		Event: map[string]string{
			"event_id": `"shipment-" + value.shipment_id`, "order_id": `value.order_id`, "occurred_at": `millis(value.dispatched_at)`,
			"source": `headers["source-system"]`,
			"payload": `{"type": "shipped", "carrier": value.carrier, "tracking_number": value.tracking,
				"lines": value.lines.map(l, {"line_id": l.sku, "quantity": l.qty})}`,
		},
	},
}

// shopRegistry is a schema registry (srfake) holding the shop's own schemas, and the
// codec that reads records framed with them.
type shopRegistry struct {
	t     *testing.T
	ctx   context.Context
	reg   *sr.Client
	codec *avrocodec.Codec
}

// shopWriter is one registered writer schema.
type shopWriter struct {
	id    int
	codec *goavro.Codec
}

func newShopRegistry(ctx context.Context, t *testing.T) *shopRegistry {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	reg, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	codec, err := avrocodec.New(avrocodec.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	return &shopRegistry{t: t, ctx: ctx, reg: reg, codec: codec}
}

// schema registers internal/mapping/testdata/file under subject.
func (s *shopRegistry) schema(file, subject string) shopWriter {
	s.t.Helper()
	b, err := os.ReadFile("../mapping/testdata/" + file)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.schemaText(string(b), subject)
}

func (s *shopRegistry) schemaText(text, subject string) shopWriter {
	s.t.Helper()
	sc, err := s.reg.CreateSchema(s.ctx, subject, sr.Schema{Schema: text, Type: sr.TypeAvro})
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := goavro.NewCodecForStandardJSONFull(text)
	if err != nil {
		s.t.Fatal(err)
	}
	return shopWriter{id: sc.ID, codec: c}
}

// frame encodes an Avro JSON text with w, Confluent-framed.
func (s *shopRegistry) frame(w shopWriter, text string) []byte {
	s.t.Helper()
	native, _, err := w.codec.NativeFromTextual([]byte(text))
	if err != nil {
		s.t.Fatal(err)
	}
	b, err := w.codec.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(w.id)), native)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// refundRule maps the payment service's refunds.
var refundRule = mapping.Rule{
	Name: "refund-issued", Match: `record_name == "com.shop.payments.RefundIssued"`, Kind: "AdjustmentRecorded",
	Event: map[string]string{
		"event_id": `"refund-" + value.payment_id`, "order_id": `value.order_id`, "occurred_at": `timestamp`,
		"payload": `{"adjustment_id": value.payment_id, "type": "refund", "status": "completed", "currency": "USD",
			"totals": [{"type": "total", "amount": -value.amount_cents}]}`,
	},
}

// withDefaultSource returns rules with the shipment rule (shopRules[1]) fixed: its source
// defaults to "wms" when the record lacks the source-system header it required.
func withDefaultSource(rules []mapping.Rule) []mapping.Rule {
	fixed := append([]mapping.Rule{}, rules...)
	fixed[1].Event = maps.Clone(rules[1].Event)
	fixed[1].Event["source"] = `"source-system" in headers ? headers["source-system"] : "wms"`
	return fixed
}

// TestMappedInputRealKafka: on the real broker, the input carries the shop's own records
// (two schemas, Confluent-framed through a schema registry), mapped by rules: each order
// reaches the partner as the snapshot of the events the rules make; a record of a schema
// no rule matches is dead-lettered unmapped, one a rule fails on mapping_failed, each
// with its source; with `unmatched: ignore` the unmatched record is only counted.
func TestMappedInputRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := newEnv(t, kafkatest.Brokers(t), 2, sink.Config{})
	shop := newShopRegistry(ctx, t)
	created, shipped := shop.schema("order_created.avsc", "shop-created"), shop.schema("shipment_dispatched.avsc", "shop-shipped")
	frame, codec := shop.frame, shop.codec
	mapper, err := mapping.New([]mapping.Topic{{Name: e.input, Rules: shopRules}})
	if err != nil {
		t.Fatal(err)
	}
	records := mapping.Records{Mapper: mapper, Codec: codec}

	// Six orders placed, four shipped; the expected events are what the rules make of them.
	at := time.Now().Add(-2 * time.Hour).UnixMilli()
	var recs []*kgo.Record
	for i := range 6 {
		id := fmt.Sprintf("ord_shop_%d", i)
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: frame(created, fmt.Sprintf(`{"id": %q, "number": %d, "created_at": %d,
			"channel": "google", "currency": "USD", "shipping_cents": 800, "tax_cents": 1200,
			"items": [{"sku": "SKU-%d", "title": "Item %d", "qty": %d, "unit_price_cents": 2500, "image": null}]}`, id, 1000+i, at+int64(i), i, i, i+1))})
		if i < 4 {
			recs = append(recs, &kgo.Record{Key: []byte(id), Value: frame(shipped, fmt.Sprintf(`{"shipment_id": "shp_%d", "order_id": %q,
				"dispatched_at": %d, "carrier": "UPS", "tracking": "1Z%d", "lines": [{"sku": "SKU-%d", "qty": %d}]}`, i, id, at+60000, i, i, i+1)),
				Headers: []kgo.RecordHeader{{Key: "source-system", Value: []byte("wms")}}})
		}
	}
	want := map[string][]orderevents.Event{}
	for _, rec := range recs {
		rec.Topic = e.input
		m, err := records.MapRecord(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		want[m.Event.OrderID] = append(want[m.Event.OrderID], m.Event)
	}
	// A record of a schema no rule matches, one the shipment rule fails on (it reads a
	// header the record lacks), and one whose event is invalid (a negative quantity).
	refund := shop.schema("refund_issued.avsc", "shop-refunds")
	unmapped := &kgo.Record{Key: []byte("ord_shop_1"), Value: frame(refund, `{"payment_id": "pay_1", "order_id": "ord_shop_1", "amount_cents": 100}`)}
	failing := &kgo.Record{Key: []byte("ord_shop_5"), Value: frame(shipped, `{"shipment_id": "shp_y", "order_id": "ord_shop_5",
		"dispatched_at": 1, "carrier": "UPS", "tracking": null, "lines": [{"sku": "SKU-5", "qty": 1}]}`)}
	invalid := &kgo.Record{Key: []byte("ord_shop_0"), Value: frame(shipped, `{"shipment_id": "shp_x", "order_id": "ord_shop_0",
		"dispatched_at": 1, "carrier": "UPS", "tracking": null, "lines": [{"sku": "SKU-0", "qty": -3}]}`),
		Headers: []kgo.RecordHeader{{Key: "source-system", Value: []byte("wms")}}}
	recs = append(recs, unmapped, failing, invalid)

	cfg := e.config("a")
	cfg.Mapper = records
	e.codec = codec
	run := e.start(cfg)
	for _, rec := range recs {
		rec.Topic = e.input
	}
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitConverged(ctx, oracle(t, want))
	byReason := map[string]deadletter.Record{}
	for _, d := range e.deadLetters(ctx, 3) {
		byReason[d.Reason] = d
	}
	for reason, rec := range map[string]*kgo.Record{mapping.ReasonUnmapped: unmapped, mapping.ReasonMappingFailed: failing, "invalid_event": invalid} {
		d, ok := byReason[reason]
		switch {
		case !ok:
			t.Errorf("no %s dead letter: %v", reason, byReason)
		case d.Stage != deadletter.StageDecode || d.SourcePartition != rec.Partition || d.SourceOffset != rec.Offset || d.OrderID != string(rec.Key):
			t.Errorf("%s: dead letter %+v, want the source %d@%d", reason, d, rec.Partition, rec.Offset)
		}
	}
	if d := byReason[mapping.ReasonMappingFailed]; !strings.Contains(d.Error, "rule shipment-dispatched") || !strings.Contains(d.Error, "event.source") {
		t.Errorf("mapping_failed names no rule and field: %s", d.Error)
	}
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}

	// The mapping is fixed (a rule for refunds, the shipment rule without the header it
	// required), the relay restarted, and `dlq replay` of unmapped and mapping_failed
	// brings both records back: their orders take the new events.
	fixed := append(withDefaultSource(shopRules), refundRule)
	mapper2, err := mapping.New([]mapping.Topic{{Name: e.input, Rules: fixed}})
	if err != nil {
		t.Fatal(err)
	}
	records2 := mapping.Records{Mapper: mapper2, Codec: codec}
	for _, rec := range []*kgo.Record{unmapped, failing} {
		m, err := records2.MapRecord(ctx, rec)
		if err != nil {
			t.Fatalf("the fixed mapping fails %s: %v", rec.Key, err)
		}
		want[m.Event.OrderID] = append(want[m.Event.OrderID], m.Event)
	}
	cfg.Mapper = records2
	cfg.TransactionalID += ".fixed"
	run = e.start(cfg)
	st, err := deadletter.Replay(ctx, deadletter.ReplayConfig{KafkaOpts: []kgo.Opt{kgo.SeedBrokers(e.seeds...)}, Topic: e.dlq, InputTopic: e.input,
		Filter: deadletter.Filter{Reasons: []string{mapping.ReasonUnmapped, mapping.ReasonMappingFailed}}})
	if err != nil || st.Replayed != 2 {
		t.Fatalf("replay: %+v, %v", st, err)
	}
	e.waitConverged(ctx, oracle(t, want))
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
}

// With `unmatched: ignore` a record no rule matches is skipped and counted, never
// dead-lettered (kfake; single-object framing, the shop's schema known by fingerprint).
func TestMappedInputIgnoresUnmatchedKfake(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := newEnv(t, kafkatest.Fake(t, 2).ListenAddrs(), 2, sink.Config{})
	read := func(file string) string {
		b, err := os.ReadFile("../mapping/testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	created, refund := read("order_created.avsc"), read("refund_issued.avsc")
	codec, err := avrocodec.New(avrocodec.WithKnownSchemas(created, refund))
	if err != nil {
		t.Fatal(err)
	}
	single := func(schema, text string) []byte {
		c, err := goavro.NewCodecForStandardJSONFull(schema)
		if err != nil {
			t.Fatal(err)
		}
		native, _, err := c.NativeFromTextual([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.SingleFromNative(nil, native)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mapper, err := mapping.New([]mapping.Topic{{Name: e.input, Rules: shopRules[:1], Unmatched: mapping.UnmatchedIgnore}})
	if err != nil {
		t.Fatal(err)
	}
	records := mapping.Records{Mapper: mapper, Codec: codec}
	placed := &kgo.Record{Topic: e.input, Key: []byte("ord_ign"), Value: single(created, `{"id": "ord_ign", "number": 7, "created_at": 1788000000000,
		"channel": "google", "currency": "USD", "shipping_cents": 0, "tax_cents": 0,
		"items": [{"sku": "SKU-1", "title": "One", "qty": 1, "unit_price_cents": 100, "image": null}]}`)}
	ignored := &kgo.Record{Topic: e.input, Key: []byte("ord_ign"), Value: single(refund, `{"payment_id": "p", "order_id": "ord_ign", "amount_cents": 5}`)}
	m, err := records.MapRecord(ctx, placed)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config("a")
	cfg.Mapper = records
	e.codec = codec
	run := e.start(cfg)
	if err := e.prod.ProduceSync(ctx, ignored, placed).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitConverged(ctx, oracle(t, map[string][]orderevents.Event{"ord_ign": {m.Event}}))
	for run.r.Stats().Unmatched != 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("stats %+v: want 1 unmatched record", run.r.Stats())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if st := run.r.Stats(); st.DeadLettered != 0 {
		t.Errorf("dead-lettered %d", st.DeadLettered)
	}
}
