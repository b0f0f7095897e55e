package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/chaos"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Sink is the loopback partner of every case: it answers 200 after a fixed latency and
// notes when it first saw each order (by the X-Order-Id header, for latencies).
type Sink struct {
	latency  atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	first    map[string]time.Time
}

// NewSink returns a Sink.
func NewSink() *Sink { return &Sink{first: map[string]time.Time{}} }

// SetLatency sets the answer delay.
func (s *Sink) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

func (s *Sink) reset() {
	s.mu.Lock()
	s.first = map[string]time.Time{}
	s.mu.Unlock()
	s.requests.Store(0)
}

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if d := time.Duration(s.latency.Load()); d > 0 {
		time.Sleep(d)
	}
	s.requests.Add(1)
	if id := r.Header.Get("X-Order-Id"); id != "" {
		s.mu.Lock()
		if _, ok := s.first[id]; !ok {
			s.first[id] = time.Now()
		}
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Sink) seen(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.first[id]
	return t, ok
}

// Env is one benchmark run's shared data: the broker, the input topic with the
// generated workload, the sink and a typical body.
type Env struct {
	Seeds      []string
	Input      string
	Prefix     string
	Partitions int32
	Orders     int
	Events     int
	Body       []byte
	Sink       *Sink
	SinkURL    string
	codec      *avrocodec.Codec
	adm        *kadm.Client
	cl         *kgo.Client
	signKey    *ecdsa.PrivateKey
	cleanup    []func()
}

// NewEnv creates the input topic and produces the workload: orders lifecycles
// interleaved as a shop's traffic, Avro single-object encoded, keyed by order id.
func NewEnv(ctx context.Context, seeds []string, prefix string, orders int, partitions int32) (*Env, error) {
	e := &Env{Seeds: seeds, Prefix: prefix, Input: prefix + ".orders", Partitions: partitions, Orders: orders, Sink: NewSink()}
	var err error
	if e.cl, err = kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(e.Input), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerLinger(10*time.Millisecond)); err != nil {
		return nil, err
	}
	e.adm = kadm.NewClient(e.cl)
	if _, err := e.adm.CreateTopic(ctx, partitions, 1, nil, e.Input); err != nil {
		return nil, fmt.Errorf("bench: create %s: %w", e.Input, err)
	}
	e.cleanup = append(e.cleanup, func() { _, _ = e.adm.DeleteTopics(context.Background(), e.Input) })
	if e.codec, err = avrocodec.New(); err != nil {
		return nil, err
	}
	wl := chaos.NewWorkload(orders, "google", 11)
	e.Events = wl.Events()
	for i := 0; i < e.Events; i += 5000 {
		var recs []*kgo.Record
		for _, ev := range wl.Stream[i:min(i+5000, e.Events)] {
			v, err := e.codec.EncodeSingleObject(ev)
			if err != nil {
				return nil, err
			}
			recs = append(recs, &kgo.Record{Key: []byte(ev.OrderID), Value: v})
		}
		if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return nil, err
		}
	}
	snap, err := fold.Fold(wl.ByOrder[wl.Stream[0].OrderID])
	if err != nil {
		return nil, err
	}
	if e.Body, err = ucp.Marshal(snap.Order, ucp.V20260408, ucp.Envelope{}); err != nil {
		return nil, err
	}
	srv := httptest.NewServer(e.Sink)
	e.SinkURL = srv.URL
	e.cleanup = append(e.cleanup, srv.Close)
	if e.signKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	return e, nil
}

// Close deletes what the run created.
func (e *Env) Close() {
	for _, f := range slices.Backward(e.cleanup) {
		f()
	}
	e.cl.Close()
}

// RawConsume reads the whole input with a plain franz-go group consumer: records/s.
func (e *Env) RawConsume(ctx context.Context) (float64, error) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Seeds...), kgo.ConsumerGroup(fmt.Sprintf("%s.raw.%d", e.Prefix, time.Now().UnixNano())),
		kgo.ConsumeTopics(e.Input), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	seen := 0
	for seen < e.Events {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		seen += fs.NumRecords()
	}
	return float64(e.Events) / time.Since(start).Seconds(), nil
}

