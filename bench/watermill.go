package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// The peer: what a Go team would assemble instead of ucprelay with Watermill and
// watermill-kafka (Sarama): a router consuming the topic in a consumer group and, per
// message, POSTing an order body to the partner, acking on 2xx and nacking otherwise,
// with the default router and subscriber settings. It does not fold events into orders
// or sign requests: it posts the same typical body the raw HTTP limit posts, which
// flatters it.
type peer struct {
	env    *Env
	topic  string
	posted atomic.Int64
	client *http.Client
}

func (e *Env) newPeer(topic string) *peer {
	return &peer{env: e, topic: topic, client: &http.Client{Transport: webhook.NewTransport()}}
}

// run consumes until stop returns true or ctx ends.
func (p *peer) run(ctx context.Context, group string, stop func(posted int64) bool) error {
	logger := watermill.NopLogger{}
	sc := kafka.DefaultSaramaSubscriberConfig()
	// Kafka 4 serves protocol versions of 2.1 and later only; read the backlog from the start.
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: p.env.Seeds, Unmarshaler: kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: sc, ConsumerGroup: group}, logger)
	if err != nil {
		return fmt.Errorf("bench: watermill subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		return err
	}
	url := p.env.SinkURL + "/webhooks/partners/google/events/order"
	router.AddConsumerHandler("post-order", p.topic, sub, func(msg *message.Message) error {
		req, err := http.NewRequestWithContext(msg.Context(), http.MethodPost, url, bytes.NewReader(p.env.Body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if id := msg.Metadata.Get("order"); id != "" {
			req.Header.Set("X-Order-Id", id)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("partner answered %d", resp.StatusCode)
		}
		p.posted.Add(1)
		return nil
	})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- router.Run(rctx) }()
	for !stop(p.posted.Load()) && ctx.Err() == nil {
		select {
		case err := <-done:
			return fmt.Errorf("bench: watermill router stopped: %w", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	_ = router.Close()
	return ctx.Err()
}

// Watermill runs the peer over the whole input, or for at most limit (a peer with one
// message in flight per partition needs minutes at a slow partner): messages acked per
// second.
func (e *Env) Watermill(ctx context.Context, name string, latency, limit time.Duration) (float64, error) {
	e.Sink.SetLatency(latency)
	p := e.newPeer(e.Input)
	start := time.Now()
	end := start.Add(limit)
	err := p.run(ctx, e.Prefix+"."+name+".wm", func(n int64) bool { return n >= int64(e.Events) || time.Now().After(end) })
	if err != nil {
		return 0, err
	}
	return float64(p.posted.Load()) / time.Since(start).Seconds(), nil
}

// WatermillLatency runs the peer on a fresh topic fed placements at a steady rate:
// p50 and p99 from the broker's acknowledgement to the POST's arrival at the sink.
func (e *Env) WatermillLatency(ctx context.Context, name string, latency time.Duration, n int, rate float64) (time.Duration, time.Duration, error) {
	e.Sink.SetLatency(latency)
	e.Sink.reset()
	topic, err := e.latencyTopic(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	p := e.newPeer(topic)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.run(pctx, e.Prefix+"."+name+".wm", func(int64) bool { return false }) }()
	time.Sleep(3 * time.Second) // the Sarama group joins
	acked, err := e.steadyPlacements(ctx, topic, n, rate)
	if err != nil {
		return 0, 0, err
	}
	p50, p99, err := e.latencies(ctx, acked)
	cancel()
	<-done
	return p50, p99, err
}
