package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	// Backoff spaces retries. Default webhook.DefaultBackoff().
	Backoff webhook.Backoff
	// RelayVersion goes into dead-letter records.
	RelayVersion string
	// Secrets are removed from every error text written to the dead-letter topic.
	Secrets []string
	// Logger receives the relay's logs. Default: discard.
	Logger *slog.Logger
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
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay: config: %w", err)
	}
	return nil
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
	r.proc = &processor{cfg: &r.cfg, dec: dec, snd: snd, dlq: dlq, log: cfg.Logger}
	return r, nil
}

// Run consumes until ctx ends or a record can neither be delivered nor dead-lettered, in
// which case it returns the error without committing that record's offset. It closes the
// client (leaving the group) before it returns.
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
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			first error
		)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			wg.Go(func() {
				for _, rec := range p.Records {
					if err := r.proc.process(ctx, rec); err != nil {
						mu.Lock()
						first = cmpErr(first, err)
						mu.Unlock()
						return
					}
				}
			})
		})
		wg.Wait()
		if first != nil {
			r.cl.AllowRebalance()
			if ctx.Err() != nil {
				return nil // shutting down: the uncommitted records are read again on restart
			}
			return first
		}
		if err := r.cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("commit failed; records will be processed again", "err", err)
		}
		r.cl.AllowRebalance()
	}
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
