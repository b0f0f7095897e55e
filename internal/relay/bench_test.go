package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/chaos"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// benchSink is the loopback partner of the benchmarks: it answers 200 after a fixed
// latency, and notes when each order was first seen (for produce-to-2xx latency). Both
// the relay and the raw HTTP limit POST to it.
type benchSink struct {
	latency  time.Duration
	requests atomic.Int64
	mu       sync.Mutex
	first    map[string]time.Time
}

func (s *benchSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if s.latency > 0 {
		time.Sleep(s.latency)
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

func benchOrders() int {
	if n, err := strconv.Atoi(os.Getenv("UCPRELAY_BENCH_ORDERS")); err == nil && n > 0 {
		return n
	}
	return 20_000
}

// BenchmarkEndToEnd relays generated order lifecycles (12 partitions, real broker) to a
// loopback sink answering at once and after 20 ms, and measures in the same run the two
// limits: a plain franz-go group consumer reading the same topic, and 64 keep-alive
// workers POSTing a typical body to the same sink. The ratio is ucprelay's events/s over
// the smaller limit. Also: produce-to-2xx latency at a steady rate, and the resident
// heap per order held after a restore.
func BenchmarkEndToEnd(b *testing.B) {
	seeds := kafkatest.Brokers(b)
	ctx := context.Background()
	names := kafkatest.NewNames(b)
	input := names.Topic("orders")
	const partitions = 12
	kafkatest.CreateTopic(b, kafkatest.Admin(b, seeds), input, partitions, nil)
	codec, err := avrocodec.New()
	if err != nil {
		b.Fatal(err)
	}
	orders := benchOrders()
	wl := chaos.NewWorkload(orders, "google", 11)
	events := wl.Events()
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(input), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	for i := 0; i < events; i += 5000 {
		var recs []*kgo.Record
		for _, ev := range wl.Stream[i:min(i+5000, events)] {
			v, err := codec.EncodeSingleObject(ev)
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Key: []byte(ev.OrderID), Value: v})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	// A typical body for the raw HTTP limit: a delivered order of the workload.
	snap, err := fold.Fold(wl.ByOrder[wl.Stream[0].OrderID])
	if err != nil {
		b.Fatal(err)
	}
	body, err := ucp.Marshal(snap.Order, ucp.V20260408, ucp.Envelope{})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d orders, %d events, %d partitions, body %d bytes", orders, events, partitions, len(body))

	var consumeRate float64
	b.Run("limit-raw-consume", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(names.Group()+".raw."+strconv.Itoa(int(time.Now().UnixNano()))),
				kgo.ConsumeTopics(input), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			if err != nil {
				b.Fatal(err)
			}
			seen := 0
			for seen < events {
				cl.PollFetches(ctx).EachRecord(func(*kgo.Record) { seen++ })
			}
			cl.Close()
			consumeRate = float64(events) / time.Since(start).Seconds()
		}
		b.ReportMetric(consumeRate, "events/s")
	})
	for _, latency := range []time.Duration{0, 20 * time.Millisecond} {
		snk := &benchSink{latency: latency, first: map[string]time.Time{}}
		srv := httptest.NewServer(snk)
		var httpRate float64
		b.Run(fmt.Sprintf("limit-raw-http/sink=%s", latency), func(b *testing.B) {
			for b.Loop() {
				httpRate = rawPosts(b, srv.URL, body, min(events, 20_000), latency)
			}
			b.ReportMetric(httpRate, "posts/s")
		})
		b.Run(fmt.Sprintf("ucprelay/sink=%s", latency), func(b *testing.B) {
			var rate float64
			var st relay.Stats
			for b.Loop() {
				rate, st = relayOnce(b, seeds, input, fmt.Sprintf("%s.%s.%d", names.Prefix(), latency, time.Now().UnixNano()), srv.URL, codec, events)
			}
			limit := min(consumeRate, httpRate)
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(float64(st.Snapshots), "snapshots")
			if limit > 0 {
				b.ReportMetric(rate/limit, "ratio-to-limit")
			}
		})
		srv.Close()
	}
	b.Run("latency/sink=0s", func(b *testing.B) {
		for b.Loop() {
			p50, p99 := latencyOnce(b, seeds, names.Prefix(), codec)
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		}
	})
	b.Run("resident-per-order", func(b *testing.B) {
		for b.Loop() {
			b.ReportMetric(residentPerOrder(b, seeds, input, names.Prefix(), codec, events), "bytes/order")
		}
	})
}

