// Package demo runs the whole ucprelay flow in one process with no setup: an embedded
// Kafka broker (kfake), an in-process schema registry (franz-go's srfake), a local
// validating partner sink, an event generator and the relay. It prints what it sends and
// what the partner receives, then a summary, and returns an error when a check fails.
package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/internal/wait"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Options configure a demo run.
type Options struct {
	// Orders to generate. Default 40.
	Orders int
	// Duration bounds the run. Default 90s.
	Duration time.Duration
	// Outage is how long the partner is down mid-stream. Default 6s.
	Outage time.Duration
	// Out receives the demo's narration. Required.
	Out io.Writer
	// Record, when set, receives the sink's record file.
	Record io.Writer
	// Logger receives the relay's logs. Default: discard.
	Logger *slog.Logger
	// Quiet leaves out the line per request (tests).
	Quiet bool
}

// Summary is what the demo observed.
type Summary struct {
	Orders, Events int
	// Delivered counts the snapshots the partner accepted; Converged the orders whose
	// newest accepted snapshot is their expected final order.
	Delivered, Converged int
	Invalid, Stale       int
	// Unverified counts the requests the partner refused for their signature or API key
	// (must be 0: every request is signed, RFC 9421 with ES256, and verified).
	Unverified int
	// Refused counts the requests the partner refused during the outage.
	Refused int
	// BreakerOpened counts the breaker's closed→open transitions; Paused reports that
	// fetching paused on the pending bound during the outage.
	BreakerOpened int
	Paused        bool
	// NotOurs counts the orders placed through a platform that was not configured: never
	// sent. Leaked counts those the partner got anyway (must be 0).
	NotOurs, Leaked int
	// DeadLetters counts the dead-letter records before the replay, by reason; Replayed
	// the records replayed; DeadLettersAfter the records in the topic after the replay
	// (one more: the replayed poison record is still poison).
	DeadLetters         int
	DeadLettersByReason map[string]int
	Replayed            int
	DeadLettersAfter    int
}

const (
	topic      = "orders"
	dlqTopic   = "ucprelay.dlq"
	stateTopic = "ucprelay.state"
	group      = "ucprelay-demo"
	apiKey     = "demo-api-key" //nolint:gosec // the demo's own sink key, not a credential
	// latePartner is onboarded mid-demo: its order placed before is not ours (never
	// sent), the one placed after is delivered.
	latePartner = "shopbot"
	// signingKeyID and shopProfile are the kid of the run's signing key and the profile
	// the shop publishes it in.
	signingKeyID = "demo-es256"
	shopProfile  = "https://shop.example/.well-known/ucp"
)

var partners = []string{"google", legacyPartner}

// legacyPartner is the partner on UCP 2026-01-23: its own sink, bodies with event_id and
// created_time, signed with a detached JWS.
const legacyPartner = "acme-agent"

