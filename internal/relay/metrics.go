package relay

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

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
	attempts       metric.Int64Counter
	retries        metric.Int64Counter
	holds          metric.Int64Counter
	internalErrors metric.Int64Counter
	parked         metric.Int64Counter
	dropped        metric.Int64Counter
	unmatched      metric.Int64Counter
	notOurs        metric.Int64Counter
	orphansExpired metric.Int64Counter
	latency        metric.Float64Histogram
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
	in.attempts, _ = m.Int64Counter("ucprelay.delivery.attempts",
		metric.WithDescription("POSTs to partners by partner and answer class (2xx, 4xx, 5xx, transport)."))
	in.retries, _ = m.Int64Counter("ucprelay.delivery.retries",
		metric.WithDescription("Delivery retries scheduled after a retryable failure, by partner."))
	in.holds, _ = m.Int64Counter("ucprelay.partition.holds",
		metric.WithDescription("Times a partition was held because its next record needs a dependency that is down (the schema registry), by reason."))
	in.internalErrors, _ = m.Int64Counter("ucprelay.internal_errors",
		metric.WithDescription("Bugs contained: panics recovered while folding an order or delivering a snapshot; alert on any."))
	in.parked, _ = m.Int64Counter("ucprelay.state.parked",
		metric.WithDescription("Orders parked because their stored state cannot be read, by reason."))
	in.dropped, _ = m.Int64Counter("ucprelay.state.dropped",
		metric.WithDescription("Orders removed from the state at an operator's request (`ucprelay state drop`)."))
	in.unmatched, _ = m.Int64Counter("ucprelay.mapping.unmatched",
		metric.WithDescription("Input records no mapping rule matched, skipped because their topic ignores them (mapping unmatched: ignore), by topic and record name."))
	in.notOurs, _ = m.Int64Counter("ucprelay.not_ours.records",
		metric.WithDescription("Input records of orders that are not the relay's (their placement names no configured partner): skipped, never sent, by topic."))
	in.orphansExpired, _ = m.Int64Counter("ucprelay.orphans.expired",
		metric.WithDescription("Orders whose events waited state.orphan_after for a placement that never came: dead-lettered as orphan, state removed."))
	in.latency, _ = m.Float64Histogram("ucprelay.delivery.latency", metric.WithUnit("s"),
		metric.WithDescription("From the newest input event's Kafka timestamp to the partner's 2xx, by partner."))
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
	lag, err := m.Int64ObservableGauge("ucprelay.consumer.lag",
		metric.WithDescription("Input records not yet fetched, by partition (high watermark minus the next offset)."))
	if err != nil {
		return nil, err
	}
	restoring, err := m.Int64ObservableGauge("ucprelay.restore.partitions",
		metric.WithDescription("Partitions assigned and still restoring their state."))
	if err != nil {
		return nil, err
	}
	held, err := m.Int64ObservableGauge("ucprelay.partitions.held",
		metric.WithDescription("Owned partitions held until a dependency answers (see /readyz for which and why)."))
	if err != nil {
		return nil, err
	}
	orphans, err := m.Int64ObservableGauge("ucprelay.orphans.held",
		metric.WithDescription("Orders of owned partitions whose events wait for their placement, by partition."))
	if err != nil {
		return nil, err
	}
	orphanAge, err := m.Float64ObservableGauge("ucprelay.orphans.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("How long the longest-waiting orphan of each owned partition waits for its placement (expires at state.orphan_after)."))
	if err != nil {
		return nil, err
	}
	parkedNow, err := m.Int64ObservableGauge("ucprelay.state.parked_orders",
		metric.WithDescription("Orders of owned partitions parked because their stored state cannot be read (`ucprelay state inspect`)."))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for id, b := range r.breakers {
			o.ObserveInt64(state, int64(b.State()), metric.WithAttributes(attribute.String("partner", id)))
		}
		o.ObserveInt64(pending, r.stats.pending.Load())
		r.mu.Lock()
		defer r.mu.Unlock()
		for k, n := range r.lags {
			o.ObserveInt64(lag, n, metric.WithAttributes(attribute.String("topic", k.topic), attribute.Int("partition", int(k.partition))))
		}
		o.ObserveInt64(restoring, int64(r.restoring))
		o.ObserveInt64(held, int64(len(r.held)))
		n := 0
		now := time.Now()
		for id, p := range r.parts {
			n += len(p.parked)
			at := metric.WithAttributes(attribute.Int("partition", int(id)))
			o.ObserveInt64(orphans, int64(len(p.orphans)), at)
			age := 0.0
			if oldest := oldestOrphan(p); !oldest.IsZero() {
				age = now.Sub(oldest).Seconds()
			}
			o.ObserveFloat64(orphanAge, age, at)
		}
		o.ObserveInt64(parkedNow, int64(n))
		return nil
	}, state, pending, lag, restoring, held, orphans, orphanAge, parkedNow)
}

