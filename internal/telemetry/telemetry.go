// Package telemetry installs the OpenTelemetry SDK for a ucprelay process and serves its
// operational HTTP endpoints: metrics in Prometheus format on /metrics (and pushed over
// OTLP/HTTP when an endpoint is configured), traces over OTLP/HTTP when configured,
// /healthz (the process is alive) and /readyz (the relay can do its work).
//
// The components (internal/relay ...) use only the OpenTelemetry API; this package is the
// one place that chooses exporters, so it is called from main only.
package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// Config configures the SDK.
type Config struct {
	// Service and Version name this process in every metric and span.
	Service, Version string
	// OTLPEndpoint, when set (e.g. http://otel-collector:4318), receives traces and
	// metrics over OTLP/HTTP. The standard OTEL_EXPORTER_OTLP_* variables refine it.
	OTLPEndpoint string
	// MetricInterval is how often metrics are pushed over OTLP. Default 30s.
	MetricInterval time.Duration
}

// SDK is the installed telemetry.
type SDK struct {
	// Metrics serves the Prometheus text format.
	Metrics http.Handler
	mp      *sdkmetric.MeterProvider
	tp      *sdktrace.TracerProvider
}

// Setup installs the global meter provider (Prometheus, and OTLP when configured), the
// global tracer provider when OTLP is configured (otherwise spans are not recorded and
// the trace context passes through unchanged) and the W3C trace-context propagator. Call Shutdown before the process exits.
func Setup(ctx context.Context, cfg Config) (*SDK, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(cfg.Service), semconv.ServiceVersion(cfg.Version)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom), sdkmetric.WithView(latencyView)}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if cfg.OTLPEndpoint != "" {
		me, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(cfg.OTLPEndpoint+"/v1/metrics"))
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp metrics: %w", err)
		}
		interval := cfg.MetricInterval
		if interval <= 0 {
			interval = 30 * time.Second
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me, sdkmetric.WithInterval(interval))))
		te, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint+"/v1/traces"))
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp traces: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(te))
	}
	s := &SDK{mp: sdkmetric.NewMeterProvider(mopts...), Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	otel.SetMeterProvider(s.mp)
	if cfg.OTLPEndpoint != "" {
		// Without an exporter the global no-op tracer stays: it records nothing and
		// passes the producer's trace context (id and sampled flag) on to the partner.
		s.tp = sdktrace.NewTracerProvider(topts...)
		otel.SetTracerProvider(s.tp)
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return s, nil
}

// latencyView gives the event-to-acknowledgement histogram buckets in seconds that span
// a healthy relay (tens of milliseconds) to a long outage (minutes).
var latencyView = sdkmetric.NewView(
	sdkmetric.Instrument{Name: "ucprelay.delivery.latency"},
	sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{
		Boundaries: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900}}},
)

// Shutdown flushes and stops the exporters.
func (s *SDK) Shutdown(ctx context.Context) error {
	var terr error
	if s.tp != nil {
		terr = s.tp.Shutdown(ctx)
	}
	return errors.Join(terr, s.mp.Shutdown(ctx))
}

// Health is what /readyz reports; Ready decides its status code.
type Health interface {
	// Ready reports whether the process can do its work, with details shown to operators.
	Ready() (bool, any)
}

// Handler serves /metrics, /healthz and /readyz.
func Handler(metrics http.Handler, h Health) http.Handler {
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, detail := h.Ready()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(detail)
	})
	return mux
}

// Serve serves handler on ln until ctx ends, then shuts the server down within 5 s. Every
// phase of a connection has a bound, so slow or idle clients cannot hold the server's
// connections: headers 5 s, the whole request 10 s, the answer 30 s, idle keep-alive 60 s.
func Serve(ctx context.Context, ln net.Listener, handler http.Handler) error {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("telemetry: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