// rawPosts sends n POSTs of body from 64 keep-alive workers and returns posts/s.
func rawPosts(b *testing.B, url string, body []byte, n int, latency time.Duration) float64 {
	if latency > 0 {
		n = min(n, int(64*5*time.Second/latency)) // about 5 s of work at the expected rate
	}
	client := &http.Client{Transport: webhook.NewTransport()}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := client.Post(url+"/webhooks/partners/google/events/order", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

func benchConfig(b *testing.B, seeds []string, input, prefix, url string) relay.Config {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	state, dlq := prefix+".state", prefix+".dlq"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := topics.Create(ctx, topics.NewAdmin(cl), topics.Layout{Input: []string{input}, State: state, DeadLetter: dlq}, 1, 1); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = kafkatest.Admin(b, seeds).DeleteTopics(context.Background(), state, dlq) })
	return relay.Config{
		InputTopic: input, StateTopic: state, DeadLetterTopic: dlq, Group: prefix + ".group", TransactionalID: prefix + ".txn",
		Partners: map[string]relay.Partner{"google": {Endpoint: webhook.Endpoint{Partner: "google", BaseURL: url}, Version: ucp.V20260408}},
	}
}

// relayOnce relays the whole input topic with a fresh state and group and returns
// events/s from start to the last acknowledgement.
func relayOnce(b *testing.B, seeds []string, input, prefix, url string, codec relay.Codec, events int) (float64, relay.Stats) {
	cfg := benchConfig(b, seeds, input, prefix, url)
	sender, _ := webhook.NewSender()
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(seeds...)}, codec, sender)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(ctx) }()
	for {
		st := r.Stats()
		if st.Consumed >= int64(events) && st.Pending == 0 {
			break
		}
		select {
		case err := <-done:
			b.Fatalf("relay stopped: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	rate := float64(events) / time.Since(start).Seconds()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return rate, r.Stats()
}

// latencyOnce produces placements at a steady 500/s while a relay runs and returns the
// p50 and p99 from the producer's acknowledgement to the sink's first sight of the order.
func latencyOnce(b *testing.B, seeds []string, prefix string, codec *avrocodec.Codec) (time.Duration, time.Duration) {
	snk := &benchSink{first: map[string]time.Time{}}
	srv := httptest.NewServer(snk)
	defer srv.Close()
	prefix = fmt.Sprintf("%s.lat%d", prefix, time.Now().UnixNano())
	input := prefix + ".orders"
	kafkatest.CreateTopic(b, kafkatest.Admin(b, seeds), input, 12, nil)
	cfg := benchConfig(b, seeds, input, prefix, srv.URL)
	sender, _ := webhook.NewSender()
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(seeds...)}, codec, orderIDHeader{sender})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for !r.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(input), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	const n = 2500
	wl := chaos.NewWorkload(n, "google", 99)
	acked := make(map[string]time.Time, n)
	var mu sync.Mutex
	tick := time.NewTicker(2 * time.Millisecond)
	for i := range n {
		<-tick.C
		ev := wl.ByOrder[fmt.Sprintf("ord_99_%06d", i)][0]
		v, _ := codec.EncodeSingleObject(ev)
		prod.Produce(ctx, &kgo.Record{Key: []byte(ev.OrderID), Value: v}, func(*kgo.Record, error) {
			mu.Lock()
			acked[ev.OrderID] = time.Now()
			mu.Unlock()
		})
	}
	tick.Stop()
	_ = prod.Flush(ctx)
	for {
		snk.mu.Lock()
		seen := len(snk.first)
		snk.mu.Unlock()
		if seen >= n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	var lat []time.Duration
	for id, t := range acked {
		lat = append(lat, snk.first[id].Sub(t))
	}
	slices.Sort(lat)
	if os.Getenv("UCPRELAY_BENCH_DEBUG") != "" {
		b.Logf("latency min %s p10 %s p50 %s p90 %s max %s", lat[0], lat[len(lat)/10], lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1])
		b.Logf("relay %+v", r.Stats())
	}
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// orderIDHeader adds the order id the benchmark sink keys its latencies by.
type orderIDHeader struct{ relay.Sender }

func (s orderIDHeader) Send(ctx context.Context, ep *webhook.Endpoint, req webhook.Request) (webhook.Response, error) {
	// The Webhook-Id of a placement's snapshot is the order id.
	req.Header = req.Header.Clone()
	req.Header.Set("X-Order-Id", req.Header.Get("Webhook-Id"))
	return s.Sender.Send(ctx, ep, req)
}

// residentPerOrder relays the input once, then starts a second relay on the same state
// and measures the live heap it adds once it restored every order.
func residentPerOrder(b *testing.B, seeds []string, input, prefix string, codec relay.Codec, events int) float64 {
	srv := httptest.NewServer(&benchSink{first: map[string]time.Time{}})
	defer srv.Close()
	prefix = fmt.Sprintf("%s.mem%d", prefix, time.Now().UnixNano())
	cfg := benchConfig(b, seeds, input, prefix, srv.URL)
	sender, _ := webhook.NewSender()
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(seeds...)}, codec, sender)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for st := r.Stats(); st.Consumed < int64(events) || st.Pending > 0; st = r.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	cfg.TransactionalID += ".2"
	r2, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(seeds...)}, codec, sender)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- r2.Run(ctx) }()
	for !r2.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	after := heap()
	orders := r2.Orders()
	cancel()
	<-done
	return float64(after-before) / float64(orders)
}
