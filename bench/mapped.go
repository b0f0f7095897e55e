package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/chaos"
	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Mapped is the mapped case: the workload's lifecycles written as a shop's own records
// in the schemas of examples/three-topics (orders keyed by order id; shipments and refunds
// keyed by shipment and payment id, re-keyed), relayed through that example's mapping,
// against the same history in ucprelay's own schema on one topic, and on three topics
// split as the shop's are (keyed by order id, co-partitioned), in the same run. The shop's
// records are also written to one topic keyed by order id and mapped by all of the
// example's rules there: the mapping's cost with the topics' layout of the own case.
type Mapped struct {
	// Records are the shop's records (the events of the mapped case); own is the topic of
	// the same events in ucprelay's schema, and ownSplit the three topics of them.
	Records                         int
	orders, shipments, refunds, own string
	ownSplit                        map[string]string // shop topic → its twin in ucprelay's schema
	one                             string            // the shop's records on one topic, keyed by order id
	oneRecords                      mapping.Records   // the example's rules, all on one
	codec                           *avrocodec.Codec
	records                         mapping.Records
	topicsByRole                    map[string]string
}

// shopSchemas are the example's schemas; the workload's events they cannot say (returns,
// line cancellations, expectations, details) are left out of the mapped history.
var shopSchemas = []string{"order_created.avsc", "order_cancelled.avsc", "shipment_updated.avsc", "refund_issued.avsc"}

