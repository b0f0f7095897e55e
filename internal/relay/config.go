package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Partner is where and how one partner's orders are delivered.
type Partner struct {
	// Endpoint is the partner's webhook.
	Endpoint webhook.Endpoint
	// Version is the UCP version of the bodies. Default ucp.DefaultVersion.
	Version ucp.Version
	// RFC3339Timestamps sends Webhook-Timestamp as RFC 3339 instead of unix seconds.
	RFC3339Timestamps bool
	// PropagateTraceContext sends the input record's W3C trace context (traceparent,
	// tracestate) with each request. Off: a partner sees nothing of the merchant's
	// internal traces.
	PropagateTraceContext bool
}

// Config configures a [Relay].
type Config struct {
	// InputTopic is the order-domain event topic (key = order id). Required.
	InputTopic string
	// CoTopics are further input topics co-partitioned with InputTopic: the same partition
	// count, keyed by order id with the same partitioner, so that partition p of each holds
	// events of the orders of partition p. They are read directly (inputs.go).
	CoTopics []string
	// RekeyTopics are input topics keyed by something else than the order id (a shipment
	// id): the Mapper names each record's order id, and the relay re-keys the record into
	// RepartitionTopic in the transaction that consumes it (inputs.go).
	RekeyTopics []string
	// RepartitionTopic is ucprelay's own topic of re-keyed records, co-partitioned with
	// InputTopic and read like CoTopics. Required with RekeyTopics.
	RepartitionTopic string
	// StateTopic is the compacted state topic, co-partitioned with the input. Required.
	StateTopic string
	// Group is the consumer group id. Required.
	Group string
	// TransactionalID identifies this replica's transactional producer; it must be
	// unique per replica and stable across its restarts. Required.
	TransactionalID string
	// DeadLetterTopic receives what cannot be processed or delivered. Required.
	DeadLetterTopic string
	// InstanceID, when set, makes this replica a static group member (KIP-345).
	InstanceID string
	// SessionTimeout is the group session timeout. Default 45s.
	SessionTimeout time.Duration
	// GroupProtocol is "classic" (default: cooperative-sticky assignment by the client)
	// or "consumer" (KIP-848: the broker assigns, Kafka 4.0+; franz-go recommends 4.3+).
	GroupProtocol string
	// Partitioner is the producers' key partitioner, to forward events that sit in their
	// order's old partition after the input topic grew. Default murmur2 (keys.Murmur2).
	Partitioner string
	// Partners by the partner id that events carry. At least one.
	Partners map[string]Partner
	// DefaultPartner declares that every order whose events carry no partner id belongs
	// to this partner. Unset: such an order is not ours (notours.go), never sent.
	DefaultPartner string
	// MaxAttempts bounds delivery attempts per snapshot. Default 8.
	MaxAttempts int
	// MaxRetryTime bounds the time one snapshot spends on attempts and backoff, not
	// counting waits on a down endpoint. Default 5m.
	MaxRetryTime time.Duration
	// MaxInFlight bounds the POSTs in flight at once, across orders. Default 64.
	MaxInFlight int
	// MaxPending bounds the orders with a snapshot waiting for delivery; above it the
	// partitions that feed them stop fetching until half of it is reached (P6). Default 10000.
	MaxPending int
	// Workers bounds the orders folded at once. Default GOMAXPROCS.
	Workers int
	// CommitInterval is how long a transaction collects work before it commits. Default 100ms.
	CommitInterval time.Duration
	// LayoutCheckInterval is how often the topic layout is checked again. Default 30s.
	LayoutCheckInterval time.Duration
	// ResendSettle delays the resend of a snapshot found pending when a partition is
	// restored: the previous owner may have had it in flight, and a partner may process
	// an abandoned request late. Set it to the delivery attempt timeout. Default
	// webhook.DefaultAttemptTimeout.
	ResendSettle time.Duration
	// Mapper, when set, maps the input records of the merchant's own schemas to events
	// (internal/mapping); nil: the input carries ucprelay's own event schema.
	Mapper RecordMapper
	// MaxClockSkew bounds how far a freshness stamp may run ahead of the clock. A stamp
	// strictly increases per order (P2), so an order with more than one snapshot a second
	// gets stamps ahead of the clock; at the bound its next snapshot waits, its events
	// stored, until the clock allows a later stamp (clock.go). Default 5m.
	MaxClockSkew time.Duration
	// OrphanAfter is how long an order's events wait for its placement before they are
	// dead-lettered as orphan and the order's state removed (orphans.go). 0: they wait
	// forever (ucprelay's configuration, state.orphan_after, defaults it to 7 days).
	OrphanAfter time.Duration
	// RestoreStableTimeout bounds how long a restore waits for an open transaction on the
	// state partition to end (a crashed owner's ends by the transaction timeout, 10s);
	// past it the restore is reported in /readyz and retried. Default 30s.
	RestoreStableTimeout time.Duration
	// ShutdownGrace bounds how long Run waits for in-flight deliveries when it stops. Default 10s.
	ShutdownGrace time.Duration
	// Backoff spaces retries. Each zero field takes its default (webhook.DefaultBackoff).
	Backoff webhook.Backoff
	// RelayVersion goes into dead-letter records.
	RelayVersion string
	// Secrets are removed from every error text written to the dead-letter topic.
	Secrets []string
	// Logger receives the relay's logs. Default: discard.
	Logger *slog.Logger
	// Breaker configures the circuit breaker of each partner endpoint.
	Breaker BreakerConfig
	// OnBreakerChange, when set, is called when a partner's breaker changes state.
	OnBreakerChange func(partner string, from, to gobreaker.State)
	// OnDelivered, when set, is called after each acknowledged delivery (demo, tests).
	OnDelivered func(orderID, partner string, status int)
	// OnDeadLetter, when set, is called for each dead-letter record once its transaction committed.
	OnDeadLetter func(deadletter.Record)
}