// Run runs the demo: it streams order lifecycles for several partners through the relay
// into the validating sink, takes the partner down for a while (the breaker opens,
// deliveries wait, fetching pauses), brings it back, then onboards a partner whose first
// order (placed before) was never sent, not being ours, and whose next order is; last it
// replays the poison record from the dead-letter topic. It returns when every
// order converged, or with an error when a check fails or the duration ends.
func Run(ctx context.Context, o Options) (Summary, error) {
	if o.Orders <= 0 {
		o.Orders = 40
	}
	if o.Duration <= 0 {
		o.Duration = 90 * time.Second
	}
	if o.Outage <= 0 {
		o.Outage = 6 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	out := &lockedWriter{w: o.Out}
	sum := Summary{Orders: o.Orders + 1, DeadLettersByReason: map[string]int{}}
	began := time.Now()

	// 1. An embedded broker.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		return sum, fmt.Errorf("demo: embedded broker: %w", err)
	}
	defer cluster.Close()
	seeds := cluster.ListenAddrs()
	kopts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if err := createTopics(ctx, seeds); err != nil {
		return sum, err
	}
	out.printf("broker     embedded Kafka (kfake) at %s, input %q (3 partitions), state %q (compacted), dead letters %q\n", seeds[0], topic, stateTopic, dlqTopic)

	// 2. A schema registry and the codec producers use.
	regURL, stopReg, err := serve(ctx, srfake.NewRegistry().Handler())
	if err != nil {
		return sum, err
	}
	defer stopReg()
	reg, err := sr.NewClient(sr.URLs(regURL), sr.HTTPClient(webhook.NoRedirects(&http.Client{Timeout: 5 * time.Second})))
	if err != nil {
		return sum, fmt.Errorf("demo: registry client: %w", err)
	}
	codec, err := avrocodec.New(avrocodec.WithRegistry(reg))
	if err != nil {
		return sum, err
	}
	schemaID, err := codec.Register(ctx, avro.Subject(topic))
	if err != nil {
		return sum, err
	}
	out.printf("registry   in-process schema registry (franz-go srfake) at %s, %s registered as id %d\n", regURL, avro.Subject(topic), schemaID)

	// 3. The partners: one local sink validating every body against the UCP 2026-04-08
	// schema and the freshness of every snapshot, and verifying every request's signature
	// with the public key the shop publishes.
	val, err := ucpschema.New(string(ucp.V20260408))
	if err != nil {
		return sum, err
	}
	signKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return sum, fmt.Errorf("demo: signing key: %w", err)
	}
	pub, err := webhook.PublicJWKOf(&signKey.PublicKey, signingKeyID)
	if err != nil {
		return sum, err
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return sum, err
	}
	out.printf("signing    RFC 9421 (ES256) with a key generated for this run; the shop publishes its public half in\n")
	out.printf("           %s signing_keys, as `ucprelay keys generate` prints it:\n           %s\n", shopProfile, pubJSON)
	keys := map[string]*ecdsa.PublicKey{signingKeyID: &signKey.PublicKey}
	var record io.Writer
	if o.Record != nil {
		record = &lockedWriter{w: o.Record} // both sinks write lines to it
	}
	onRequest := func(l sink.Line) {
		if o.Quiet {
			return
		}
		var b struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		_ = json.Unmarshal([]byte(l.Body), &b)
		verdict := "accepted"
		if l.Status != http.StatusOK {
			verdict = "refused: " + l.Error
		}
		out.printf("partner    %-4d %-44s order %-14s %s\n", l.Status, l.Path, b.ID, verdict)
	}
	main, err := sink.New(sink.Config{Validator: val, APIKey: apiKey, Verifier: &sink.RFC9421Verifier{Keys: keys}, Record: record, OnRequest: onRequest})
	if err != nil {
		return sum, err
	}
	legacyVal, err := ucpschema.New(string(ucp.V20260123))
	if err != nil {
		return sum, err
	}
	legacy, err := sink.New(sink.Config{Validator: legacyVal, APIKey: apiKey, Verifier: &sink.JWSVerifier{Keys: keys}, Record: record, OnRequest: onRequest})
	if err != nil {
		return sum, err
	}
	snk := &partnerSinks{main: main, legacy: legacy}
	sinkURL, stopSink, err := serve(ctx, main)
	if err != nil {
		return sum, err
	}
	defer stopSink()
	legacyURL, stopLegacy, err := serve(ctx, legacy)
	if err != nil {
		return sum, err
	}
	defer stopLegacy()
	out.printf("partners   %s at the validating sink %s (UCP %s schema, API key and RFC 9421 signature checked),\n"+
		"           %s at %s (UCP %s schema, API key and detached JWS checked); %s joins later\n\n",
		partners[0], sinkURL, ucp.V20260408, legacyPartner, legacyURL, ucp.V20260123, latePartner)

	// 4. The relay, first with two partners.
	var mu sync.Mutex
	deadCh := make(chan deadletter.Record, 64)
	rc := relay.Config{
		InputTopic: topic, StateTopic: stateTopic, Group: group, TransactionalID: "ucprelay-demo-1", DeadLetterTopic: dlqTopic,
		Partners: map[string]relay.Partner{}, DefaultPartner: partners[0], MaxPending: 12,
		MaxAttempts: 5, Backoff: webhook.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, MaxRetryAfter: 2 * time.Second},
		Breaker:      relay.BreakerConfig{FailuresToTrip: 3, OpenFor: time.Second, Hold: 5 * time.Minute, Poll: 50 * time.Millisecond},
		RelayVersion: "demo", Secrets: []string{apiKey}, Logger: o.Logger, SessionTimeout: 6 * time.Second, ShutdownGrace: 2 * time.Second,
		OnDeadLetter: func(r deadletter.Record) {
			out.printf("dlq        order %-14s stage %-7s reason %s: %s\n", r.OrderID, r.Stage, r.Reason, r.Error)
			deadCh <- r
		},
		OnBreakerChange: func(partner string, from, to gobreaker.State) {
			out.printf("breaker    %s: %s -> %s\n", partner, from, to)
			if to == gobreaker.StateOpen && from == gobreaker.StateClosed {
				mu.Lock()
				sum.BreakerOpened++
				mu.Unlock()
			}
		},
	}
	signer := &webhook.RFC9421Signer{KeyID: signingKeyID, Key: signKey, Profile: shopProfile}
	rc.Partners[partners[0]] = relay.Partner{Version: ucp.V20260408, Endpoint: webhook.Endpoint{Partner: partners[0], BaseURL: sinkURL, APIKey: webhook.NewSecret(apiKey), Signer: signer}}
	rc.Partners[legacyPartner] = relay.Partner{Version: ucp.V20260123, Endpoint: webhook.Endpoint{Partner: legacyPartner, BaseURL: legacyURL, APIKey: webhook.NewSecret(apiKey),
		Signer: &webhook.DetachedJWSSigner{KeyID: signingKeyID, Key: signKey}}}
	sender, err := webhook.NewSender(webhook.WithAttemptTimeout(2 * time.Second))
	if err != nil {
		return sum, err
	}
	first, err := startRelay(ctx, rc, kopts, codec, sender)
	if err != nil {
		return sum, err
	}
	defer func() { _ = first.stop() }()

	// 5. The merchant: order lifecycles for both partners (Confluent and single-object
	// framing), one order for the partner not onboarded yet, and one poison record.
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return sum, fmt.Errorf("demo: producer: %w", err)
	}
	defer prod.Close()
	byOrder, stream := workload(o.Orders, time.Now().Add(-48*time.Hour).UTC().Truncate(time.Second))
	sum.Events = len(stream) + 1
	late := gen.Placed("ord_shopbot_1", latePartner, 99, time.Now().Add(-time.Hour).UTC().Truncate(time.Second))
	onboardedOrder := gen.Placed("ord_shopbot_2", latePartner, 100, time.Now().Add(-time.Minute).UTC().Truncate(time.Second))
	byOrder[onboardedOrder.OrderID] = []orderevents.Event{onboardedOrder}
	if err := snk.expect(byOrder); err != nil {
		return sum, err
	}
	encode := func(i int, ev orderevents.Event) ([]byte, error) {
		if i%2 == 0 {
			return codec.EncodeConfluent(schemaID, ev)
		}
		return codec.EncodeSingleObject(ev)
	}
	produced := make(chan error, 1)
	go func() {
		produced <- func() error {
			chunk := max(len(stream)/25, 1)
			for i := 0; i < len(stream); i += chunk {
				var recs []*kgo.Record
				for j, ev := range stream[i:min(i+chunk, len(stream))] {
					v, err := encode(i+j, ev)
					if err != nil {
						return err
					}
					recs = append(recs, &kgo.Record{Key: []byte(ev.OrderID), Value: v})
				}
				if i == 0 {
					v, err := encode(0, late)
					if err != nil {
						return err
					}
					recs = append(recs, &kgo.Record{Key: []byte(late.OrderID), Value: v},
						&kgo.Record{Key: []byte("ord_poison"), Value: []byte(`{"not":"avro"}`)})
				}
				if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					return fmt.Errorf("demo: produce: %w", err)
				}
				if err := wait.Sleep(ctx, 250*time.Millisecond); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	out.printf("merchant   %d orders, %d events (placements, shipments, deliveries, returns, refunds, cancellations) for %s and %s,\n"+
		"           plus an order for %s (not onboarded yet) and a poison record (JSON instead of Avro)\n\n", o.Orders, len(stream), partners[0], partners[1], latePartner)

	// 6. Live progress, and the partner's outage mid-stream.
	stopProgress := progress(ctx, out, began, func() relay.Stats { return first.r.Stats() }, func() relay.Health { return first.r.Health() }, snk, &mu, &sum)
	if err := wait.Sleep(ctx, 1500*time.Millisecond); err != nil {
		return sum, err
	}
	out.printf("\n---- the partners go down for %s: the breakers open, deliveries wait, fetching pauses at %d pending\n", o.Outage, rc.MaxPending)
	snk.StartOutage()
	if err := wait.Sleep(ctx, o.Outage); err != nil {
		return sum, err
	}
	sum.Refused = snk.Stats().Injected
	snk.EndOutage()
	out.printf("---- the partners are back after refusing %d requests\n\n", sum.Refused)
	if err := <-produced; err != nil {
		return sum, err
	}
	onboarded := func(id string) bool { return id != onboardedOrder.OrderID }
	if err := waitConverged(ctx, snk, onboarded); err != nil {
		stopProgress()
		return sum, fmt.Errorf("demo: %w", err)
	}
	for first.r.Stats().NotOursOrders < 1 {
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			stopProgress()
			return sum, fmt.Errorf("demo: the %s order was never found not ours: %w", latePartner, err)
		}
	}
	sum.NotOurs = int(first.r.Stats().NotOursOrders)
	out.printf("not ours   order %s: placed through %s, which is not configured: nothing of it is kept or sent\n", late.OrderID, latePartner)
	for len(deadCh) > 0 || sum.DeadLetters < 1 {
		select {
		case d := <-deadCh:
			sum.DeadLetters++
			sum.DeadLettersByReason[d.Reason]++
		case <-ctx.Done():
			stopProgress()
			return sum, fmt.Errorf("demo: %d dead letters, want the poison record: %w", sum.DeadLetters, ctx.Err())
		}
	}
	stopProgress()
	if err := first.stop(); err != nil {
		return sum, fmt.Errorf("demo: relay: %w", err)
	}

	// 7. The operator onboards the late partner (a restart with the new configuration):
	// its next order is delivered. Then the operator inspects the dead-letter topic and
	// replays the poison record, which is dead-lettered again (replay is harmless).
	out.printf("\n---- the operator adds partner %s to the configuration and restarts the relay\n", latePartner)
	rc.Partners[latePartner] = relay.Partner{Version: ucp.V20260408, Endpoint: webhook.Endpoint{Partner: latePartner, BaseURL: sinkURL, APIKey: webhook.NewSecret(apiKey), Signer: signer}}
	rc.TransactionalID = "ucprelay-demo-2"
	second, err := startRelay(ctx, rc, kopts, codec, sender)
	if err != nil {
		return sum, err
	}
	defer func() { _ = second.stop() }()
	v, err := codec.EncodeSingleObject(onboardedOrder)
	if err != nil {
		return sum, err
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(onboardedOrder.OrderID), Value: v}).FirstErr(); err != nil {
		return sum, fmt.Errorf("demo: produce: %w", err)
	}
	if err := waitConverged(ctx, snk, func(string) bool { return true }); err != nil {
		return sum, fmt.Errorf("demo: after onboarding: %w", err)
	}
	out.printf("delivered  order %s, placed through %s after it was onboarded\n", onboardedOrder.OrderID, latePartner)
	insp, err := deadletter.Inspect(ctx, kopts, dlqTopic, deadletter.Filter{}, 0)
	if err != nil {
		return sum, err
	}
	out.printf("$ ucprelay dlq inspect\n")
	for reason, n := range insp.ByReason {
		out.printf("           %-22s %d\n", reason, n)
	}
	out.printf("$ ucprelay dlq replay --reason %s\n", avrocodec.ReasonUnknownFraming)
	rs, err := deadletter.Replay(ctx, deadletter.ReplayConfig{KafkaOpts: kopts, Topic: dlqTopic, InputTopic: topic,
		Filter: deadletter.Filter{Reasons: []string{avrocodec.ReasonUnknownFraming}}})
	if err != nil {
		return sum, err
	}
	sum.Replayed = int(rs.Replayed)
	out.printf("           replayed %d of %d dead-letter records\n", rs.Replayed, rs.Scanned)
	for second.r.Stats().DeadLettered < 1 {
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return sum, fmt.Errorf("demo: the replayed poison record was not dead-lettered again: %w", err)
		}
	}
	if err := second.stop(); err != nil {
		return sum, fmt.Errorf("demo: relay: %w", err)
	}
	after, err := deadletter.Inspect(ctx, kopts, dlqTopic, deadletter.Filter{}, 0)
	if err != nil {
		return sum, err
	}
	sum.DeadLettersAfter = after.Matched

	if _, ok := snk.Latest(late.OrderID); ok {
		sum.Leaked++
	}
	st := snk.Stats()
	sum.Delivered, sum.Invalid, sum.Stale, sum.Unverified = st.Accepted, st.Invalid, st.Stale, st.Unauthorized
	for id := range snk.want {
		if snk.converged(id) {
			sum.Converged++
		}
	}
	printSummary(out, sum, time.Since(began))
	switch {
	case sum.Invalid != 0 || sum.Stale != 0:
		return sum, errors.New("demo: the partner saw invalid or stale bodies")
	case sum.Unverified != 0:
		return sum, fmt.Errorf("demo: the partner refused %d requests for their signature or API key", sum.Unverified)
	case sum.Converged != sum.Orders:
		return sum, fmt.Errorf("demo: %d of %d orders converged", sum.Converged, sum.Orders)
	case sum.BreakerOpened == 0:
		return sum, errors.New("demo: the outage never opened the breaker")
	case sum.NotOurs != 1 || sum.Leaked != 0:
		return sum, fmt.Errorf("demo: %d orders not ours, %d of them sent", sum.NotOurs, sum.Leaked)
	case sum.Replayed != 1 || sum.DeadLettersAfter != sum.DeadLetters+1:
		return sum, fmt.Errorf("demo: replayed %d records, dead letters %d before and %d after", sum.Replayed, sum.DeadLetters, sum.DeadLettersAfter)
	}
	return sum, nil
}

