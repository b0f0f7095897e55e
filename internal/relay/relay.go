package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Decoder turns an input record's value into an order-domain event.
type Decoder interface {
	Decode(ctx context.Context, value []byte) (orderevents.Event, error)
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
}

// Config configures a [Relay].
type Config struct {
	// InputTopics are the order-domain event topics. Required.
	InputTopics []string
	// Group is the consumer group id. Required.
	Group string
	// DeadLetterTopic receives what cannot be processed or delivered. Required.
	DeadLetterTopic string
	// Partners by the partner id that events carry. At least one.
	Partners map[string]Partner
	// DefaultPartner receives orders whose events carry no partner id; required when
	// there is more than one partner.
	DefaultPartner string
	// MaxAttempts bounds delivery attempts per snapshot. Default 8.
	MaxAttempts int
	// MaxInFlight bounds the POSTs in flight at once, across orders. Default 64.
	MaxInFlight int
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
	// OnDeadLetter, when set, is called after each durable dead-letter write.
	OnDeadLetter func(deadletter.Record)
}

func (c *Config) validate() error {
	var errs []error
	if len(c.InputTopics) == 0 {
		errs = append(errs, errors.New("no input topics"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("no consumer group"))
	}
	if c.DeadLetterTopic == "" {
		errs = append(errs, errors.New("no dead-letter topic"))
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
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 64
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, errors.New("max in flight must be positive"))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, errors.New("max attempts must be positive"))
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
	if b.FailuresToTrip == 0 {
		b.FailuresToTrip = 5
	}
	if b.OpenFor == 0 {
		b.OpenFor = 10 * time.Second
	}
	if b.Hold == 0 {
		b.Hold = 10 * time.Minute
	}
	if b.Poll == 0 {
		b.Poll = 250 * time.Millisecond
	}
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

// Relay consumes, folds, delivers and dead-letters.
type Relay struct {
	cfg  Config
	cl   *kgo.Client
	dec  Decoder
	snd  Sender
	dlq  *deadletter.Writer
	log  *slog.Logger
	proc *processor
	// breakers by partner; they outlive each poll's delivery queue.
	breakers map[string]*breaker
}

// New returns a Relay. kafkaOpts carry the connection (seed brokers, TLS, SASL, client
// id); the relay adds the consumer group settings.
func New(cfg Config, kafkaOpts []kgo.Opt, dec Decoder, snd Sender) (*Relay, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if dec == nil || snd == nil {
		return nil, errors.New("relay: a decoder and a sender are required")
	}
	opts := append([]kgo.Opt{}, kafkaOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.InputTopics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("relay: kafka client: %w", err)
	}
	dlq, err := deadletter.NewWriter(cl, cfg.DeadLetterTopic, cfg.RelayVersion, cfg.Secrets...)
	if err != nil {
		cl.Close()
		return nil, err
	}
	r := &Relay{cfg: cfg, cl: cl, dec: dec, snd: snd, dlq: dlq, log: cfg.Logger}
	r.proc = &processor{cfg: &r.cfg, dec: dec, dlq: dlq, log: cfg.Logger}
	r.breakers = map[string]*breaker{}
	for id := range cfg.Partners {
		r.breakers[id] = r.cfg.newBreaker(id)
	}
	return r, nil
}

// Run consumes until ctx ends or a record can neither be delivered nor dead-lettered, in
// which case it returns the error without committing that record's offset. It closes the
// client (leaving the group) before it returns.
//
// Each poll: the records of each partition are turned into delivery jobs in order
// (partitions concurrently), the jobs are delivered with one POST in flight per order and
// latest-wins coalescing, failures are dead-lettered, and only then are the poll's
// offsets committed.
func (r *Relay) Run(ctx context.Context) error {
	defer r.cl.Close()
	for {
		fetches := r.cl.PollRecords(ctx, 1000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			r.cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			r.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		err := r.handle(ctx, fetches)
		if err != nil {
			r.cl.AllowRebalance()
			if ctx.Err() != nil {
				return nil // shutting down: the uncommitted records are read again on restart
			}
			return err
		}
		if err := r.cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("commit failed; records will be processed again", "err", err)
		}
		r.cl.AllowRebalance()
	}
}

// handle takes every record of a poll to an end: delivered, superseded by a newer
// snapshot of its order, or durably dead-lettered.
func (r *Relay) handle(ctx context.Context, fetches kgo.Fetches) error {
	var (
		mu       sync.Mutex
		first    error
		failures []Outcome
	)
	fail := func(err error) {
		mu.Lock()
		first = cmpErr(first, err)
		mu.Unlock()
	}
	q := newQueue(&r.cfg, r.snd, r.breakers, func(o Outcome) {
		switch {
		case o.Failed && o.Reason == "":
			fail(o.Err) // ended by shutdown
		case o.Failed:
			mu.Lock()
			failures = append(failures, o)
			mu.Unlock()
		case !o.Superseded && r.cfg.OnDelivered != nil:
			r.cfg.OnDelivered(o.Job.OrderID, o.Job.Partner, o.Status)
		}
	})
	var wg sync.WaitGroup
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		wg.Go(func() {
			for _, rec := range p.Records {
				job, err := r.proc.process(ctx, rec)
				if err != nil {
					fail(err)
					return
				}
				if job != nil {
					q.submit(ctx, *job)
				}
			}
		})
	})
	wg.Wait()
	q.wait()
	if first != nil {
		return first
	}
	for _, o := range failures {
		if err := r.proc.deadLetterOutcome(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Close releases the client when Run was never called.
func (r *Relay) Close() { r.cl.Close() }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
