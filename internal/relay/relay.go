package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Codec turns input record values into order-domain events, and events into the
// canonical bytes the state topic keeps.
type Codec interface {
	Decode(ctx context.Context, value []byte) (orderevents.Event, error)
	EncodeSingleObject(ev orderevents.Event) ([]byte, error)
	// Canonical reports whether a value is already in the stored form (single-object
	// encoding with the current schema), so it is kept instead of encoded again.
	Canonical(value []byte) bool
}

// Sender makes one delivery attempt.
type Sender interface {
	Send(ctx context.Context, ep *webhook.Endpoint, req webhook.Request) (webhook.Response, error)
}

// Partner is where and how one partner's orders are delivered.
type Partner struct {
	// Endpoint is the partner's webhook.
	Endpoint webhook.Endpoint
	// Version is the UCP version of the bodies.
	Version ucp.Version
	// RFC3339Timestamps sends Webhook-Timestamp as RFC 3339 instead of unix seconds.
	RFC3339Timestamps bool
}

// Config configures a [Relay].
type Config struct {
	// InputTopic is the order-domain event topic (key = order id). Required.
	InputTopic string
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
	// order's old partition after the input topic grew. Default murmur2.
	Partitioner string
	// Partners by the partner id that events carry. At least one.
	Partners map[string]Partner
	// DefaultPartner receives orders whose events carry no partner id; required when
	// there is more than one partner.
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
	// an abandoned request late. Set it to the delivery attempt timeout. Default 10s.
	ResendSettle time.Duration
	// ShutdownGrace bounds how long Run waits for in-flight deliveries when it stops. Default 10s.
	ShutdownGrace time.Duration
	// Backoff spaces retries. Default webhook.DefaultBackoff().
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
	if len(c.Partners) == 0 {
		errs = append(errs, errors.New("no partners"))
	}
	if c.DefaultPartner == "" && len(c.Partners) == 1 {
		for id := range c.Partners {
			c.DefaultPartner = id
		}
	}
	if c.DefaultPartner != "" {
		if _, ok := c.Partners[c.DefaultPartner]; !ok {
			errs = append(errs, fmt.Errorf("default partner %q is not configured", c.DefaultPartner))
		}
	}
	setDefault(&c.MaxAttempts, 8)
	setDefault(&c.MaxRetryTime, 5*time.Minute)
	setDefault(&c.MaxInFlight, 64)
	setDefault(&c.MaxPending, 10000)
	setDefault(&c.Workers, runtime.GOMAXPROCS(0))
	setDefault(&c.CommitInterval, 100*time.Millisecond)
	setDefault(&c.LayoutCheckInterval, 30*time.Second)
	setDefault(&c.ShutdownGrace, 10*time.Second)
	setDefault(&c.ResendSettle, 10*time.Second)
	setDefault(&c.SessionTimeout, 45*time.Second)
	if c.MaxInFlight < 0 || c.MaxAttempts < 0 || c.MaxPending < 0 || c.Workers < 0 {
		errs = append(errs, errors.New("max attempts, max in flight, max pending and workers must be positive"))
	}
	if c.Backoff == (webhook.Backoff{}) {
		c.Backoff = webhook.DefaultBackoff()
	}
	if err := c.Backoff.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Breaker.setDefaults()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay: config: %w", err)
	}
	return nil
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
// answers do not count against the endpoint; 5xx, 429, timeouts, connection errors and
// 401/403 do.
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

func (c *Config) newBreaker(partner string) *breaker {
	b := c.Breaker
	return gobreaker.NewCircuitBreaker[webhook.Response](gobreaker.Settings{
		Name:        partner,
		MaxRequests: 1,
		Timeout:     b.OpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= b.FailuresToTrip },
		IsSuccessful: func(err error) bool {
			return err == nil || webhook.Classify(err) == webhook.Permanent
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			c.Logger.Warn("circuit breaker", "partner", name, "from", from.String(), "to", to.String())
			if c.OnBreakerChange != nil {
				c.OnBreakerChange(name, from, to)
			}
		},
	})
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
}

