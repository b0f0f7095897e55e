package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// The example's samples map without a failure, as its README says.
func TestExampleOrderChangedSamples(t *testing.T) {
	t.Parallel()
	out, err := run(t, nil, "mapping", "test", "--config", filepath.Join(exampleOrderChanged, "relay.yaml"),
		"--file", filepath.Join(exampleOrderChanged, "samples.jsonl"))
	if err != nil || !strings.Contains(out, "4 records: 4 mapped, 0 ignored, 0 failed") {
		t.Fatalf("mapping test: %v\n%s", err, out)
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

// TestExampleOrderChangedRealKafka: `ucprelay run` with the example's configuration (its
// topic, registry and partner pointed at the test's) on "order changed" records framed
// through a schema registry: every order's final snapshot at the partner equals the one
// of the same history written in ucprelay's own schema, and nothing is dead-lettered.
func TestExampleOrderChangedRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 3)
	val, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	snk, err := sink.New(sink.Config{Validator: val})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(snk)
	defer hs.Close()
	srv := hs.URL
	fake := srfake.New()
	defer fake.Close()

	text, err := os.ReadFile(filepath.Join(exampleOrderChanged, "relay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(text)
	for old, repl := range map[string]string{
		"brokers: [kafka-1:9092]":         "brokers: [" + seeds[0] + "]\n  group: " + tt.names.Group() + "\n  transactional_id: " + tt.names.TxnID(),
		"shop.order-changes":              tt.input,
		"state_topic: ucprelay.state":     "state_topic: " + tt.state,
		"dead_letter_topic: ucprelay.dlq": "dead_letter_topic: " + tt.dlq,
		"http://schema-registry:8081":     fake.URL(),
		"https://partner.example.com":     srv,
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("the example's relay.yaml no longer has %q", old)
		}
		cfg = strings.ReplaceAll(cfg, old, repl)
	}
	file := writeConfig(t, cfg)
	env := []string{"UCPRELAY_SECRET_GOOGLE_API_KEY=test-key"}
	if out, err := run(t, env, "--config", file, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}

	schema, err := os.ReadFile(filepath.Join(exampleOrderChanged, "order_changed.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := reg.CreateSchema(ctx, tt.input+"-value", sr.Schema{Schema: string(schema), Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodecForStandardJSONFull(string(schema))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-48 * time.Hour)
	want := map[string][]orderevents.Event{}
	var recs []*kgo.Record
	for i := range 16 {
		h := orderChanges(i, at.Add(time.Duration(i)*time.Minute))
		for j, rec := range h.records {
			native, _, err := codec.NativeFromTextual([]byte(rec))
			if err != nil {
				t.Fatalf("order %d record %d: %v", i, j, err)
			}
			v, err := codec.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(sch.ID)), native)
			if err != nil {
				t.Fatal(err)
			}
			ev := h.events[j]
			ev.Source = tt.input
			want[ev.OrderID] = append(want[ev.OrderID], ev)
			recs = append(recs, &kgo.Record{Topic: tt.input, Key: []byte(ev.OrderID), Value: v})
		}
	}
	bodies, err := oracle.Bodies(want)
	if err != nil {
		t.Fatal(err)
	}

	var out syncBuffer
	root := newRootCmdFor(&app{stdout: &out, stderr: &out, environ: env})
	root.SetArgs([]string{"--config", file, "run", "--telemetry.listen", ""})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(runCtx) }()
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		missing := ""
		for id, body := range bodies {
			if d, ok := snk.Latest(id); !ok || !oracle.SameJSON(d.Body, body) {
				missing = id
			}
		}
		if missing == "" {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run ended: %v\n%s", err, out.String())
		case <-ctx.Done():
			d, _ := snk.Latest(missing)
			t.Fatalf("order %s never converged\ngot  %s\nwant %s\n%s", missing, d.Body, bodies[missing], out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if st := snk.Stats(); st.Invalid != 0 || st.Stale != 0 {
		t.Errorf("sink %+v", st)
	}
	if strings.Contains(out.String(), "dead-lettered") {
		t.Errorf("a record was dead-lettered:\n%s", out.String())
	}
}
