package relay_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Whole order lifecycles on the real broker: every order's last delivered body is the
// complete order folded from all its events (P3, P4), an event that arrives before its
// placement waits in state and is folded in when the placement comes, an invariant
// violation is dead-lettered while its order goes on (P8), nothing is stale, and the
// state topic ends with every order's final version acknowledged and nothing pending.
func TestLifecyclesRealKafka(t *testing.T) {
	t.Parallel()
	testLifecycles(t, kafkatest.Brokers(t))
}

func TestLifecyclesKfake(t *testing.T) {
	t.Parallel()
	testLifecycles(t, kafkatest.Fake(t, 4).ListenAddrs())
}

// The same with the KIP-848 consumer group protocol (the broker assigns partitions).
func TestLifecyclesConsumerProtocolRealKafka(t *testing.T) {
	t.Parallel()
	testLifecycles(t, kafkatest.Brokers(t), func(c *relay.Config) { c.GroupProtocol = relay.GroupConsumer })
}

func testLifecycles(t *testing.T, seeds []string, adjust ...func(*relay.Config)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const partitions, orders = 4, 300
	e := newEnv(t, seeds, partitions, sink.Config{})
	at := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	byOrder := map[string][]orderevents.Event{}
	var stream []orderevents.Event
	for i := range orders {
		id := fmt.Sprintf("ord_%05d", i)
		evs := gen.Lifecycle(id, "google", uint64(i), at.Add(time.Duration(i)*time.Minute))
		byOrder[id] = evs
		if i == 7 {
			// The shipment arrives before the placement: held, then folded in.
			evs = append([]orderevents.Event{evs[1], evs[0]}, evs[2:]...)
		}
		stream = append(stream, evs...)
	}
	// A shipment of a line the order does not have: dead-lettered, the order goes on.
	bad := byOrder["ord_00002"][1]
	bad.ID = "ord_00002_bogus"
	bad.OccurredAt = bad.OccurredAt.Add(time.Minute)
	p := bad.Payload.(orderevents.FulfillmentRecorded)
	p.Lines = []orderevents.LineQuantity{{LineID: "li_9", Quantity: 1}}
	bad.Payload = p
	stream = append(stream, bad)
	// A duplicate of an event already folded changes nothing.
	stream = append(stream, byOrder["ord_00003"][0])

	e.produce(ctx, stream...)
	cfg := e.config("a")
	for _, f := range adjust {
		f(&cfg)
	}
	run := e.start(cfg)
	want := oracle(t, byOrder)
	e.waitConverged(ctx, want)
	versions := map[string]int64{}
	for id, evs := range byOrder {
		versions[id] = int64(len(evs))
	}
	e.waitAcked(ctx, partitions, versions)
	dead := e.deadLetters(ctx, 1)
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Reason != "unknown_line" || dead[0].OrderID != "ord_00002" || dead[0].SourceOffset < 0 {
		t.Fatalf("dead letters %+v", dead)
	}
	if fold.Reason(fold.ErrUnknownLine) != dead[0].Reason {
		t.Fatalf("reason %q", dead[0].Reason)
	}
	st := e.snk.Stats()
	if st.Invalid != 0 || st.Stale != 0 {
		t.Fatalf("sink %+v", st)
	}
	// The held shipment was folded in with the placement: the first snapshot the partner
	// saw of that order already carries the shipment.
	if h := e.snk.History("ord_00007"); len(h) == 0 || !strings.Contains(string(h[0].Body), `"shipped"`) {
		t.Fatalf("first snapshot of ord_00007 lacks the held shipment: %d deliveries", len(h))
	}
	rs := run.r.Stats()
	if rs.Duplicates != 1 || rs.DeadLettered != 1 {
		t.Fatalf("relay stats %+v", rs)
	}
	t.Logf("relay %+v, sink %+v", rs, st)
}