// running is a relay started by startRelay.
type running struct {
	r    *relay.Relay
	stop func() error
}

func startRelay(ctx context.Context, rc relay.Config, kopts []kgo.Opt, codec relay.Codec, snd relay.Sender) (*running, error) {
	r, err := relay.New(rc, kopts, codec, snd)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	var once sync.Once
	var runErr error
	return &running{r: r, stop: func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}}, nil
}

// workload returns order lifecycles alternating between the partners, and one stream
// of their events: orders interleaved, each order's events in sequence.
func workload(orders int, at time.Time) (map[string][]orderevents.Event, []orderevents.Event) {
	byOrder := make(map[string][]orderevents.Event, orders)
	queues := make([][]orderevents.Event, orders)
	for i := range orders {
		id := fmt.Sprintf("ord_demo_%03d", i+1)
		evs := gen.Lifecycle(id, partners[i%len(partners)], uint64(i+1), at.Add(time.Duration(i)*time.Minute))
		byOrder[id], queues[i] = evs, evs
	}
	var stream []orderevents.Event
	for left := true; left; {
		left = false
		for i := range queues {
			if len(queues[i]) > 0 {
				stream = append(stream, queues[i][0])
				queues[i] = queues[i][1:]
				left = true
			}
		}
	}
	return byOrder, stream
}

// waitConverged waits until the newest accepted snapshot of every order that include
// selects is its expected final order.
func waitConverged(ctx context.Context, snk *partnerSinks, include func(string) bool) error {
	for {
		missing := ""
		for id := range snk.want {
			if !include(id) {
				continue
			}
			if !snk.converged(id) {
				missing = id
				break
			}
		}
		if missing == "" {
			return nil
		}
		if err := wait.Sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("order %s never reached its final state (sink %+v): %w", missing, snk.Stats(), err)
		}
	}
}

// createTopics creates the state and dead-letter topics as `ucprelay topics create` does.
func createTopics(ctx context.Context, seeds []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return fmt.Errorf("demo: admin client: %w", err)
	}
	defer cl.Close()
	_, err = topics.Create(ctx, topics.NewAdmin(cl), topics.Layout{Input: []string{topic}, State: stateTopic, DeadLetter: dlqTopic}, 1, 1)
	return err
}

func serve(ctx context.Context, h http.Handler) (string, func(), error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("demo: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
