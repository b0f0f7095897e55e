package relay

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/ucprelay/ucprelay/internal/relay"

// instruments are the relay's OpenTelemetry metrics. They go through the global meter
// provider: a no-op until main installs an SDK with an exporter.
type instruments struct {
	layoutMismatch metric.Int64Counter
	restored       metric.Int64Counter
	deadLettered   metric.Int64Counter
	delivered      metric.Int64Counter
	consumed       metric.Int64Counter
	credentials    metric.Int64Counter
}

func newInstruments() instruments {
	m := otel.Meter(meterName)
	var in instruments
	// Instrument creation only fails on invalid names; ours are constants.
	in.layoutMismatch, _ = m.Int64Counter("ucprelay.layout.mismatch",
		metric.WithDescription("Times the relay refused to process because input and state partitioning differ (run `ucprelay state migrate`)."))
	in.restored, _ = m.Int64Counter("ucprelay.restore.records",
		metric.WithDescription("State records read while restoring partitions."))
	in.deadLettered, _ = m.Int64Counter("ucprelay.deadletter.records",
		metric.WithDescription("Records written to the dead-letter topic, by stage and reason."))
	in.delivered, _ = m.Int64Counter("ucprelay.deliveries",
		metric.WithDescription("Snapshots acknowledged by partners, by partner."))
	in.consumed, _ = m.Int64Counter("ucprelay.events.consumed",
		metric.WithDescription("Input records committed."))
	in.credentials, _ = m.Int64Counter("ucprelay.delivery.credential_failures",
		metric.WithDescription("Answers 401/403 by partner: the partner refuses our API key or signature; alert on any."))
	return in
}

// observe registers the gauges read at collection time: each partner's breaker state
// (0 closed, 1 half-open, 2 open) and the snapshots waiting for delivery.
func (r *Relay) observe() (metric.Registration, error) {
	m := otel.Meter(meterName)
	state, err := m.Int64ObservableGauge("ucprelay.breaker.state",
		metric.WithDescription("Circuit breaker of each partner endpoint: 0 closed, 1 half-open, 2 open."))
	if err != nil {
		return nil, err
	}
	pending, err := m.Int64ObservableGauge("ucprelay.delivery.pending",
		metric.WithDescription("Snapshots committed and waiting for the partner's acknowledgement."))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for id, b := range r.breakers {
			o.ObserveInt64(state, int64(b.State()), metric.WithAttributes(attribute.String("partner", id)))
		}
		o.ObserveInt64(pending, r.stats.pending.Load())
		return nil
	}, state, pending)
}

// Breakers returns each partner's breaker state: "closed", "half-open" or "open".
func (r *Relay) Breakers() map[string]string {
	out := make(map[string]string, len(r.breakers))
	for id, b := range r.breakers {
		out[id] = b.State().String()
	}
	return out
}

func (in instruments) add(ctx context.Context, c metric.Int64Counter, n int64, attrs ...attribute.KeyValue) {
	c.Add(ctx, n, metric.WithAttributes(attrs...))
}
