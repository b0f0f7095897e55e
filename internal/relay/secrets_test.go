package relay_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// P7 on the real broker: the API key travels as a query parameter (the riskiest form)
// and every request is signed, while the partner fails in every way, echoing the request
// URL, the key and the headers back in its error answers: 422, 500 until the retries are
// spent, 401 until the hold, timeouts and connection resets. Everything the relay emits
// meanwhile is captured (logs at debug, spans, metrics, the dead-letter records' keys,
// values and headers, Run's error) and none holds the API key or the signing key in
// any encoding.
func TestSecretsNeverLeakRealKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	e := newEnv(t, seeds, 2, sink.Config{})

	apiKey := "p7-" + rand.Text()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pemText := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	key, err := webhook.ParseES256PEM(pemText)
	if err != nil {
		t.Fatal(err)
	}
	d, err := priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"api key": apiKey, "signing key d (base64url)": base64.RawURLEncoding.EncodeToString(d), "signing key d (hex)": hex.EncodeToString(d),
		"signing key d (decimal)": new(big.Int).SetBytes(d).String(), "signing key (PKCS#8 base64)": base64.StdEncoding.EncodeToString(der)[:40],
	}

	// The partner: echoes everything it got into its error answers. It is not configured
	// to get trace context: with a tracer provider recording spans, none reaches it.
	var traced atomic.Int32
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Traceparent") != "" || r.Header.Get("Tracestate") != "" {
			traced.Add(1)
		}
		body, _ := io.ReadAll(r.Body)
		var head struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &head)
		echo := fmt.Sprintf(`{"error":"bad request %s key=%s headers=%v"}`, r.URL.String(), r.URL.Query().Get("key"), r.Header)
		switch {
		case strings.HasPrefix(head.ID, "reject"):
			http.Error(w, echo, http.StatusUnprocessableEntity)
		case strings.HasPrefix(head.ID, "fail"):
			http.Error(w, echo, http.StatusInternalServerError)
		case strings.HasPrefix(head.ID, "creds"):
			http.Error(w, echo, http.StatusUnauthorized)
		case strings.HasPrefix(head.ID, "slow"):
			time.Sleep(500 * time.Millisecond)
			http.Error(w, echo, http.StatusServiceUnavailable)
		default: // reset
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
	}))
	defer partner.Close()

	logs := &lockedBuffer{}
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)

	cfg := e.config("a")
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Partners["google"] = relay.Partner{Endpoint: webhook.Endpoint{Partner: "google", BaseURL: partner.URL, APIKey: webhook.NewSecret(apiKey),
		APIKeyQuery: "key", Signer: &webhook.RFC9421Signer{KeyID: "k1", Key: key, Profile: "https://shop.example/.well-known/ucp"}}, Version: cfg.Partners["google"].Version}
	cfg.Secrets = []string{apiKey}
	cfg.MaxAttempts = 3
	cfg.Breaker = relay.BreakerConfig{FailuresToTrip: 1000, OpenFor: time.Second, Hold: 2 * time.Second, Poll: 50 * time.Millisecond}
	sender, err := webhook.NewSender(webhook.WithAttemptTimeout(200 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(cfg, []kgo.Opt{kgo.SeedBrokers(seeds...)}, e.codec, sender)
	if err != nil {
		t.Fatal(err)
	}
	var evs []orderevents.Event
	ids := []string{"reject_1", "fail_1", "creds_1", "slow_1", "reset_1"}
	for i, id := range ids {
		evs = append(evs, gen.Placed(id, "google", uint64(i), time.Now()))
	}
	e.produce(ctx, evs...)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()

	var dump strings.Builder
	got := 0
	for got < len(ids) && ctx.Err() == nil {
		dump.Reset()
		got = 0
		_, err := deadletter.Scan(ctx, []kgo.Opt{kgo.SeedBrokers(seeds...)}, e.dlq, nil, func(kr *kgo.Record) error {
			got++
			fmt.Fprintf(&dump, "key=%s value=%s\n", kr.Key, kr.Value)
			for _, h := range kr.Headers {
				fmt.Fprintf(&dump, "  %s=%s\n", h.Key, h.Value)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var live metricdata.ResourceMetrics // the gauges exist while the relay runs
	if err := reader.Collect(ctx, &live); err != nil {
		t.Fatal(err)
	}
	stop()
	runErr := <-done
	if got < len(ids) {
		t.Fatalf("%d dead letters, want %d:\n%s", got, len(ids), dump.String())
	}
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if n := traced.Load(); n != 0 {
		t.Errorf("%d requests carried the relay's trace context to a partner not configured for it", n)
	}
	var spanText strings.Builder
	for _, s := range spans.GetSpans() {
		fmt.Fprintf(&spanText, "%s %v %v %v\n", s.Name, s.Attributes, s.Status, s.Events)
	}
	captured := map[string]string{
		"logs": logs.String(), "spans": spanText.String(), "metrics": fmt.Sprintf("%+v\n%+v", live, rm),
		"dead letters": dump.String(), "run error": fmt.Sprint(runErr),
	}
	// The capture is real: the failures and the partner's echoes are in it.
	for what, want := range map[string]string{"logs": "delivery failed; retrying", "dead letters": "[REDACTED]", "spans": "ucprelay",
		"metrics": "ucprelay.breaker.state"} {
		if !strings.Contains(captured[what], want) {
			t.Errorf("%s lack %q: the capture missed the failures\n%s", what, want, captured[what])
		}
	}
	for _, reason := range []string{relay.ReasonRejected, relay.ReasonRetriesExhausted, relay.ReasonCredentials} {
		if !strings.Contains(dump.String(), reason) {
			t.Errorf("no %s dead letter:\n%s", reason, dump.String())
		}
	}
	for what, text := range captured {
		for name, secret := range secrets {
			if strings.Contains(text, secret) {
				i := strings.Index(text, secret)
				t.Errorf("the %s appears in %s: …%s…", name, what, text[max(0, i-120):min(len(text), i+len(secret)+20)])
			}
		}
	}
}
