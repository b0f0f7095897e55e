package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// flakyRegistry is a schema registry that answers 503 for schema id 7 until up, knows
// id 7 as the current schema after that, refuses id 8 with a 400, and answers 404 for
// anything else.
type flakyRegistry struct{ up atomic.Bool }

func (f *flakyRegistry) SchemaByID(_ context.Context, id int) (sr.Schema, error) {
	switch {
	case id == 7 && !f.up.Load():
		return sr.Schema{}, &sr.ResponseError{StatusCode: http.StatusServiceUnavailable, Message: "registry restarting"}
	case id == 7:
		return sr.Schema{Schema: avro.OrderEvent, Type: sr.TypeAvro}, nil
	case id == 8:
		return sr.Schema{}, &sr.ResponseError{StatusCode: http.StatusBadRequest, Message: "bad request"}
	}
	return sr.Schema{}, &sr.ResponseError{StatusCode: http.StatusNotFound, Message: "Schema not found"}
}

func (f *flakyRegistry) RegisterSchema(context.Context, string, sr.Schema, int, int) (int, error) {
	return 7, nil
}

// panicky is the relay's codec with a bug planted: it panics on one value.
type panicky struct{ *avrocodec.Codec }

var panicValue = []byte("\xc3\x01PANIC-PANIC-PANIC")

func (p panicky) Decode(ctx context.Context, v []byte) (orderevents.Event, error) {
	if bytes.Equal(v, panicValue) {
		panic("planted bug")
	}
	return p.Codec.Decode(ctx, v)
}

// A poison row: records produced between good events, and the dead letter each must
// become (none for rows whose containment is not a dead letter).
type poisonRow struct {
	name string
	recs []*kgo.Record
	// want is the dead letter's reason and stage; "" when none is written.
	reason string
	stage  deadletter.Stage
	// fromState: the dead letter's source is the state topic (the order's stored state),
	// not the record.
	fromState bool
}