// Restart with pending deliveries: snapshots committed while the partner was down are
// marked pending in the state topic; the next relay to own the partitions resends
// exactly those, with the Webhook-Id and stamp recorded, and nothing it had already
// delivered.
func TestPendingResentAfterRestartRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const partitions = 3
	e := newEnv(t, kafkatest.Brokers(t), partitions, sink.Config{})
	at := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	first := map[string][]orderevents.Event{}
	for i := range 30 {
		id := fmt.Sprintf("ord_a%03d", i)
		first[id] = gen.Lifecycle(id, "google", uint64(i*7+2), at)[:1] // placements only
		e.produce(ctx, first[id]...)
	}
	cfg := e.config("a")
	cfg.Breaker = relay.BreakerConfig{FailuresToTrip: 2, OpenFor: time.Hour, Hold: time.Hour}
	run := e.start(cfg)
	e.waitConverged(ctx, oracle(t, first))
	versions := map[string]int64{}
	for id := range first {
		versions[id] = 1
	}
	e.waitAcked(ctx, partitions, versions)

	// The partner goes down; new events are folded, committed and marked pending.
	e.snk.StartOutage()
	second := map[string][]orderevents.Event{}
	for id, evs := range first {
		if id < "ord_a015" {
			full := gen.Lifecycle(id, "google", 0, at)
			ship := full[1]
			ship.Payload = shipAll(evs[0])
			second[id] = append(evs, ship)
			e.produce(ctx, ship)
		}
	}
	for {
		st := e.readState(ctx, partitions)
		n := 0
		for id := range second {
			if st[id].Pending.Version == 2 {
				n++
			}
		}
		if n == len(second) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d orders marked pending", n, len(second))
		}
		time.Sleep(100 * time.Millisecond)
	}
	state := e.readState(ctx, partitions)
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
	before := map[string]int{}
	for id := range first {
		before[id] = len(e.snk.History(id))
	}

	// The partner is back; a new replica takes over and resends the pending snapshots,
	// never more at once than max_pending.
	e.snk.EndOutage()
	cfgB := e.config("b")
	cfgB.MaxPending = 4
	run = e.start(cfgB)
	var most atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil && run.r.Stats().Resent < int64(len(second)) || run.r.Stats().Pending > 0 {
			if p := run.r.Stats().Pending; p > most.Load() {
				most.Store(p)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	want := oracle(t, second)
	e.waitConverged(ctx, want)
	<-sampled
	if m := most.Load(); m > int64(cfgB.MaxPending) || m == 0 {
		t.Errorf("at most %d deliveries pending during the resends, want 1..%d", m, cfgB.MaxPending)
	}
	for id := range second {
		versions[id] = 2
	}
	acked := e.waitAcked(ctx, partitions, versions)
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
	for id := range first {
		h := e.snk.History(id)
		added := h[before[id]:]
		if _, resent := second[id]; !resent {
			if len(added) != 0 {
				t.Errorf("order %s was delivered before the restart and sent again: %d", id, len(added))
			}
			continue
		}
		if len(added) != 1 {
			t.Errorf("order %s: %d deliveries after the restart, want 1", id, len(added))
			continue
		}
		pend := state[id].Pending
		if added[0].WebhookID != pend.WebhookID || !added[0].Stamp.Equal(pend.Stamp) {
			t.Errorf("order %s resent as %s@%s, the state recorded %s@%s", id, added[0].WebhookID, added[0].Stamp, pend.WebhookID, pend.Stamp)
		}
		// The state keeps the digest of the body sent under the id, pending and then
		// acknowledged (P10: a resend that would render otherwise gets a new id).
		sum := statestore.BodyDigest(added[0].Body)
		if !bytes.Equal(pend.Digest, sum) || !bytes.Equal(acked[id].Acked.Digest, sum) {
			t.Errorf("order %s: body digest %x, the state recorded %x pending and %x acknowledged", id, sum, pend.Digest, acked[id].Acked.Digest)
		}
	}
	if st := e.snk.Stats(); st.Stale != 0 || st.Invalid != 0 {
		t.Fatalf("sink %+v", st)
	}
	if rs := run.r.Stats(); rs.Resent != int64(len(second)) {
		t.Fatalf("resent %d, want %d", rs.Resent, len(second))
	}
}

// shipAll is a shipment of every line of a placement.
func shipAll(placed orderevents.Event) orderevents.FulfillmentRecorded {
	var lines []orderevents.LineQuantity
	for _, l := range placed.Payload.(orderevents.OrderPlaced).LineItems {
		lines = append(lines, orderevents.LineQuantity{LineID: l.ID, Quantity: l.Quantity})
	}
	return orderevents.FulfillmentRecorded{Type: "shipped", Lines: lines, TrackingNumber: "1ZRESTART", Carrier: "UPS"}
}

// P6 back-pressure: while the partner is down, the orders waiting for delivery reach the
// bound, fetching pauses and consumption stops; when the partner is back the backlog
// drains, fetching resumes, and every order is delivered with nothing dead-lettered.
func TestBackPressurePausesFetchingRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEnv(t, kafkatest.Brokers(t), 3, sink.Config{})
	e.snk.StartOutage()
	cfg := e.config("a")
	cfg.MaxPending = 20
	cfg.Breaker = relay.BreakerConfig{FailuresToTrip: 3, OpenFor: 200 * time.Millisecond, Hold: time.Hour, Poll: 20 * time.Millisecond}
	run := e.start(cfg)
	at := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	byOrder := map[string][]orderevents.Event{}
	const orders = 400
	for i := range orders {
		id := fmt.Sprintf("ord_bp%04d", i)
		byOrder[id] = gen.Lifecycle(id, "google", uint64(i*7), at)[:1]
	}
	// Produce in waves so that the relay sees the backlog grow and pauses between them.
	ids := make([]string, 0, orders)
	for id := range byOrder {
		ids = append(ids, id)
	}
	for i := 0; i < orders; i += 50 {
		for _, id := range ids[i : i+50] {
			e.produce(ctx, byOrder[id]...)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for !run.r.Stats().Paused {
		if ctx.Err() != nil {
			t.Fatalf("fetching never paused: %+v", run.r.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	held := run.r.Stats()
	time.Sleep(time.Second)
	if now := run.r.Stats(); now.Consumed != held.Consumed || now.Consumed >= orders {
		t.Fatalf("consumption went on while paused: %d then %d of %d", held.Consumed, now.Consumed, orders)
	}
	e.snk.EndOutage()
	e.waitConverged(ctx, oracle(t, byOrder))
	for run.r.Stats().Paused && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond) // resumed by the next transaction
	}
	st := run.r.Stats()
	if st.Paused || st.DeadLettered != 0 || st.Consumed != orders {
		t.Fatalf("after the outage: %+v", st)
	}
	t.Logf("paused at %d consumed with %d pending; after: %+v", held.Consumed, held.Pending, st)
}

// Signed deliveries end to end: every POST the relay makes carries an RFC 9421 signature
// over the exact bytes sent, which the sink verifies as a partner would.
func TestSignedDeliveriesKfake(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, kafkatest.Fake(t, 2).ListenAddrs(), 2, sink.Config{
		Verifier: &sink.RFC9421Verifier{Keys: map[string]*ecdsa.PublicKey{"shop-1": &key.PublicKey}, MaxAge: time.Minute}})
	byOrder := map[string][]orderevents.Event{}
	at := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	for i := range 40 {
		id := fmt.Sprintf("ord_sig%03d", i)
		byOrder[id] = gen.Lifecycle(id, "google", uint64(i), at)
		e.produce(ctx, byOrder[id]...)
	}
	cfg := e.config("a")
	p := cfg.Partners["google"]
	p.Endpoint.Signer = &webhook.RFC9421Signer{KeyID: "shop-1", Key: key, Profile: "https://shop.example.com/.well-known/ucp"}
	cfg.Partners["google"] = p
	run := e.start(cfg)
	e.waitConverged(ctx, oracle(t, byOrder))
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
	if st := e.snk.Stats(); st.Unauthorized != 0 || st.Invalid != 0 || st.Stale != 0 {
		t.Fatalf("sink %+v", st)
	}
}
