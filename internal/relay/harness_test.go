package relay_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	ucporacle "github.com/ucprelay/ucprelay/internal/oracle"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// env is one test's deployment: input, state and dead-letter topics, a validating sink
// on loopback, a producer and the codec.
type env struct {
	t                 *testing.T
	seeds             []string
	names             kafkatest.Names
	input, state, dlq string
	adm               *kadm.Client
	codec             *avrocodec.Codec
	snk               *sink.Sink
	url               string
	prod              *kgo.Client
}

func newEnv(t *testing.T, seeds []string, partitions int32, sinkCfg sink.Config) *env {
	t.Helper()
	e := &env{t: t, seeds: seeds, names: kafkatest.NewNames(t), adm: kafkatest.Admin(t, seeds)}
	e.input, e.state, e.dlq = e.names.Topic("orders"), e.names.Topic("state"), e.names.Topic("dlq")
	kafkatest.CreateTopic(t, e.adm, e.input, partitions, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := topics.Create(ctx, topics.NewAdmin(cl), topics.Layout{Input: []string{e.input}, State: e.state, DeadLetter: e.dlq}, 1, 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = e.adm.DeleteTopics(ctx, e.state, e.dlq)
	})
	if sinkCfg.Validator == nil {
		val, err := ucpschema.New(string(ucp.V20260408))
		if err != nil {
			t.Fatal(err)
		}
		sinkCfg.Validator = val
	}
	sinkCfg.KeepHistory = true
	if e.snk, err = sink.New(sinkCfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.snk)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	if e.codec, err = avrocodec.New(); err != nil {
		t.Fatal(err)
	}
	if e.prod, err = kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(e.input), kgo.ProducerLinger(5*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.prod.Close)
	return e
}

// config is a relay configuration for this env with one partner, google, at the sink.
func (e *env) config(replica string) relay.Config {
	return relay.Config{
		InputTopic: e.input, StateTopic: e.state, DeadLetterTopic: e.dlq, Group: e.names.Group(),
		TransactionalID: e.names.TxnID() + "." + replica,
		Partners: map[string]relay.Partner{
			"google": {Endpoint: webhook.Endpoint{Partner: "google", BaseURL: e.url}, Version: ucp.V20260408},
		},
		Backoff:        webhook.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond},
		SessionTimeout: 10 * time.Second,
		ShutdownGrace:  2 * time.Second,
		ResendSettle:   200 * time.Millisecond,
		RelayVersion:   "test",
	}
}

// running is a relay started by start.
type running struct {
	r    *relay.Relay
	stop context.CancelFunc
	done chan error
	once sync.Once
	err  error
}

// wait stops the relay and returns Run's error.
func (r *running) wait() error {
	r.stop()
	r.once.Do(func() { r.err = <-r.done })
	return r.err
}

func newTestSender(t *testing.T) *webhook.Sender {
	t.Helper()
	sender, err := webhook.NewSender(webhook.WithAttemptTimeout(3 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return sender
}

func (e *env) start(cfg relay.Config) *running {
	e.t.Helper()
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(e.seeds...), kgo.MetadataMinAge(250 * time.Millisecond)}, e.codec, newTestSender(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, stop: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { _ = run.wait() })
	return run
}

// produce writes events in order, keyed by order id.
func (e *env) produce(ctx context.Context, evs ...orderevents.Event) {
	e.t.Helper()
	recs := make([]*kgo.Record, 0, len(evs))
	for _, ev := range evs {
		v, err := e.codec.EncodeSingleObject(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(ev.OrderID), Value: v})
	}
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// oracle folds each order's events into the body the partner must end up with.
func oracle(t testing.TB, events map[string][]orderevents.Event) map[string][]byte {
	t.Helper()
	out, err := ucporacle.Bodies(events)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitConverged waits until the sink's newest body of every order equals the oracle's.
func (e *env) waitConverged(ctx context.Context, want map[string][]byte) {
	e.t.Helper()
	var missing string
	for {
		missing = ""
		for id, body := range want {
			d, ok := e.snk.Latest(id)
			if !ok || !ucporacle.SameJSON(d.Body, body) {
				missing = id
				break
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-ctx.Done():
			d, _ := e.snk.Latest(missing)
			e.t.Fatalf("order %s never converged (sink %+v)\ngot  %s\nwant %s", missing, e.snk.Stats(), d.Body, want[missing])
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readState restores every partition of the state topic.
func (e *env) readState(ctx context.Context, partitions int32) map[string]statestore.Header {
	e.t.Helper()
	out := map[string]statestore.Header{}
	for p := range partitions {
		st, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(e.seeds...)}, e.state, p, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		for id, v := range st.Orders {
			h, err := statestore.ParseHeader(v)
			if err != nil {
				e.t.Fatal(err)
			}
			out[id] = h
		}
	}
	return out
}

// waitAcked waits until the state topic records, for every order, the acknowledgement of
// its final version and nothing pending.
func (e *env) waitAcked(ctx context.Context, partitions int32, versions map[string]int64) map[string]statestore.Header {
	e.t.Helper()
	for {
		st := e.readState(ctx, partitions)
		bad := ""
		for id, v := range versions {
			h, ok := st[id]
			if !ok || h.Acked.Version != v || h.Pending.Version > h.Acked.Version {
				bad = fmt.Sprintf("order %s: state %+v, want acked version %d", id, h, v)
				break
			}
		}
		if bad == "" {
			return st
		}
		select {
		case <-ctx.Done():
			e.t.Fatal(bad)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// deadLetters reads the committed dead-letter records until want arrived or ctx ends.
func (e *env) deadLetters(ctx context.Context, want int) []deadletter.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds...), kgo.ConsumeTopics(e.dlq),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []deadletter.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			d, err := deadletter.FromKafka(r)
			if err != nil {
				e.t.Errorf("dead letter: %v", err)
			}
			out = append(out, d)
		})
	}
	return out
}