type counters struct {
	consumed, duplicates, forwarded, deadLettered      atomic.Int64
	snapshots, delivered, superseded, resent, restored atomic.Int64
	transactions, aborted                              atomic.Int64
	credentialFailures                                 atomic.Int64
	replayed, replaySkipped                            atomic.Int64
	pending                                            atomic.Int64
	paused                                             atomic.Bool
}

// Relay consumes order-domain events, keeps each order's state in the compacted state
// topic, and delivers every new snapshot to its partner.
//
// One loop owns the transaction: it polls for about CommitInterval, folds the records
// (orders concurrently, each order's records in sequence), stages the new state
// records, dead-letter records and forwards, adds the acknowledgements that came back
// from delivery, and commits all of it with the consumed offsets in one transaction.
// Snapshots go to the delivery queue only once their transaction committed.
type Relay struct {
	cfg      Config
	sess     *kgo.GroupTransactSession
	cl       *kgo.Client
	kafka    []kgo.Opt
	codec    Codec
	snd      Sender
	dlq      *deadletter.Writer
	log      *slog.Logger
	part     *keys.Partitioner
	q        *queue
	breakers map[string]*breaker
	stats    counters
	metrics  instruments
	lease    *lease

	// inputPartitions is the input topic's partition count, from the last layout check.
	inputPartitions atomic.Int32

	mu        sync.Mutex
	parts     map[int32]*partition // owned input partitions, by number
	paused    map[int32]bool
	restoring int
	joined    bool
	lastGen   int32 // the group generation reconcile last checked (loop goroutine only)
	fatal     error
}

// New returns a Relay. kafkaOpts carry the connection (seed brokers, TLS, SASL, client
// id); the relay adds the group, transaction and isolation settings.
func New(cfg Config, kafkaOpts []kgo.Opt, codec Codec, snd Sender) (*Relay, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if codec == nil || snd == nil {
		return nil, errors.New("relay: a codec and a sender are required")
	}
	r := &Relay{
		cfg: cfg, kafka: kafkaOpts, codec: codec, snd: snd, log: cfg.Logger,
		part: keys.MustNew(cfg.Partitioner), parts: map[int32]*partition{}, paused: map[int32]bool{},
		breakers: map[string]*breaker{}, metrics: newInstruments(),
	}
	for id := range cfg.Partners {
		r.breakers[id] = r.cfg.newBreaker(id)
	}
	r.q = newQueue(&r.cfg, snd, r.breakers, r.onOutcome)
	r.q.onAttempt = func(ctx context.Context, partner, class string) {
		r.metrics.add(ctx, r.metrics.attempts, 1, attribute.String("partner", partner), attribute.String("class", class))
	}
	r.q.onRetry = func(ctx context.Context, partner string) {
		r.metrics.add(ctx, r.metrics.retries, 1, attribute.String("partner", partner))
	}
	r.q.onCredentials = func(ctx context.Context, partner string) {
		r.stats.credentialFailures.Add(1)
		r.metrics.add(ctx, r.metrics.credentials, 1, attribute.String("partner", partner))
	}
	r.lease = newLease(cfg.SessionTimeout)
	r.q.lease = r.lease
	opts := append([]kgo.Opt{}, kafkaOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.InputTopic),
		kgo.TransactionalID(cfg.TransactionalID),
		// Short: a crashed replica's open transaction blocks the restore of its
		// partitions on the next owner until it times out.
		kgo.TransactionTimeout(10*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onRevoked),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, cfg.SessionTimeout/3)),
		kgo.WithHooks(r.lease),
	)
	if cfg.GroupProtocol == GroupConsumer {
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
	} else {
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("relay: kafka client: %w", err)
	}
	r.sess, r.cl = sess, sess.Client()
	if r.dlq, err = deadletter.NewWriter(r.cl, cfg.DeadLetterTopic, cfg.RelayVersion, cfg.Secrets...); err != nil {
		sess.Close()
		return nil, err
	}
	return r, nil
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
	}
}

