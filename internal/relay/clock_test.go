package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// TestStampsStayNearTheClockRealKafka: an order whose partner already saw a stamp ahead
// of the clock (8 s, with max_clock_skew 2 s) gets new events. Its next snapshot waits,
// deferred, until the clock allows a later stamp, across a restart of the relay (the
// record carries the mark); the events that arrive meanwhile fold into it; every stamp
// the partner gets is later than the one before and at most max_clock_skew ahead of the
// clock when it arrives.
func TestStampsStayNearTheClockRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := newEnv(t, kafkatest.Brokers(t), 1, sink.Config{})
	const skew = 2 * time.Second
	type arrival struct{ at, stamp time.Time }
	var (
		mu   sync.Mutex
		seen []arrival
	)
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ts, err := strconv.ParseInt(r.Header.Get("Webhook-Timestamp"), 10, 64); err == nil {
			mu.Lock()
			seen = append(seen, arrival{at: time.Now(), stamp: time.Unix(ts, 0)})
			mu.Unlock()
		}
		e.snk.ServeHTTP(w, r)
	}))
	defer partner.Close()

	// The order's state: placed, its snapshot acknowledged with a stamp 8 s ahead.
	now := time.Now().UTC()
	placed := gen.Placed("ord_ahead", "google", 1, now.Add(-time.Hour))
	raw, err := e.codec.EncodeSingleObject(placed)
	if err != nil {
		t.Fatal(err)
	}
	ahead := now.Add(8 * time.Second).Truncate(time.Second)
	rec := statestore.Record{OrderID: "ord_ahead", Partner: "google", Version: 1,
		Acked: statestore.Delivery{Version: 1, Stamp: ahead, WebhookID: "ord_ahead"}, Events: [][]byte{raw}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: e.state, Key: []byte("ord_ahead"), Value: rec.Marshal()}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cfg := e.config("a")
	google := cfg.Partners["google"]
	google.Endpoint = webhook.Endpoint{Partner: "google", BaseURL: partner.URL}
	cfg.Partners["google"] = google
	cfg.MaxClockSkew = skew
	a := e.start(cfg)
	events := []orderevents.Event{placed}
	label := func(i int) orderevents.Event {
		l := fmt.Sprintf("#ahead-%d", i)
		return orderevents.Event{ID: fmt.Sprintf("ord_ahead_l%d", i), OrderID: "ord_ahead", OccurredAt: time.Now().UTC(), Source: "t",
			PartnerID: "google", Payload: orderevents.OrderDetailsChanged{Label: &l}}
	}
	first := label(1)
	events = append(events, first)
	e.produce(ctx, first)
	for a.r.Stats().Deferred == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("the snapshot was not deferred: %+v", a.r.Stats())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The mark survives a restart: the next relay renders the snapshot when its time comes.
	if err := a.wait(); err != nil {
		t.Fatal(err)
	}
	b := e.start(cfg)
	for i := 2; i <= 3; i++ {
		ev := label(i)
		events = append(events, ev)
		e.produce(ctx, ev)
	}
	e.waitConverged(ctx, oracle(t, map[string][]orderevents.Event{"ord_ahead": events}))
	if err := b.wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no delivery")
	}
	last := ahead
	for _, s := range seen {
		if !s.stamp.After(last) {
			t.Errorf("stamp %s after %s: not later", s.stamp, last)
		}
		if s.stamp.After(s.at.Add(skew)) {
			t.Errorf("stamp %s arrived at %s: more than %s ahead of the clock", s.stamp, s.at.Format(time.RFC3339Nano), skew)
		}
		last = s.stamp
	}
	if st := e.snk.Stats(); st.Stale != 0 {
		t.Errorf("sink saw %d stale deliveries", st.Stale)
	}
}
