// Package demo runs the whole ucprelay flow in one process with no setup: an embedded
// Kafka broker (kfake), an in-process schema registry, a local validating partner sink,
// an event generator and the relay. It prints what it sends and what the partner
// receives, then a summary, and returns an error when a check fails.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/schemaregistry"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Options configure a demo run.
type Options struct {
	// Orders to generate. Default 12.
	Orders int
	// Duration bounds the run. Default 60s.
	Duration time.Duration
	// Out receives the demo's narration. Required.
	Out io.Writer
	// Record, when set, receives the sink's record file.
	Record io.Writer
	// Logger receives the relay's logs. Default: discard.
	Logger *slog.Logger
}

// Summary is what the demo observed.
type Summary struct {
	Orders, Events      int
	Delivered, Invalid  int
	Stale, Retried      int
	DeadLetters         int
	DeadLettersByReason map[string]int
}

const (
	topic      = "orders"
	dlqTopic   = "ucprelay.dlq"
	stateTopic = "ucprelay.state"
	apiKey     = "demo-api-key" //nolint:gosec // the demo's own sink key, not a credential
)

var partners = []string{"google", "acme-agent"}

// Run runs the demo until every order is delivered and the poison record dead-lettered,
// or until the duration ends.
func Run(ctx context.Context, o Options) (Summary, error) {
	if o.Orders <= 0 {
		o.Orders = 12
	}
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	out := &lockedWriter{w: o.Out}
	sum := Summary{Orders: o.Orders, DeadLettersByReason: map[string]int{}}

	// 1. An embedded broker.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		return sum, fmt.Errorf("demo: embedded broker: %w", err)
	}
	defer cluster.Close()
	seeds := cluster.ListenAddrs()
	if err := createTopics(ctx, seeds); err != nil {
		return sum, err
	}
	out.printf("broker     embedded Kafka (kfake) at %s, input %q (3 partitions), state %q (compacted), dead letters %q\n", seeds[0], topic, stateTopic, dlqTopic)

	// 2. A schema registry and the codec producers use.
	regURL, err := schemaregistry.Serve(ctx, "127.0.0.1:0", schemaregistry.New())
	if err != nil {
		return sum, err
	}
	reg, err := sr.NewClient(sr.URLs(regURL))
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
	out.printf("registry   in-process schema registry at %s, %s registered as id %d\n", regURL, avro.Subject(topic), schemaID)

	// 3. The partner: a local sink validating every body against the UCP 2026-04-08 schema.
	val, err := ucpschema.New(string(ucp.V20260408))
	if err != nil {
		return sum, err
	}
	snk, err := sink.New(sink.Config{Validator: val, APIKey: apiKey, Record: o.Record, OnRequest: func(l sink.Line) {
		var b struct {
			ID        string `json:"id"`
			LineItems []struct {
				Status string `json:"status"`
			} `json:"line_items"`
		}
		_ = json.Unmarshal([]byte(l.Body), &b)
		verdict := "accepted"
		if l.Status != http.StatusOK {
			verdict = "rejected: " + l.Error
		}
		out.printf("partner    %-4d %s  order %s (%d line(s), %d bytes)  %s\n", l.Status, l.Path, b.ID, len(b.LineItems), len(l.Body), verdict)
	}})
	if err != nil {
		return sum, err
	}
	// The first two answers are outages, so the demo shows a retry.
	snk.Script(sink.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "1"}, sink.Fault{Status: http.StatusInternalServerError})
	sinkURL, stopSink, err := serve(ctx, snk)
	if err != nil {
		return sum, err
	}
	defer stopSink()
	out.printf("partner    validating sink at %s (UCP %s schema, API key checked)\n\n", sinkURL, ucp.V20260408)

	// 4. The relay.
	sender, err := webhook.NewSender(webhook.WithAttemptTimeout(5 * time.Second))
	if err != nil {
		return sum, err
	}
	dead := make(chan deadletter.Record, 16)
	rc := relay.Config{
		InputTopic: topic, StateTopic: stateTopic, Group: "ucprelay-demo", TransactionalID: "ucprelay-demo-1", DeadLetterTopic: dlqTopic,
		Partners: map[string]relay.Partner{}, DefaultPartner: partners[0],
		MaxAttempts: 5, Backoff: webhook.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, MaxRetryAfter: 2 * time.Second},
		RelayVersion: "demo", Secrets: []string{apiKey}, Logger: o.Logger,
		OnDeadLetter: func(r deadletter.Record) {
			out.printf("dlq        %s  order %q  stage %s  reason %s: %s\n", dlqTopic, r.OrderID, r.Stage, r.Reason, r.Error)
			dead <- r
		},
	}
	for _, p := range partners {
		rc.Partners[p] = relay.Partner{Version: ucp.V20260408,
			Endpoint: webhook.Endpoint{Partner: p, BaseURL: sinkURL, APIKey: webhook.NewSecret(apiKey)}}
	}
	r, err := relay.New(rc, []kgo.Opt{kgo.SeedBrokers(seeds...)}, codec, sender)
	if err != nil {
		return sum, err
	}
	var wg sync.WaitGroup
	runCtx, stopRelay := context.WithCancel(ctx)
	var runErr error
	wg.Go(func() { runErr = r.Run(runCtx) })
	defer func() { stopRelay(); wg.Wait() }()

	// 5. The merchant: order placements (Confluent and single-object framing) and one poison record.
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return sum, fmt.Errorf("demo: producer: %w", err)
	}
	defer prod.Close()
	start := time.Now().UTC().Truncate(time.Second)
	for i := range o.Orders {
		id := fmt.Sprintf("ord_demo_%03d", i+1)
		ev := gen.Placed(id, partners[i%len(partners)], uint64(i+1), start.Add(time.Duration(i)*time.Second))
		var v []byte
		framing := "confluent"
		if i%2 == 0 {
			v, err = codec.EncodeConfluent(schemaID, ev)
		} else {
			v, err = codec.EncodeSingleObject(ev)
			framing = "single-object"
		}
		if err != nil {
			return sum, err
		}
		if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(id), Value: v}).FirstErr(); err != nil {
			return sum, fmt.Errorf("demo: produce: %w", err)
		}
		p := ev.Payload.(orderevents.OrderPlaced)
		out.printf("merchant   OrderPlaced %s for %-10s %d line(s), total %s  (%d bytes Avro, %s)\n",
			id, ev.PartnerID, len(p.LineItems), money(p.Totals), len(v), framing)
		sum.Events++
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte("ord_poison"), Value: []byte(`{"not":"avro"}`)}).FirstErr(); err != nil {
		return sum, fmt.Errorf("demo: produce: %w", err)
	}
	sum.Events++
	out.printf("merchant   a poison record for ord_poison (JSON instead of Avro)\n\n")

	// 6. Wait for every order and the poison record to reach an end.
	werr := snk.WaitFor(ctx, func(st sink.Stats) bool { return st.Accepted >= o.Orders })
	select {
	case d := <-dead:
		sum.DeadLettersByReason[d.Reason]++
		sum.DeadLetters++
	case <-ctx.Done():
	}
	stopRelay()
	wg.Wait()

	st := snk.Stats()
	sum.Delivered, sum.Invalid, sum.Stale, sum.Retried = st.Accepted, st.Invalid, st.Stale, st.Injected
	printSummary(out, sum)
	switch {
	case runErr != nil:
		return sum, fmt.Errorf("demo: relay: %w", runErr)
	case werr != nil:
		return sum, fmt.Errorf("demo: %d of %d orders delivered in %s: %w", st.Accepted, o.Orders, o.Duration, werr)
	case sum.Invalid != 0 || sum.Stale != 0:
		return sum, errors.New("demo: the partner saw invalid or stale bodies")
	case sum.DeadLetters != 1:
		return sum, fmt.Errorf("demo: want the poison record dead-lettered, got %d dead letters", sum.DeadLetters)
	}
	return sum, nil
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

func money(ts []orderevents.Total) string {
	for _, t := range ts {
		if t.Type == "total" {
			return fmt.Sprintf("%d.%02d USD", t.Amount/100, t.Amount%100)
		}
	}
	return "?"
}

func printSummary(out *lockedWriter, s Summary) {
	out.mu.Lock()
	defer out.mu.Unlock()
	tw := tabwriter.NewWriter(out.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(out.w, "\nsummary\n")
	fmt.Fprintf(tw, "orders\t%d\t\n", s.Orders)
	fmt.Fprintf(tw, "events produced\t%d\t\n", s.Events)
	fmt.Fprintf(tw, "snapshots delivered\t%d\t\n", s.Delivered)
	fmt.Fprintf(tw, "answers injected (retried)\t%d\t\n", s.Retried)
	fmt.Fprintf(tw, "invalid\t%d\t\n", s.Invalid)
	fmt.Fprintf(tw, "stale\t%d\t\n", s.Stale)
	fmt.Fprintf(tw, "dead-lettered\t%d\t\n", s.DeadLetters)
	_ = tw.Flush()
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

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}
