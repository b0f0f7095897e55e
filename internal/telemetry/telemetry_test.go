package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/ucprelay/ucprelay/internal/telemetry"
)

type health struct{ ok bool }

func (h health) Ready() (bool, any) { return h.ok, map[string]bool{"ready": h.ok} }

// With an OTLP endpoint the SDK pushes spans and metrics to it over OTLP/HTTP (checked
// with a stand-in collector on loopback); /metrics serves the same metrics in the
// Prometheus format; /healthz and /readyz answer by the health reported.
func TestSetupExportsAndServes(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got[r.Method+" "+r.URL.Path]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	ctx := context.Background()
	sdk, err := telemetry.Setup(ctx, telemetry.Config{Service: "ucprelay-test", Version: "t", OTLPEndpoint: collector.URL, MetricInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, err := otel.Meter("test").Int64Counter("ucprelay.test.things")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(ctx, 3)
	_, span := otel.Tracer("test").Start(ctx, "a span")
	span.End()

	srv := httptest.NewServer(telemetry.Handler(sdk.Metrics, health{ok: false}))
	defer srv.Close()
	body := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path) //nolint:noctx // loopback test server
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, text := body("/metrics"); code != 200 || !regexp.MustCompile(`ucprelay_test_things_total\{[^}]*\} 3\n`).MatchString(text) ||
		!strings.Contains(text, `target_info{service_name="ucprelay-test"`) {
		t.Errorf("/metrics %d:\n%s", code, text)
	}
	if code, _ := body("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, text := body("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(text, `"ready":false`) {
		t.Errorf("/readyz of an unready process: %d %s", code, text)
	}
	if err := sdk.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got["POST /v1/traces"] == 0 || got["POST /v1/metrics"] == 0 {
		t.Errorf("the collector got %v, want traces and metrics", got)
	}
}