// TestPoisonMatrixRealKafka: on the real broker, each row's bad input or bad answer is
// produced between good events on the same partition and on others. Each row ends as
// its dead letter (reason, stage, source) or is contained without one; every good order
// reaches its final state at the partner; the relay never exits; nothing stays pending.
func TestPoisonMatrixRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	const parts = 3
	e := newEnv(t, seeds, parts, sink.Config{})
	// Small records: an order's state and a dead letter outgrow them on purpose.
	const limit = 40000
	if _, err := e.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: ptrTo(fmt.Sprint(limit))}}, e.state, e.dlq); err != nil {
		t.Fatal(err)
	}
	part := keys.MustNew(keys.Murmur2)
	partOf := func(id string) int32 { return part.Partition([]byte(id), parts) }
	at := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)

	// Good orders, on every partition: half their events before the rows, half after.
	events := map[string][]orderevents.Event{}
	var before, after []orderevents.Event
	for i := range 24 {
		id := fmt.Sprintf("ord_good_%02d", i)
		evs := gen.Lifecycle(id, "google", uint64(i), at.Add(time.Duration(i)*time.Minute))
		events[id] = evs
		h := (len(evs) + 1) / 2
		before, after = append(before, evs[:h]...), append(after, evs[h:]...)
	}
	enc := func(ev orderevents.Event) []byte {
		v, err := e.codec.EncodeSingleObject(ev)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	keyed := func(id string, v []byte) *kgo.Record { return &kgo.Record{Key: []byte(id), Value: v} }
	good := enc(gen.Placed("ord_row", "google", 1, at))
	confluent := func(id int, ev orderevents.Event) []byte {
		v, err := e.codec.EncodeConfluent(id, ev)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// An event of an order whose placement never comes: it waits OrphanAfter, then expires.
	orphan := orderevents.Event{ID: "ord_orphan_s1", OrderID: "ord_orphan", OccurredAt: at.Add(time.Hour), Source: "t", PartnerID: "google",
		Payload: orderevents.FulfillmentRecorded{Type: "shipped", Lines: []orderevents.LineQuantity{{LineID: "li_1", Quantity: 1}}}}

	// Orders the rows deliver despite their trouble: their final bodies are checked too.
	big := gen.Placed("ord_big", "google", 2, at)
	pl := big.Payload.(orderevents.OrderPlaced)
	pl.Attribution = map[string]string{"note": strings.Repeat("a", 15000)}
	big.Payload = pl
	lines := []orderevents.LineQuantity{{LineID: "li_1", Quantity: 1}}
	bigShip := orderevents.Event{ID: "ord_big_s1", OrderID: "ord_big", OccurredAt: at.Add(time.Hour), Source: "t", PartnerID: "google",
		Payload: orderevents.FulfillmentRecorded{Type: "shipped", Lines: lines, Description: strings.Repeat("b", 15000)}}
	bigMore := orderevents.Event{ID: "ord_big_s2", OrderID: "ord_big", OccurredAt: at.Add(2 * time.Hour), Source: "t", PartnerID: "google",
		Payload: orderevents.FulfillmentRecorded{Type: "delivered", Lines: lines, Description: strings.Repeat("c", 15000)}}
	events["ord_big"] = []orderevents.Event{big, bigShip} // the third event is refused
	future := gen.Placed("ord_future", "google", 3, time.Now().Add(4*365*24*time.Hour))
	events["ord_future"] = []orderevents.Event{future}
	held := gen.Placed("ord_registry", "google", 4, at)
	events["ord_registry"] = []orderevents.Event{held}
	wrong := gen.Placed("ord_wrong_partition", "google", 5, at)
	badPart := (partOf(wrong.OrderID) + 1) % parts

	rows := []poisonRow{
		{name: "truncated avro", recs: []*kgo.Record{keyed("ord_row", good[:len(good)/2])}, reason: avrocodec.ReasonCorruptPayload, stage: deadletter.StageDecode},
		{name: "wrong magic", recs: []*kgo.Record{keyed("ord_row", append([]byte{0xC3, 0x02}, good[2:]...))}, reason: avrocodec.ReasonUnknownFraming, stage: deadletter.StageDecode},
		{name: "unknown fingerprint", recs: []*kgo.Record{keyed("ord_row", append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, good[10:]...))}, reason: avrocodec.ReasonUnknownFingerprint, stage: deadletter.StageDecode},
		{name: "foreign format", recs: []*kgo.Record{keyed("ord_row", []byte(`{"order_id":"ord_row","status":"shipped"}`))}, reason: avrocodec.ReasonUnknownFraming, stage: deadletter.StageDecode},
		{name: "empty value", recs: []*kgo.Record{keyed("ord_row", []byte{})}, reason: avrocodec.ReasonUnknownFraming, stage: deadletter.StageDecode},
		{name: "tombstone on the input", recs: []*kgo.Record{keyed("ord_row", nil)}, reason: avrocodec.ReasonUnknownFraming, stage: deadletter.StageDecode},
		{name: "key is not the order id", recs: []*kgo.Record{keyed("not_the_order", good)}, reason: relay.ReasonKeyMismatch, stage: deadletter.StageDecode},
		{name: "no key", recs: []*kgo.Record{{Value: good}}, reason: relay.ReasonMissingKey, stage: deadletter.StageDecode},
		{name: "unknown schema id", recs: []*kgo.Record{keyed("ord_row", confluent(999, gen.Placed("ord_row", "google", 1, at)))}, reason: avrocodec.ReasonUnknownSchemaID, stage: deadletter.StageDecode},
		{name: "registry refuses the lookup (400)", recs: []*kgo.Record{keyed("ord_row", confluent(8, gen.Placed("ord_row", "google", 1, at)))}, reason: avrocodec.ReasonRegistryRejected, stage: deadletter.StageDecode},
		{name: "order of a platform not configured (not ours)", recs: []*kgo.Record{keyed("ord_nopartner", enc(gen.Placed("ord_nopartner", "nobody", 6, at))),
			keyed("ord_nopartner", enc(gen.Lifecycle("ord_nopartner", "nobody", 6, at)[1]))}},
		{name: "oversize input copied to a dead letter", recs: []*kgo.Record{keyed("ord_row", bytes.Repeat([]byte{0xC3}, 3*limit/2))}, reason: avrocodec.ReasonUnknownFraming, stage: deadletter.StageDecode},
		{name: "order outgrows the state record", recs: []*kgo.Record{keyed("ord_big", enc(big)), keyed("ord_big", enc(bigShip)), keyed("ord_big", enc(bigMore))}, reason: relay.ReasonOrderTooLarge, stage: deadletter.StageFold},
		{name: "bug in the fold (panic)", recs: []*kgo.Record{keyed("ord_panic", panicValue)}, reason: relay.ReasonInternal, stage: deadletter.StageFold},
		{name: "forwarded record the partitioner places elsewhere", recs: []*kgo.Record{{Key: []byte(wrong.OrderID), Value: enc(wrong), Partition: badPart,
			Headers: []kgo.RecordHeader{{Key: relay.HeaderForwardedFrom, Value: []byte("orders/9@9")}}}}, reason: relay.ReasonPartitionerMismatch, stage: deadletter.StageDecode},
		{name: "unreadable stored state", recs: []*kgo.Record{keyed("ord_corrupt", enc(gen.Placed("ord_corrupt", "google", 7, at)))}, reason: relay.ReasonStateUnreadable, stage: deadletter.StageFold, fromState: true},
		{name: "state of a newer relay (parked, no dead letter)", recs: []*kgo.Record{keyed("ord_newer", enc(gen.Placed("ord_newer", "google", 8, at)))}},
		{name: "future-dated event (stamp clipped)", recs: []*kgo.Record{keyed("ord_future", enc(future))}},
		{name: "registry down (partition held, then released)", recs: []*kgo.Record{keyed("ord_registry", confluent(7, held))}},
		{name: "partner answers 3xx", recs: []*kgo.Record{keyed("ord_redirect", enc(gen.Placed("ord_redirect", "redirect", 9, at)))}, reason: relay.ReasonRedirect, stage: deadletter.StageDeliver},
		{name: "partner never answers", recs: []*kgo.Record{keyed("ord_silent", enc(gen.Placed("ord_silent", "silent", 10, at)))}, reason: relay.ReasonRetriesExhausted, stage: deadletter.StageDeliver},
		{name: "event whose placement never comes (orphan)", recs: []*kgo.Record{keyed("ord_orphan", enc(orphan))}, reason: relay.ReasonOrphan, stage: deadletter.StageFold, fromState: true},
		{name: "partner closes mid-body", recs: []*kgo.Record{keyed("ord_hangup", enc(gen.Placed("ord_hangup", "hangup", 11, at)))}, reason: relay.ReasonRetriesExhausted, stage: deadletter.StageDeliver},
	}

	// Stored state the relay cannot read, written before it starts.
	raw, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ProduceSync(ctx,
		&kgo.Record{Topic: e.state, Partition: partOf("ord_corrupt"), Key: []byte("ord_corrupt"), Value: []byte{0x01, 0xff, 0xff, 0xff}},
		&kgo.Record{Topic: e.state, Partition: partOf("ord_newer"), Key: []byte("ord_newer"), Value: []byte{0x03, 0x01, 0x02}},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Partners with bad answers.
	redirect := httptest.NewServer(http.RedirectHandler(e.url+"/elsewhere?key=s3cr3t", http.StatusFound))
	defer redirect.Close()
	quiet := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-quiet:
		}
	}))
	defer func() { close(quiet); silent.Close() }()
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = r.Body.Read(make([]byte, 16)) // part of the body, then the connection closes
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
			}
		}
	}))
	defer hangup.Close()

	reg := &flakyRegistry{}
	codec, err := avrocodec.New(avrocodec.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config("a")
	for id, url := range map[string]string{"redirect": redirect.URL, "silent": silent.URL, "hangup": hangup.URL} {
		cfg.Partners[id] = relay.Partner{Endpoint: webhook.Endpoint{Partner: id, BaseURL: url}, Version: ucp.V20260408}
	}
	cfg.MaxAttempts = 2
	cfg.ResendSettle = 300 * time.Millisecond
	cfg.OrphanAfter = time.Second
	var deadLettered atomic.Int64
	cfg.OnDeadLetter = func(deadletter.Record) { deadLettered.Add(1) }
	snd, err := webhook.NewSender(webhook.WithAttemptTimeout(400 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(e.seeds...), kgo.MetadataMinAge(250 * time.Millisecond)}, panicky{codec}, snd)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	e.produce(ctx, before...)
	// ProduceSync sets each row's records' partitions and offsets, which their dead
	// letters are checked against.
	for _, row := range rows {
		for _, rec := range row.recs {
			rec.Topic = e.input
		}
		// Manually placed records (the forwarded one) keep their partition.
		for _, rec := range row.recs {
			if rec.Partition != 0 || rec.Headers != nil {
				if err := raw.ProduceSync(ctx, rec).FirstErr(); err != nil {
					t.Fatal(err)
				}
			} else if err := e.prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.produce(ctx, after...)

	// While the registry is down only its record's partition waits: the others flow.
	heldPart := partOf("ord_registry")
	others := map[string][]byte{}
	for id, body := range oracle(t, events) {
		if partOf(id) != heldPart && id != "ord_registry" {
			others[id] = body
		}
	}
	e.waitConverged(ctx, others)
	if h := r.Health(); len(h.Held) != 1 || h.Held[0].Partition != heldPart || h.Held[0].Reason != avrocodec.ReasonRegistryUnavailable || !h.Ready {
		t.Fatalf("health while the registry is down: %+v", h)
	}
	reg.up.Store(true)
	e.waitConverged(ctx, oracle(t, events))
	if h := r.Health(); len(h.Held) != 0 {
		t.Fatalf("partition still held after the registry answered: %+v", h.Held)
	}

	// Every row with a dead letter has exactly its own, from its source.
	want := 0
	for _, row := range rows {
		if row.reason != "" {
			want++
		}
	}
	dls := e.deadLetters(ctx, want)
	byReason := map[string][]deadletter.Record{}
	for _, d := range dls {
		byReason[d.Reason+"/"+d.OrderID] = append(byReason[d.Reason+"/"+d.OrderID], d)
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			if row.reason == "" {
				return
			}
			rec := row.recs[len(row.recs)-1]
			k := row.reason + "/" + string(rec.Key)
			got := byReason[k]
			if len(got) == 0 {
				t.Fatalf("no %s dead letter for %q; all: %v", row.reason, rec.Key, reasonsOf(dls))
			}
			d := got[0]
			// Rows of one reason and order are told apart by their record's offset.
			for _, g := range got {
				if g.SourceTopic == rec.Topic && g.SourceOffset == rec.Offset {
					d = g
				}
			}
			if d.Stage != row.stage {
				t.Errorf("stage %s, want %s", d.Stage, row.stage)
			}
			switch {
			case row.fromState:
				if d.SourceTopic != e.state || d.SourceOffset != -1 {
					t.Errorf("source %s/%d@%d, want the state topic", d.SourceTopic, d.SourcePartition, d.SourceOffset)
				}
			case row.stage == deadletter.StageDeliver:
				if d.SourceTopic != e.input || d.Attempts == 0 {
					t.Errorf("delivery dead letter %+v", d)
				}
			default:
				if d.SourceTopic != e.input || d.SourcePartition != rec.Partition || d.SourceOffset != rec.Offset {
					t.Errorf("source %s/%d@%d, want %s/%d@%d", d.SourceTopic, d.SourcePartition, d.SourceOffset, e.input, rec.Partition, rec.Offset)
				}
			}
			if len(rec.Value) > limit && (d.ValueOmitted != len(rec.Value) || len(d.Value) > 1000) {
				t.Errorf("oversize value copied (%d bytes, omitted %d)", len(d.Value), d.ValueOmitted)
			}
			if row.reason == relay.ReasonRedirect && (!strings.Contains(d.Error, "127.0.0.1") || strings.Contains(d.Error, "s3cr3t")) {
				t.Errorf("redirect error %q: want the Location host, never its query", d.Error)
			}
		})
	}
	if len(byReason[relay.ReasonStateUnreadable+"/ord_corrupt"]) != 1 {
		t.Errorf("state_unreadable written %d times, want once", len(byReason[relay.ReasonStateUnreadable+"/ord_corrupt"]))
	}
	for _, id := range []string{"ord_corrupt", "ord_newer"} {
		if _, ok := e.snk.Latest(id); ok {
			t.Errorf("%s: a parked order's events were folded onto an empty state and sent", id)
		}
	}
	if d, ok := e.snk.Latest("ord_future"); !ok || d.Stamp.After(time.Now().Add(6*time.Minute)) {
		t.Errorf("future-dated order: stamp %s, want near the clock", d.Stamp)
	}
	if st := r.Stats(); st.InternalErrors != 1 || st.Parked != 2 || st.NotOursOrders != 1 || st.NotOurs != 2 {
		t.Errorf("stats %+v: want 1 internal error, 2 parked orders, 1 order not ours with 2 records", st)
	}
	if _, ok := e.snk.Latest("ord_nopartner"); ok {
		t.Error("an order of a platform that is not configured was sent")
	}

	// Nothing stays pending: every order's state has its last snapshot acknowledged or
	// its failure written.
	waitNothingPending(ctx, t, e, parts)
	select {
	case err := <-done:
		t.Fatalf("the relay exited: %v", err)
	default:
	}
}

func waitNothingPending(ctx context.Context, t *testing.T, e *env, parts int32) {
	t.Helper()
	for {
		bad := ""
		for p := range parts {
			st, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(e.seeds...)}, e.state, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			for id, v := range st.Orders {
				if h, err := statestore.ParseHeader(v); err == nil && h.Pending.Version > h.Acked.Version {
					bad = id
				}
			}
		}
		if bad == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("order %s still pending", bad)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func reasonsOf(ds []deadletter.Record) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Reason+"/"+d.OrderID)
	}
	return out
}

func ptrTo(s string) *string { return &s }