// RawHTTP posts the typical body from 64 keep-alive workers for about five seconds of
// work: posts/s, the ceiling of any relay POSTing to this sink.
func (e *Env) RawHTTP(ctx context.Context, latency time.Duration) (float64, error) {
	e.Sink.SetLatency(latency)
	n := 20000
	if latency > 0 {
		n = int(64 * 5 * time.Second / latency)
	}
	client := &http.Client{Transport: webhook.NewTransport()}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.SinkURL+"/webhooks/partners/google/events/order", bytes.NewReader(e.Body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// relayConfig creates a fresh state and dead-letter topic and returns a relay
// configuration for them with signing on (RFC 9421, ES256).
func (e *Env) relayConfig(ctx context.Context, input, name string) (relay.Config, error) {
	state, dlq := e.Prefix+"."+name+".state", e.Prefix+"."+name+".dlq"
	if _, err := topics.Create(ctx, topics.NewAdmin(e.cl), topics.Layout{Input: []string{input}, State: state, DeadLetter: dlq}, 1, 1); err != nil {
		return relay.Config{}, err
	}
	e.cleanup = append(e.cleanup, func() { _, _ = e.adm.DeleteTopics(context.Background(), state, dlq) })
	cfg := relay.Config{
		InputTopic: input, StateTopic: state, DeadLetterTopic: dlq, Group: e.Prefix + "." + name + ".group", TransactionalID: e.Prefix + "." + name + ".txn",
		Partners: map[string]relay.Partner{"google": {Version: ucp.V20260408, Endpoint: webhook.Endpoint{Partner: "google", BaseURL: e.SinkURL,
			APIKey: webhook.NewSecret("bench-key"), Signer: &webhook.RFC9421Signer{KeyID: "bench", Key: e.signKey, Profile: "https://shop.example/.well-known/ucp"}}}},
	}
	if os.Getenv("UCPRELAY_BENCH_LOG") != "" { // the relays' own log on stderr, to see where a run waits
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return cfg, nil
}

// orderIDHeader adds the order id the sink keys its latencies by: a placement's
// snapshot has the order id as its Webhook-Id.
type orderIDHeader struct{ relay.Sender }

func (s orderIDHeader) Send(ctx context.Context, ep *webhook.Endpoint, req webhook.Request) (webhook.Response, error) {
	req.Header = req.Header.Clone()
	req.Header.Set("X-Order-Id", req.Header.Get("Webhook-Id"))
	return s.Sender.Send(ctx, ep, req)
}

// Relay relays the whole input with a fresh state and group: events/s from start to
// the last acknowledgement, and the POSTs it made.
func (e *Env) Relay(ctx context.Context, name string, latency time.Duration) (float64, int64, error) {
	e.Sink.SetLatency(latency)
	cfg, err := e.relayConfig(ctx, e.Input, name)
	if err != nil {
		return 0, 0, err
	}
	return e.relayUntil(ctx, cfg, e.codec, func(relay.Stats) int64 { return int64(e.Events) }, e.Events)
}

// relayUntil runs a relay until it consumed consumed(its stats) records and has nothing
// pending: events/s from start to then, and the POSTs it made.
func (e *Env) relayUntil(ctx context.Context, cfg relay.Config, codec *avrocodec.Codec, consumed func(relay.Stats) int64, events int) (float64, int64, error) {
	sender, err := webhook.NewSender()
	if err != nil {
		return 0, 0, err
	}
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(e.Seeds...)}, codec, sender)
	if err != nil {
		return 0, 0, err
	}
	before := e.Sink.requests.Load()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	for last := time.Now(); ; {
		st := r.Stats()
		if st.Consumed >= consumed(st) && st.Pending == 0 {
			break
		}
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "bench: relay %s: %d of %d records consumed, %d pending, %d dead-lettered\n", cfg.Group, st.Consumed, consumed(st), st.Pending, st.DeadLettered)
		}
		select {
		case err := <-done:
			cancel()
			return 0, 0, fmt.Errorf("bench: relay stopped: %w", err)
		case <-ctx.Done():
			cancel()
			return 0, 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	rate := float64(events) / time.Since(start).Seconds()
	if st := r.Stats(); st.DeadLettered > 0 {
		cancel()
		<-done
		return 0, 0, fmt.Errorf("bench: the relay dead-lettered %d records", st.DeadLettered)
	}
	cancel()
	if err := <-done; err != nil {
		return 0, 0, err
	}
	return rate, e.Sink.requests.Load() - before, nil
}

// steadyPlacements produces n placements on a fresh topic at rate/s and returns when
// each was acknowledged by the broker, keyed by order id.
func (e *Env) steadyPlacements(ctx context.Context, topic string, n int, rate float64) (map[string]time.Time, error) {
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.Seeds...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	wl := chaos.NewWorkload(n, "google", 99)
	acked := make(map[string]time.Time, n)
	var mu sync.Mutex
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		ev := wl.ByOrder[fmt.Sprintf("ord_99_%06d", i)][0]
		v, err := e.codec.EncodeSingleObject(ev)
		if err != nil {
			return nil, err
		}
		prod.Produce(ctx, &kgo.Record{Key: []byte(ev.OrderID), Value: v, Headers: []kgo.RecordHeader{{Key: "order", Value: []byte(ev.OrderID)}}},
			func(*kgo.Record, error) {
				mu.Lock()
				acked[ev.OrderID] = time.Now()
				mu.Unlock()
			})
	}
	if err := prod.Flush(ctx); err != nil {
		return nil, err
	}
	return acked, nil
}

