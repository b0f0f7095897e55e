package relay_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/testshared"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// P6: while the partner is down the breaker opens and deliveries wait instead of
// spending their retries and flooding the dead-letter topic; after the outage every
// order is delivered, and nothing was dead-lettered.
func TestOutageOpensBreakerAndNothingIsDeadLettered(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	seeds := kafkatest.Fake(t, 2).ListenAddrs()
	names := kafkatest.NewNames(t)
	input, dlq := names.Topic("orders"), names.Topic("dlq")
	adm := kafkatest.Admin(t, seeds)
	kafkatest.CreateTopic(t, adm, input, 2, nil)
	kafkatest.CreateTopic(t, adm, dlq, 1, nil)

	val, err := ucpschema.NewFromDir(testshared.Dir(t, "ucp-schemas"), "2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	snk, err := sink.New(sink.Config{Validator: val})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(snk)
	defer srv.Close()
	snk.StartOutage()

	var mu sync.Mutex
	var transitions []string
	var deadLetters []deadletter.Record
	codec, _ := avrocodec.New()
	sender, _ := webhook.NewSender()
	r, err := relay.New(relay.Config{
		InputTopics: []string{input}, Group: names.Group(), DeadLetterTopic: dlq,
		Partners:    map[string]relay.Partner{"google": {Endpoint: webhook.Endpoint{Partner: "google", BaseURL: srv.URL}, Version: ucp.V20260408}},
		MaxAttempts: 3, Backoff: webhook.Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond},
		Breaker: relay.BreakerConfig{FailuresToTrip: 3, OpenFor: 100 * time.Millisecond, Hold: time.Minute, Poll: 10 * time.Millisecond},
		OnBreakerChange: func(_ string, from, to gobreaker.State) {
			mu.Lock()
			transitions = append(transitions, from.String()+"->"+to.String())
			mu.Unlock()
		},
		OnDeadLetter: func(d deadletter.Record) { mu.Lock(); deadLetters = append(deadLetters, d); mu.Unlock() },
	}, []kgo.Opt{kgo.SeedBrokers(seeds...)}, codec, sender)
	if err != nil {
		t.Fatal(err)
	}
	const orders = 6
	prod, _ := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(input))
	defer prod.Close()
	for i := range orders {
		id := fmt.Sprintf("ord_%d", i)
		v, _ := codec.EncodeSingleObject(gen.Placed(id, "google", uint64(i), time.Now()))
		if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(id), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()

	// Outage: far more requests than 3 attempts x 6 orders would allow without waiting.
	if err := snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Injected >= 3*orders+5 }); err != nil {
		mu.Lock()
		t.Fatalf("%v: sink %+v, transitions %v, dead letters %d", err, snk.Stats(), transitions, len(deadLetters))
	}
	snk.EndOutage()
	if err := snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Accepted >= orders }); err != nil {
		t.Fatal(err, snk.Stats())
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deadLetters) != 0 {
		t.Fatalf("outage dead-lettered %d orders: %+v", len(deadLetters), deadLetters[0])
	}
	want := map[string]bool{"closed->open": false, "open->half-open": false, "half-open->closed": false}
	for _, tr := range transitions {
		if _, ok := want[tr]; ok {
			want[tr] = true
		}
	}
	for tr, seen := range want {
		if !seen {
			t.Errorf("breaker never went %s (transitions %v)", tr, transitions)
		}
	}
}
