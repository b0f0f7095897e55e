package main

import (
	"context"
	"encoding/binary"
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
)

const shipmentRule = `mapping:
  - topic: %TOPIC%
    rules:
      - name: shipment-dispatched
        match: record_name == "com.shop.wms.ShipmentDispatched"
        kind: FulfillmentRecorded
        event:
          event_id: '"shipment-" + value.shipment_id'
          order_id: value.order_id
          occurred_at: millis(value.dispatched_at)
          payload: '{"type": "shipped", "carrier": value.carrier, "tracking_number": value.tracking, "lines": value.lines.map(l, {"line_id": l.sku, "quantity": l.qty})}'
`

func shipmentSchema(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../internal/mapping/testdata/shipment_dispatched.avsc")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mapping test on a file of sample records: each record's rule and event, or why it
// failed, and exit 1 when one fails.
func TestMappingTestFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shipment.avsc"), []byte(shipmentSchema(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	samples := filepath.Join(dir, "samples.jsonl")
	good := `{"schema": "shipment.avsc", "key": "ord_1", "value": {"shipment_id": "s1", "order_id": "ord_1", "dispatched_at": 1788000000000, "carrier": "UPS", "tracking": "1Z9", "lines": [{"sku": "SKU-1", "qty": 2}]}}`
	bad := `{"schema": "shipment.avsc", "key": "ord_2", "value": {"shipment_id": "s2", "order_id": "ord_2", "dispatched_at": 1788000000000, "carrier": "UPS", "tracking": null, "lines": [{"sku": "SKU-1", "qty": -1}]}}`
	cfg := writeConfig(t, "kafka:\n  brokers: [127.0.0.1:9]\n  input_topic: shop.events\npartners:\n  google:\n    base_url: "+nowhere+"\n"+
		strings.ReplaceAll(shipmentRule, "%TOPIC%", "shop.events"))
	if err := os.WriteFile(samples, []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, nil, "mapping", "test", "--config", cfg, "--file", samples)
	if err != nil || !strings.Contains(out, "rule shipment-dispatched: fulfillment_recorded shipment-s1 of order ord_1") ||
		!strings.Contains(out, `"tracking_number":{"string":"1Z9"}`) || !strings.Contains(out, "1 records: 1 mapped, 0 ignored, 0 failed") ||
		!strings.Contains(out, "types: the rules fit 1 writer schemas") {
		t.Fatalf("good sample: %v\n%s", err, out)
	}
	if err := os.WriteFile(samples, []byte(good+"\n"+bad+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, nil, "mapping", "test", "--config", cfg, "--file", samples)
	if err == nil || !strings.Contains(out, "line 2): FAILED") || !strings.Contains(out, "quantity") {
		t.Fatalf("bad sample: %v\n%s", err, out)
	}

	// A rule that reads a field the schema does not have fails the type check, named,
	// before any record says so.
	misspelt := writeConfig(t, "kafka:\n  brokers: [127.0.0.1:9]\n  input_topic: shop.events\npartners:\n  google:\n    base_url: "+nowhere+"\n"+
		strings.ReplaceAll(strings.ReplaceAll(shipmentRule, "%TOPIC%", "shop.events"), "value.tracking,", "value.tracking_no,"))
	if err := os.WriteFile(samples, []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, nil, "mapping", "test", "--config", misspelt, "--file", samples)
	if err == nil || !strings.Contains(out, "types: FAILED against 1 writer schemas") ||
		!strings.Contains(out, "topic shop.events, rule shipment-dispatched, event.payload") ||
		!strings.Contains(out, "with value a com.shop.wms.ShipmentDispatched (schema file shipment.avsc)") ||
		!strings.Contains(out, "undefined field 'tracking_no'") {
		t.Fatalf("misspelt field: %v\n%s", err, out)
	}
}

// run type-checks the mapping against the registry's writer schemas of the mapped
// topics and refuses to start when a rule does not fit, naming it.
func TestRunChecksTheMappingAgainstTheRegistryRealKafka(t *testing.T) {
	t.Parallel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 2)
	fake := srfake.New()
	defer fake.Close()
	reg, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := reg.CreateSchema(ctx, tt.input+"-value", sr.Schema{Schema: shipmentSchema(t), Type: sr.TypeAvro}); err != nil {
		t.Fatal(err)
	}
	rules := strings.ReplaceAll(strings.ReplaceAll(shipmentRule, "%TOPIC%", tt.input), "millis(value.dispatched_at)", "millis(value.dispatched)")
	cfg := tt.config(t, seeds[0], "", nowhere, "schema_registry:\n  url: "+fake.URL()+"\n"+rules)
	if out, err := run(t, nil, "--config", cfg, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	out, err := run(t, nil, "--config", cfg, "run")
	if err == nil || !strings.Contains(err.Error()+out, "the mapping does not fit the registry's writer schemas") ||
		!strings.Contains(err.Error()+out, "rule shipment-dispatched, event.occurred_at (millis(value.dispatched)): with value a com.shop.wms.ShipmentDispatched (subject "+tt.input+"-value version 1)") {
		t.Fatalf("run with a rule that does not fit: %v\n%s", err, out)
	}
}

// mapping test reads a topic from its beginning, without a consumer group.
func TestMappingTestFromTopicRealKafka(t *testing.T) {
	t.Parallel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 2)
	codec, err := goavro.NewCodecForStandardJSONFull(shipmentSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	native, _, err := codec.NativeFromTextual([]byte(`{"shipment_id": "s1", "order_id": "ord_1", "dispatched_at": 1788000000000, "carrier": "UPS", "tracking": null, "lines": [{"sku": "SKU-1", "qty": 1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// Confluent framing through the shop's schema registry.
	fake := srfake.New()
	defer fake.Close()
	reg, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx0, cancel0 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel0()
	sch, err := reg.CreateSchema(ctx0, "shop-shipments", sr.Schema{Schema: shipmentSchema(t), Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	soe, err := codec.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(sch.ID)), native)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(tt.input))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("ord_1"), Value: soe}, &kgo.Record{Key: []byte("ord_1"), Value: []byte("garbage")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := tt.config(t, seeds[0], "", nowhere, "schema_registry:\n  url: "+fake.URL()+"\n"+strings.ReplaceAll(shipmentRule, "%TOPIC%", tt.input))
	out, err := run(t, nil, "mapping", "test", "--config", cfg, "--from-topic", tt.input, "--limit", "5")
	if err == nil || !strings.Contains(out, "2 records: 1 mapped, 0 ignored, 1 failed") || !strings.Contains(out, "shipment-s1 of order ord_1") || !strings.Contains(out, "unknown_framing") {
		t.Fatalf("from topic: %v\n%s", err, out)
	}
}