// NewMapped writes the mapped workload and its own-schema twin. dir is the example's
// directory (its relay.yaml and schemas).
func (e *Env) NewMapped(ctx context.Context, dir string) (*Mapped, error) {
	m := &Mapped{orders: e.Prefix + ".shop.orders", shipments: e.Prefix + ".shop.shipments", refunds: e.Prefix + ".shop.refunds", own: e.Prefix + ".shop.own"}
	m.topicsByRole = map[string]string{"shop.orders": m.orders, "shop.shipments": m.shipments, "shop.refunds": m.refunds}
	m.ownSplit = map[string]string{m.orders: m.own + ".orders", m.shipments: m.own + ".shipments", m.refunds: m.own + ".refunds"}
	cfg, err := config.Load(config.Sources{File: filepath.Join(dir, "relay.yaml")})
	if err != nil {
		return nil, err
	}
	ts := cfg.MappingTopics()
	for i := range ts {
		ts[i].Name = m.topicsByRole[ts[i].Name]
	}
	mapper, err := mapping.New(ts)
	if err != nil {
		return nil, err
	}
	m.one = e.Prefix + ".shop.one"
	all := mapping.Topic{Name: m.one}
	for _, t := range ts {
		all.Rules = append(all.Rules, t.Rules...)
	}
	oneMapper, err := mapping.New([]mapping.Topic{all})
	if err != nil {
		return nil, err
	}
	writers := map[string]*goavro.Codec{}
	var texts []string
	for _, f := range shopSchemas {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		if writers[f], err = goavro.NewCodecForStandardJSONFull(string(b)); err != nil {
			return nil, err
		}
		texts = append(texts, string(b))
	}
	if m.codec, err = avrocodec.New(avrocodec.WithKnownSchemas(texts...)); err != nil {
		return nil, err
	}
	m.records = mapping.Records{Mapper: mapper, Codec: m.codec}
	m.oneRecords = mapping.Records{Mapper: oneMapper, Codec: m.codec}
	for _, t := range []string{m.orders, m.shipments, m.refunds, m.own, m.ownSplit[m.orders], m.ownSplit[m.shipments], m.ownSplit[m.refunds], m.one} {
		if _, err := e.adm.CreateTopic(ctx, e.Partitions, 1, nil, t); err != nil {
			return nil, fmt.Errorf("bench: create %s: %w", t, err)
		}
		e.cleanup = append(e.cleanup, func() { _, _ = e.adm.DeleteTopics(context.Background(), t) })
	}
	wl := chaos.NewWorkload(e.Orders, "google", 11)
	currency := map[string]string{}
	var shop, own, split, one []*kgo.Record
	for _, ev := range wl.Stream {
		topic, key, schema, datum := m.shopRecord(ev, currency)
		if topic == "" {
			continue
		}
		text, err := json.Marshal(datum)
		if err != nil {
			return nil, err
		}
		native, _, err := writers[schema].NativeFromTextual(text)
		if err != nil {
			return nil, fmt.Errorf("bench: %s %s: %w", schema, text, err)
		}
		v, err := writers[schema].SingleFromNative(nil, native)
		if err != nil {
			return nil, err
		}
		// The record's timestamp is left to the producer: the workload's events are dated
		// months back, past the topics' retention, which would delete them at once.
		rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: v}
		mr, err := m.records.MapRecord(ctx, rec)
		if err != nil {
			return nil, fmt.Errorf("bench: the example's mapping fails a generated record (%s): %w", text, err)
		}
		ov, err := e.codec.EncodeSingleObject(mr.Event)
		if err != nil {
			return nil, err
		}
		shop = append(shop, rec)
		own = append(own, &kgo.Record{Topic: m.own, Key: []byte(mr.Event.OrderID), Value: ov})
		split = append(split, &kgo.Record{Topic: m.ownSplit[topic], Key: []byte(mr.Event.OrderID), Value: ov})
		one = append(one, &kgo.Record{Topic: m.one, Key: []byte(mr.Event.OrderID), Value: v})
	}
	m.Records = len(shop)
	for _, recs := range [][]*kgo.Record{shop, own, split, one} {
		for i := 0; i < len(recs); i += 5000 {
			if err := e.cl.ProduceSync(ctx, recs[i:min(i+5000, len(recs))]...).FirstErr(); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// shopRecord writes one workload event as the shop's record, or nothing ("" topic) when
// the example's schemas cannot say it.
func (m *Mapped) shopRecord(ev orderevents.Event, currency map[string]string) (topic, key, schema string, datum map[string]any) {
	ms := ev.OccurredAt.UnixMilli()
	switch p := ev.Payload.(type) {
	case orderevents.OrderPlaced:
		currency[ev.OrderID] = p.Currency
		items := make([]any, 0, len(p.LineItems))
		for _, l := range p.LineItems {
			var image any
			if l.Item.ImageURL != "" {
				image = l.Item.ImageURL
			}
			items = append(items, map[string]any{"sku": l.ID, "title": l.Item.Title, "qty": l.Quantity, "unit_price_cents": l.Item.Price, "image": image})
		}
		var channel any
		if ev.PartnerID != "" {
			channel = ev.PartnerID
		}
		return m.orders, ev.OrderID, "order_created.avsc", map[string]any{"id": ev.OrderID, "number": int64(len(currency)), "created_at": ms,
			"channel": channel, "currency": p.Currency, "items": items, "shipping_cents": amount(p.Totals, "fulfillment"), "tax_cents": amount(p.Totals, "tax")}
	case orderevents.OrderCanceled:
		var reason any
		if p.Description != "" {
			reason = p.Description
		}
		return m.orders, ev.OrderID, "order_cancelled.avsc", map[string]any{"id": ev.OrderID, "cancelled_at": ms, "reason": reason}
	case orderevents.FulfillmentRecorded:
		status := map[string]string{orderevents.FulfillmentShipped: "DISPATCHED", "delivered": "DELIVERED"}[p.Type]
		if status == "" {
			return "", "", "", nil
		}
		lines := make([]any, 0, len(p.Lines))
		for _, l := range p.Lines {
			lines = append(lines, map[string]any{"sku": l.LineID, "qty": l.Quantity})
		}
		var tracking any
		if p.TrackingNumber != "" {
			tracking = p.TrackingNumber
		}
		carrier := p.Carrier
		if carrier == "" {
			carrier = "UPS"
		}
		shp := "shp_" + strings.TrimPrefix(ev.ID, "evt_")
		return m.shipments, shp, "shipment_updated.avsc", map[string]any{"shipment_id": shp, "order_id": ev.OrderID, "status": status, "at": ms,
			"carrier": carrier, "tracking": tracking, "lines": lines}
	case orderevents.AdjustmentRecorded:
		refund := -amount(p.Totals, "total")
		if p.Type != "refund" || refund <= 0 {
			return "", "", "", nil
		}
		cur := p.Currency
		if cur == "" {
			cur = currency[ev.OrderID]
		}
		return m.refunds, "pay_" + ev.ID, "refund_issued.avsc", map[string]any{"payment_id": "pay_" + ev.ID, "refund_id": ev.ID, "order_id": ev.OrderID,
			"issued_at": ms, "amount_cents": refund, "currency": cur}
	}
	return "", "", "", nil
}

func amount(ts []orderevents.Total, typ string) int64 {
	for _, t := range ts {
		if t.Type == typ {
			return t.Amount
		}
	}
	return 0
}

// RelayMapped relays the shop's three topics through the example's mapping (fresh state,
// repartition topic and group): records/s from start to the last acknowledgement, and the
// POSTs it made.
func (e *Env) RelayMapped(ctx context.Context, m *Mapped, name string) (float64, int64, error) {
	cfg, err := e.relayConfig(ctx, m.orders, name)
	if err != nil {
		return 0, 0, err
	}
	repartition := e.Prefix + "." + name + ".repartition"
	if _, err := topics.Create(ctx, topics.NewAdmin(e.cl), topics.Layout{Input: []string{m.orders}, Repartition: repartition,
		Rekeyed: []string{m.shipments, m.refunds}}, 1, 1); err != nil {
		return 0, 0, err
	}
	e.cleanup = append(e.cleanup, func() { _, _ = e.adm.DeleteTopics(context.Background(), repartition) })
	cfg.RekeyTopics, cfg.RepartitionTopic, cfg.Mapper = []string{m.shipments, m.refunds}, repartition, m.records
	// Every record is consumed once, and a re-keyed one forwarded to the repartition topic
	// (while its order's unit was not yet restored) once more.
	return e.relayUntil(ctx, cfg, m.codec, func(st relay.Stats) int64 { return int64(m.Records) + st.Rekeyed }, m.Records)
}

// RelayMappedOneTopic relays the shop's records on one topic keyed by order id through
// all of the example's rules: the mapping's cost against RelayOwn, the layout alike.
func (e *Env) RelayMappedOneTopic(ctx context.Context, m *Mapped, name string) (float64, int64, error) {
	cfg, err := e.relayConfig(ctx, m.one, name)
	if err != nil {
		return 0, 0, err
	}
	cfg.Mapper = m.oneRecords
	return e.relayUntil(ctx, cfg, m.codec, func(relay.Stats) int64 { return int64(m.Records) }, m.Records)
}

// RelayOwnSplit relays the same history in ucprelay's own schema on three topics split
// as the shop's, each keyed by order id and read directly: what the spread of an order's
// events over topics costs without a mapping.
func (e *Env) RelayOwnSplit(ctx context.Context, m *Mapped, name string) (float64, int64, error) {
	cfg, err := e.relayConfig(ctx, m.ownSplit[m.orders], name)
	if err != nil {
		return 0, 0, err
	}
	cfg.CoTopics = []string{m.ownSplit[m.shipments], m.ownSplit[m.refunds]}
	return e.relayUntil(ctx, cfg, e.codec, func(relay.Stats) int64 { return int64(m.Records) }, m.Records)
}

// RelayOwn relays the same history in ucprelay's own schema on one topic.
func (e *Env) RelayOwn(ctx context.Context, m *Mapped, name string) (float64, int64, error) {
	cfg, err := e.relayConfig(ctx, m.own, name)
	if err != nil {
		return 0, 0, err
	}
	return e.relayUntil(ctx, cfg, e.codec, func(relay.Stats) int64 { return int64(m.Records) }, m.Records)
}