func (c *Config) validate() error {
	var errs []error
	for name, v := range map[string]string{"input topic": c.InputTopic, "state topic": c.StateTopic, "consumer group": c.Group,
		"transactional id": c.TransactionalID, "dead-letter topic": c.DeadLetterTopic} {
		if v == "" {
			errs = append(errs, fmt.Errorf("no %s", name))
		}
	}
	if _, err := keys.New(c.Partitioner); err != nil {
		errs = append(errs, err)
	}
	switch c.GroupProtocol {
	case "", GroupClassic, GroupConsumer:
	default:
		errs = append(errs, fmt.Errorf("group protocol %q: want %s or %s", c.GroupProtocol, GroupClassic, GroupConsumer))
	}
	if err := c.validateInputs(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Partners) == 0 {
		errs = append(errs, errors.New("no partners"))
	}
	if c.DefaultPartner != "" {
		if _, ok := c.Partners[c.DefaultPartner]; !ok {
			errs = append(errs, fmt.Errorf("default partner %q is not configured", c.DefaultPartner))
		}
	}
	c.SetDefaults()
	if c.MaxInFlight < 0 || c.MaxAttempts < 0 || c.MaxPending < 0 || c.Workers < 0 {
		errs = append(errs, errors.New("max attempts, max in flight, max pending and workers must be positive"))
	}
	if err := c.Backoff.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay: config: %w", err)
	}
	return nil
}

// SetDefaults sets every unset (zero) field that has a default to it: the defaults stated
// on the fields are defined here and nowhere else. New applies them; `ucprelay config
// check` shows them.
func (c *Config) SetDefaults() {
	setDefault(&c.SessionTimeout, 45*time.Second)
	setDefault(&c.Partitioner, keys.Murmur2)
	setDefault(&c.MaxAttempts, 8)
	setDefault(&c.MaxRetryTime, 5*time.Minute)
	setDefault(&c.MaxInFlight, 64)
	setDefault(&c.MaxPending, 10000)
	setDefault(&c.Workers, runtime.GOMAXPROCS(0))
	setDefault(&c.CommitInterval, 100*time.Millisecond)
	setDefault(&c.LayoutCheckInterval, 30*time.Second)
	setDefault(&c.ShutdownGrace, 10*time.Second)
	setDefault(&c.ResendSettle, webhook.DefaultAttemptTimeout)
	setDefault(&c.RestoreStableTimeout, 30*time.Second)
	setDefault(&c.MaxClockSkew, 5*time.Minute)
	c.Backoff = c.Backoff.WithDefaults()
	partners := make(map[string]Partner, len(c.Partners)) // the caller's map stays as it was
	for id, p := range c.Partners {
		setDefault(&p.Version, ucp.DefaultVersion)
		partners[id] = p
	}
	c.Partners = partners
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Breaker.setDefaults()
}

// Group protocols.
const (
	GroupClassic  = "classic"
	GroupConsumer = "consumer"
)

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// BreakerConfig configures the circuit breaker of each partner endpoint. Permanent 4xx
// answers and 3xx (never followed) do not count against the endpoint; 5xx, 429,
// timeouts, connection errors and 401/403 do.
type BreakerConfig struct {
	// FailuresToTrip opens the breaker after this many consecutive failures. Default 5.
	FailuresToTrip uint32
	// OpenFor is how long the breaker stays open before it lets one probe through. Default 10s.
	OpenFor time.Duration
	// Hold is how long a delivery waits on an open breaker before it is dead-lettered
	// with reason circuit_open. Default 10m.
	Hold time.Duration
	// Poll is how often a waiting delivery looks at the breaker again. Default 250ms.
	Poll time.Duration
}

func (b *BreakerConfig) setDefaults() {
	setDefault(&b.FailuresToTrip, 5)
	setDefault(&b.OpenFor, 10*time.Second)
	setDefault(&b.Hold, 10*time.Minute)
	setDefault(&b.Poll, 250*time.Millisecond)
}

// partnersView is the partners as the stored-order view resolves them: a partner that is
// not configured cannot be rendered for (unknown_partner).
func (c *Config) partnersView() statestore.Partners {
	return statestore.Partners{Default: c.DefaultPartner, Version: func(id string) (ucp.Version, error) {
		p, ok := c.Partners[id]
		if !ok {
			return "", unknownPartnerError{id}
		}
		return p.Version, nil
	}}
}

// unknownPartnerError is a snapshot for a partner that is not configured.
type unknownPartnerError struct{ partner string }

func (e unknownPartnerError) Error() string {
	return fmt.Sprintf("order's partner %q is not configured", e.partner)
}

func (unknownPartnerError) Reason() string { return ReasonUnknownPartner }
