package relay_test

import (
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
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

const apiKey = "relay-test-key-s3cr3t"

func init() { otel.SetTextMapPropagator(propagation.TraceContext{}) }

// The thin slice on the real broker: OrderPlaced events reach a validating sink as
// complete UCP orders; a partner answering 5xx gets its orders dead-lettered after the
// retries, a poison record is dead-lettered at decode, and every offset is committed.
func TestSliceRealKafka(t *testing.T) {
	t.Parallel()
	testSlice(t, kafkatest.Brokers(t))
}

func TestSliceKfake(t *testing.T) {
	t.Parallel()
	testSlice(t, kafkatest.Fake(t, 3).ListenAddrs())
}

func testSlice(t *testing.T, seeds []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var traced, leaked atomic.Int32
	e := newEnv(t, seeds, 3, sink.Config{APIKey: apiKey, OnRequest: func(l sink.Line) {
		if tp := l.Headers["Traceparent"]; len(tp) == 1 && strings.Contains(tp[0], traceID) {
			traced.Add(1)
		}
		if strings.Contains(l.Path, "/quiet/") && (len(l.Headers["Traceparent"]) != 0 || len(l.Headers["Tracestate"]) != 0) {
			leaked.Add(1)
		}
	}})
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"partner down"}`, http.StatusServiceUnavailable)
	}))
	defer down.Close()

	const okOrders, failOrders = 20, 3
	var recs []*kgo.Record
	at := time.Date(2026, 9, 15, 14, 0, 0, 0, time.UTC)
	for i := range okOrders + failOrders {
		partner := "google"
		switch {
		case i >= okOrders:
			partner = "down"
		case i == 1:
			partner = "quiet" // the same sink, without trace propagation
		}
		id := fmt.Sprintf("ord_%04d", i)
		v, err := e.codec.EncodeSingleObject(gen.Placed(id, partner, uint64(i), at.Add(time.Duration(i)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: v})
	}
	// The producer's trace continues into the POST (W3C traceparent in, traceparent out)
	// for a partner configured to get it, and for no other.
	for _, r := range recs[:2] {
		r.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-" + traceID + "-00f067aa0ba902b7-01")}, {Key: "tracestate", Value: []byte("oms=internal")}}
	}
	recs = append(recs, &kgo.Record{Key: []byte("ord_poison"), Value: []byte("not avro at all")})
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cfg := e.config("a")
	cfg.Partners = map[string]relay.Partner{
		"google": {Endpoint: webhook.Endpoint{Partner: "google", BaseURL: e.url, APIKey: webhook.NewSecret(apiKey)}, Version: ucp.V20260408, PropagateTraceContext: true},
		"quiet":  {Endpoint: webhook.Endpoint{Partner: "quiet", BaseURL: e.url, APIKey: webhook.NewSecret(apiKey)}, Version: ucp.V20260408},
		"down":   {Endpoint: webhook.Endpoint{Partner: "down", BaseURL: down.URL, APIKey: webhook.NewSecret(apiKey)}, Version: ucp.V20260408},
	}
	cfg.DefaultPartner = "google"
	cfg.MaxAttempts = 3
	cfg.Breaker = relay.BreakerConfig{FailuresToTrip: 100}
	cfg.Secrets = []string{apiKey}
	run := e.start(cfg)

	if err := e.snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Accepted >= okOrders }); err != nil {
		t.Fatalf("%v: %+v", err, e.snk.Stats())
	}
	dead := e.deadLetters(ctx, failOrders+1)
	waitCommitted(ctx, t, e.adm, e.names.Group(), e.input, int64(len(recs)))
	if err := run.wait(); err != nil {
		t.Fatalf("relay: %v", err)
	}

	if traced.Load() != 1 || leaked.Load() != 0 {
		t.Errorf("trace context reached the partner that gets it %d times (want 1), the one that does not %d times", traced.Load(), leaked.Load())
	}
	st := e.snk.Stats()
	if st.Accepted != okOrders || st.Invalid != 0 || st.Stale != 0 || st.Unauthorized != 0 {
		t.Fatalf("sink stats %+v", st)
	}
	for i := range okOrders {
		if _, ok := e.snk.Latest(fmt.Sprintf("ord_%04d", i)); !ok {
			t.Errorf("order %d never delivered", i)
		}
	}
	byReason := map[string]int{}
	for _, d := range dead {
		byReason[d.Reason]++
		if d.SourceTopic != e.input || d.RelayVersion != "test" {
			t.Errorf("dead letter lacks source or version: %+v", d)
		}
		switch d.Reason {
		case relay.ReasonRetriesExhausted:
			if d.Stage != deadletter.StageDeliver || d.HTTPStatus != 503 || d.Attempts != 3 || d.Partner != "down" || d.FirstFailure.IsZero() {
				t.Errorf("delivery dead letter %+v", d)
			}
		case avrocodec.ReasonUnknownFraming:
			if d.Stage != deadletter.StageDecode || d.OrderID != "ord_poison" || string(d.Value) != "not avro at all" {
				t.Errorf("decode dead letter %+v", d)
			}
		}
	}
	if byReason[relay.ReasonRetriesExhausted] != failOrders || byReason[avrocodec.ReasonUnknownFraming] != 1 {
		t.Fatalf("dead letters by reason: %v", byReason)
	}
}

func waitCommitted(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic string, total int64) {
	t.Helper()
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		var sum int64
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topic {
					sum += o.At
				}
			})
		}
		if sum == total {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("committed %d of %d offsets: %v", sum, total, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