// Ready reports whether the relay has joined its group and restored every partition it owns.
func (r *Relay) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.joined && r.restoring == 0 && r.fatal == nil
}

// Close releases the client when Run was never called.
func (r *Relay) Close() { r.sess.Close() }

func (r *Relay) setFatal(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fatal == nil {
		r.fatal = err
	}
}

func (r *Relay) fatalErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal
}

// Run consumes until ctx ends (it then drains and returns nil) or the relay cannot go on:
// the topic layout changed (partition counts differ: run `ucprelay state migrate`), a
// state partition could not be restored, or a transaction failed in a way the client
// cannot recover from. It leaves the group before it returns.
func (r *Relay) Run(ctx context.Context) error {
	if reg, err := r.observe(); err != nil {
		r.log.Warn("metrics: gauges not registered", "err", err)
	} else {
		defer func() { _ = reg.Unregister() }()
	}
	if err := r.checkLayout(ctx); err != nil {
		r.sess.Close()
		return err
	}
	lastCheck := time.Now()
	for {
		if err := r.fatalErr(); err != nil {
			return r.shutdown(ctx, err)
		}
		if ctx.Err() != nil {
			return r.shutdown(ctx, nil)
		}
		if time.Since(lastCheck) >= r.cfg.LayoutCheckInterval {
			lastCheck = time.Now()
			if err := r.checkLayout(ctx); err != nil && ctx.Err() == nil {
				return r.shutdown(ctx, err)
			}
		}
		if err := r.cycle(ctx); err != nil {
			if ctx.Err() != nil {
				return r.shutdown(ctx, nil)
			}
			return r.shutdown(ctx, err)
		}
	}
}

// checkLayout verifies that the input, state and dead-letter topics exist, that input
// and state have the same partition count and that the state topic is compacted.
func (r *Relay) checkLayout(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := topics.Check(cctx, topics.NewAdmin(r.cl), topics.Layout{Input: []string{r.cfg.InputTopic}, State: r.cfg.StateTopic, DeadLetter: r.cfg.DeadLetterTopic})
	if err != nil {
		if errors.Is(err, topics.ErrPartitionMismatch) {
			r.metrics.add(ctx, r.metrics.layoutMismatch, 1)
			r.log.Error("refusing to process: partition counts differ", "err", err)
		}
		return fmt.Errorf("relay: %w", err)
	}
	r.inputPartitions.Store(n)
	return nil
}

// cycle runs one transaction: poll and fold for up to CommitInterval, add the delivery
// outcomes, commit, then hand the committed snapshots to delivery.
func (r *Relay) cycle(ctx context.Context) error {
	r.reconcile(ctx)
	if err := r.sess.Begin(); err != nil {
		return fmt.Errorf("relay: begin transaction: %w", err)
	}
	b := newBatch()
	deadline := time.Now().Add(r.cfg.CommitInterval)
	for time.Now().Before(deadline) && b.size() < maxBatch {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		fs := r.sess.PollRecords(pctx, maxBatch)
		cancel()
		if fs.IsClientClosed() || ctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				r.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if err := r.process(ctx, fs, b); err != nil {
			if errors.Is(err, errNotOwned) {
				r.log.Warn("transaction aborted", "err", err)
				return r.end(ctx, b, kgo.TryAbort)
			}
			r.abort(b)
			return err
		}
	}
	r.takeOutcomes(b)
	return r.commit(ctx, b)
}

// end ends the transaction without committing: nothing produced, the input rewinds.
func (r *Relay) end(ctx context.Context, b *batch, try kgo.TransactionEndTry) error {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := r.sess.End(ectx, try)
	r.abort(b)
	if err != nil {
		return fmt.Errorf("relay: end transaction: %w", err)
	}
	return nil
}