// Health is the relay's state for a readiness probe and operators.
type Health struct {
	// Ready: joined the group, every owned partition restored, the coordinator answered
	// within the lease (the broker is reachable), and no fatal error.
	Ready bool `json:"ready"`
	// Joined is true once the group assigned partitions at least once.
	Joined bool `json:"joined"`
	// BrokerReachable: a group heartbeat came back within two thirds of the session timeout.
	BrokerReachable bool    `json:"broker_reachable"`
	Partitions      []int32 `json:"partitions"`
	Restoring       int     `json:"restoring"`
	Pending         int64   `json:"pending_deliveries"`
	Paused          bool    `json:"fetching_paused"`
	// Breakers maps each partner to its breaker state; an open breaker does not make the
	// relay unready (deliveries wait, P6), it is reported for operators.
	Breakers map[string]string `json:"breakers"`
	// Held lists partitions waiting for a dependency (the schema registry); the others
	// flow, so a hold does not make the relay unready.
	Held []Hold `json:"held_partitions,omitempty"`
	// Parked counts orders whose stored state cannot be read (`ucprelay state inspect`).
	Parked int `json:"parked_orders"`
	// Restore describes restores that are waiting or failed and being retried.
	Restore []string `json:"restore,omitempty"`
	Problem string   `json:"problem,omitempty"`
}

// Health returns the relay's state now.
func (r *Relay) Health() Health {
	h := Health{BrokerReachable: r.lease.valid(), Breakers: r.Breakers(), Pending: r.stats.pending.Load(), Paused: r.stats.paused.Load()}
	r.mu.Lock()
	h.Joined, h.Restoring = r.joined, r.restoring
	for id, p := range r.parts {
		h.Partitions = append(h.Partitions, id)
		h.Parked += len(p.parked)
	}
	for _, hd := range r.held {
		h.Held = append(h.Held, *hd)
	}
	slices.SortFunc(h.Held, func(a, b Hold) int { return int(a.Partition - b.Partition) })
	for _, s := range r.restoreIssues {
		h.Restore = append(h.Restore, s)
	}
	slices.Sort(h.Restore)
	fatal := r.fatal
	r.mu.Unlock()
	slices.Sort(h.Partitions)
	switch {
	case fatal != nil:
		h.Problem = fatal.Error()
	case !h.Joined:
		h.Problem = "not joined to the consumer group yet"
	case h.Restoring > 0:
		h.Problem = "restoring partition state"
	case !h.BrokerReachable:
		h.Problem = "no group heartbeat answered within the lease: broker or coordinator unreachable"
	}
	h.Ready = h.Problem == ""
	return h
}

// Breakers returns each partner's breaker state: "closed", "half-open" or "open".
func (r *Relay) Breakers() map[string]string {
	out := make(map[string]string, len(r.breakers))
	for id, b := range r.breakers {
		out[id] = b.State().String()
	}
	return out
}

func reasonAttr(reason string) attribute.KeyValue { return attribute.String("reason", reason) }

func (in instruments) add(ctx context.Context, c metric.Int64Counter, n int64, attrs ...attribute.KeyValue) {
	c.Add(ctx, n, metric.WithAttributes(attrs...))
}

// Stats counts what a relay did since it started.
type Stats struct {
	Consumed, Duplicates, Forwarded, DeadLettered      int64
	Snapshots, Delivered, Superseded, Resent, Restored int64
	Transactions, Aborted                              int64
	CredentialFailures                                 int64
	// Replayed counts dead-letter replays that resent an order's current snapshot;
	// ReplaySkipped those that found it acknowledged or on its way already.
	Replayed, ReplaySkipped int64
	Pending                 int64
	Paused                  bool
	// Holds counts partitions held for a dependency; InternalErrors bugs contained;
	// Parked orders parked because their state cannot be read.
	Holds, InternalErrors, Parked int64
	// Deferred counts snapshots that waited for the clock (their stamp at MaxClockSkew).
	Deferred int64
	// Unmatched counts input records no mapping rule matched, on topics that ignore them.
	Unmatched int64
	// NotOurs counts the records of orders that are not the relay's (skipped, never
	// sent); NotOursOrders the orders found not ours.
	NotOurs, NotOursOrders int64
	// Rekeyed counts the records of re-keyed inputs forwarded to the repartition topic
	// (their order's unit owned elsewhere); the others fold where they are read.
	Rekeyed int64
	// OrphansExpired counts the orders whose events waited OrphanAfter for a placement.
	OrphansExpired int64
}

type counters struct {
	consumed, duplicates, forwarded, deadLettered      atomic.Int64
	snapshots, delivered, superseded, resent, restored atomic.Int64
	transactions, aborted                              atomic.Int64
	credentialFailures                                 atomic.Int64
	replayed, replaySkipped                            atomic.Int64
	pending                                            atomic.Int64
	paused                                             atomic.Bool
	holds, internalErrors, parked, dropped             atomic.Int64
	deferred, unmatched, notOurs, notOursOrders        atomic.Int64
	rekeyed, orphansExpired                            atomic.Int64
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	c := &r.stats
	return Stats{
		Consumed: c.consumed.Load(), Duplicates: c.duplicates.Load(), Forwarded: c.forwarded.Load(),
		DeadLettered: c.deadLettered.Load(), Snapshots: c.snapshots.Load(), Delivered: c.delivered.Load(),
		Superseded: c.superseded.Load(), Resent: c.resent.Load(), Restored: c.restored.Load(),
		Transactions: c.transactions.Load(), Aborted: c.aborted.Load(), CredentialFailures: c.credentialFailures.Load(),
		Replayed: c.replayed.Load(), ReplaySkipped: c.replaySkipped.Load(), Pending: c.pending.Load(), Paused: c.paused.Load(),
		Holds: c.holds.Load(), InternalErrors: c.internalErrors.Load(), Parked: c.parked.Load(),
		Deferred: c.deferred.Load(), Unmatched: c.unmatched.Load(), NotOurs: c.notOurs.Load(), NotOursOrders: c.notOursOrders.Load(),
		Rekeyed: c.rekeyed.Load(), OrphansExpired: c.orphansExpired.Load(),
	}
}