// latencies waits until the sink saw every order and returns p50 and p99 from the
// broker's acknowledgement of the event to the sink's first sight.
func (e *Env) latencies(ctx context.Context, acked map[string]time.Time) (time.Duration, time.Duration, error) {
	var lat []time.Duration
	deadline := time.Now().Add(2 * time.Minute)
	for id, t := range acked {
		for {
			if seen, ok := e.Sink.seen(id); ok {
				lat = append(lat, seen.Sub(t))
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return 0, 0, fmt.Errorf("bench: order %s never reached the sink", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

// latencyTopic creates a fresh input topic for a latency case.
func (e *Env) latencyTopic(ctx context.Context, name string) (string, error) {
	topic := e.Prefix + "." + name + ".lat"
	if _, err := e.adm.CreateTopic(ctx, e.Partitions, 1, nil, topic); err != nil {
		return "", err
	}
	e.cleanup = append(e.cleanup, func() { _, _ = e.adm.DeleteTopics(context.Background(), topic) })
	// The broker answers CreateTopics before its metadata shows the topic; the relay's
	// layout check would find it missing (seen once in a bench run).
	for {
		td, err := e.adm.ListTopics(ctx, topic)
		if err == nil && td.Has(topic) && len(td[topic].Partitions) == int(e.Partitions) {
			return topic, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RelayLatency runs a relay on a fresh topic fed placements at a steady rate: p50 and
// p99 from the event's acknowledgement by the broker to the 2xx's arrival at the sink.
func (e *Env) RelayLatency(ctx context.Context, name string, latency time.Duration, n int, rate float64) (time.Duration, time.Duration, error) {
	e.Sink.SetLatency(latency)
	e.Sink.reset()
	topic, err := e.latencyTopic(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	cfg, err := e.relayConfig(ctx, topic, name)
	if err != nil {
		return 0, 0, err
	}
	sender, err := webhook.NewSender()
	if err != nil {
		return 0, 0, err
	}
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(e.Seeds...)}, e.codec, orderIDHeader{sender})
	if err != nil {
		return 0, 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	for !r.Ready() {
		select {
		case err := <-done:
			return 0, 0, fmt.Errorf("bench: relay stopped: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	acked, err := e.steadyPlacements(ctx, topic, n, rate)
	if err != nil {
		return 0, 0, err
	}
	p50, p99, err := e.latencies(ctx, acked)
	cancel()
	<-done
	return p50, p99, err
}

// Restore reads every partition of a relay's state topic as a new owner does: records/s.
func (e *Env) Restore(ctx context.Context, name string) (float64, int, error) {
	state := e.Prefix + "." + name + ".state"
	start := time.Now()
	var records int64
	orders := 0
	for p := range e.Partitions {
		ps, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(e.Seeds...)}, state, p, nil)
		if err != nil {
			return 0, 0, err
		}
		records += ps.Records
		orders += len(ps.Orders)
	}
	return float64(records) / time.Since(start).Seconds(), orders, nil
}

// ResidentPerOrder starts a relay on a relayed state and returns the live heap it adds
// per order once it restored every partition.
func (e *Env) ResidentPerOrder(ctx context.Context, name string) (float64, error) {
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	cfg := relay.Config{InputTopic: e.Input, StateTopic: e.Prefix + "." + name + ".state", DeadLetterTopic: e.Prefix + "." + name + ".dlq",
		Group: e.Prefix + "." + name + ".group", TransactionalID: e.Prefix + "." + name + ".txn2",
		Partners: map[string]relay.Partner{"google": {Version: ucp.V20260408, Endpoint: webhook.Endpoint{Partner: "google", BaseURL: e.SinkURL}}}}
	sender, err := webhook.NewSender()
	if err != nil {
		return 0, err
	}
	before := heap()
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(e.Seeds...)}, e.codec, sender)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	for !r.Ready() {
		select {
		case err := <-done:
			cancel()
			return 0, fmt.Errorf("bench: relay stopped: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	after := heap()
	orders := r.Orders()
	cancel()
	<-done
	if orders == 0 {
		return 0, fmt.Errorf("bench: the relay restored no orders")
	}
	return float64(after-before) / float64(orders), nil
}