// maxBatch bounds the records one transaction folds.
const maxBatch = 20000

// commit produces the batch's records and ends the transaction. On commit the batch is
// applied; on abort the delivery outcomes go back to be written by the next transaction,
// and the session rewinds the input to the last committed offsets.
func (r *Relay) commit(ctx context.Context, b *batch) error {
	// The end of a transaction must not be cut short by shutdown: use a context of its own.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var (
		pmu  sync.Mutex
		perr error
	)
	for _, rec := range b.records(r.cfg.StateTopic) {
		r.sess.Produce(ectx, rec, func(rec *kgo.Record, err error) {
			if err != nil {
				pmu.Lock()
				perr = cmpErr(perr, fmt.Errorf("produce to %s: %w", rec.Topic, err))
				pmu.Unlock()
			}
		})
	}
	if err := r.cl.Flush(ectx); err != nil {
		perr = cmpErr(perr, err)
	}
	try := kgo.TryCommit
	switch {
	case perr != nil:
		r.log.Error("transaction aborted: a record could not be produced", "err", perr)
		try = kgo.TryAbort
	case b.consumed == 0 && !r.lease.valid():
		// A transaction without input offsets is not fenced by the group generation: a
		// replica the coordinator removed, and that has not noticed yet, would commit
		// state records over the new owner's. Without a recent heartbeat, it waits.
		try = kgo.TryAbort
	}
	committed, err := r.sess.End(ectx, try)
	if err != nil || !committed {
		r.abort(b)
		if err != nil {
			return fmt.Errorf("relay: end transaction: %w", err)
		}
		if b.size() > 0 {
			r.log.Info("transaction aborted; the input is read again from the last commit", "records", b.consumed)
		}
		return nil
	}
	if !b.empty() {
		r.stats.transactions.Add(1)
	}
	r.apply(ectx, b)
	r.backpressure()
	return nil
}

func (r *Relay) abort(b *batch) {
	if !b.empty() {
		r.stats.aborted.Add(1)
	}
	for _, sp := range b.parts {
		sp.p.returnOutcomes(sp.outcomes)
	}
}

// apply makes a committed batch current: new state values replace the old in memory,
// new snapshots go to delivery, dead-letter hooks run. A partition revoked in between
// is skipped: its new owner restores what was committed and resends what is pending.
func (r *Relay) apply(ctx context.Context, b *batch) {
	r.stats.consumed.Add(int64(b.consumed))
	r.metrics.add(ctx, r.metrics.consumed, int64(b.consumed))
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, sp := range b.parts {
		p := r.parts[id]
		if p != sp.p {
			continue
		}
		for key, v := range sp.values {
			if v == nil {
				delete(p.orders, key)
			} else {
				p.orders[key] = v
			}
		}
		for _, j := range sp.jobs {
			r.submit(p, *j)
		}
	}
	for _, d := range b.deadLetters {
		r.stats.deadLettered.Add(1)
		r.metrics.add(ctx, r.metrics.deadLettered, 1, attribute.String("stage", string(d.Stage)), attribute.String("reason", d.Reason))
		r.log.Warn("dead-lettered", "order_id", d.OrderID, "stage", d.Stage, "reason", d.Reason,
			"source", fmt.Sprintf("%s/%d@%d", d.SourceTopic, d.SourcePartition, d.SourceOffset),
			"err", deadletter.Redact(d.Error, 300, r.cfg.Secrets...))
		if r.cfg.OnDeadLetter != nil {
			r.cfg.OnDeadLetter(d)
		}
	}
}

// submit hands a job of partition p to the delivery queue. r.mu is held.
func (r *Relay) submit(p *partition, j Job) {
	j.part = p
	p.inflight.Add(1)
	p.pending.Add(1)
	r.stats.pending.Add(1)
	r.stats.snapshots.Add(1)
	r.q.submit(p.ctx, j)
}

// onOutcome receives every job's end from the delivery queue.
func (r *Relay) onOutcome(o Outcome) {
	p := o.Job.part
	defer p.inflight.Done()
	p.pending.Add(-1)
	r.stats.pending.Add(-1)
	switch {
	case o.Superseded:
		r.stats.superseded.Add(1)
	case o.Failed && o.Reason == "":
		// Ended by revocation or shutdown: the snapshot stays pending in the state
		// topic and whoever owns the partition next resends it.
	default:
		if !o.Failed {
			r.stats.delivered.Add(1)
			r.metrics.add(context.Background(), r.metrics.delivered, 1, attribute.String("partner", o.Job.Partner))
			if !o.Job.EventTime.IsZero() {
				r.metrics.latency.Record(context.Background(), time.Since(o.Job.EventTime).Seconds(),
					metric.WithAttributes(attribute.String("partner", o.Job.Partner)))
			}
			if r.cfg.OnDelivered != nil {
				r.cfg.OnDelivered(o.Job.OrderID, o.Job.Partner, o.Status)
			}
		}
		p.addOutcome(o)
	}
}

// backpressure pauses fetching of the partitions that feed the delivery queue while it
// holds more than MaxPending snapshots, and resumes them all below half of it (P6).
func (r *Relay) backpressure() {
	pending := r.stats.pending.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case pending > int64(r.cfg.MaxPending):
		var ps []int32
		for id, p := range r.parts {
			if !r.paused[id] && p.pending.Load() > 0 {
				r.paused[id] = true
				ps = append(ps, id)
			}
		}
		if len(ps) > 0 {
			r.cl.PauseFetchPartitions(map[string][]int32{r.cfg.InputTopic: ps})
			r.stats.paused.Store(true)
			r.log.Warn("delivery backlog above bound; fetching paused", "pending", pending, "bound", r.cfg.MaxPending, "partitions", ps)
		}
	case pending <= int64(r.cfg.MaxPending)/2 && len(r.paused) > 0:
		var ps []int32
		for id := range r.paused {
			ps = append(ps, id)
		}
		clear(r.paused)
		r.cl.ResumeFetchPartitions(map[string][]int32{r.cfg.InputTopic: ps})
		r.stats.paused.Store(false)
		r.log.Info("delivery backlog drained; fetching resumed", "pending", pending, "partitions", ps)
	}
}

// shutdown stops fetching, lets in-flight deliveries finish within ShutdownGrace, writes
// their outcomes in a last transaction, and leaves the group. cause is returned.
func (r *Relay) shutdown(ctx context.Context, cause error) error {
	r.mu.Lock()
	var owned []int32
	for id := range r.parts {
		owned = append(owned, id)
	}
	r.mu.Unlock()
	r.cl.PauseFetchPartitions(map[string][]int32{r.cfg.InputTopic: owned})
	deadline := time.Now().Add(r.cfg.ShutdownGrace)
	for r.stats.pending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.sess.Begin(); err == nil {
		b := newBatch()
		r.takeOutcomes(b)
		if err := r.commit(context.WithoutCancel(ctx), b); err != nil {
			r.log.Warn("last transaction failed; unacknowledged snapshots are resent by the next owner", "err", err)
		}
	}
	r.mu.Lock()
	for _, p := range r.parts {
		p.cancel()
	}
	r.mu.Unlock()
	left := r.stats.pending.Load()
	r.sess.Close() // leaves the group (a static member keeps its place for the session timeout)
	if cause != nil {
		r.log.Error("relay stopped", "err", cause, "pending", left)
		return cause
	}
	r.log.Info("relay stopped", "pending", left, "note", "pending snapshots are resent by the partitions' next owner")
	return nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Orders returns how many orders the relay holds in memory across its partitions.
func (r *Relay) Orders() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.parts {
		n += len(p.orders)
	}
	return n
}
