package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/topics"
)

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
	partners statestore.Partners // the partners as stored orders are rendered for
	q        *queue
	breakers map[string]*breaker
	stats    counters
	metrics  instruments
	lease    *lease

	// direct are the co-partitioned inputs (InputTopic first), rekeyed the inputs
	// re-keyed into the repartition topic (inputs.go).
	direct  []string
	rekeyed map[string]bool
	// runCtx is Run's context: a re-keyed partition's hold lives as long as it.
	runCtx context.Context

	// inputPartitions is the input topic's partition count, from the last layout check.
	inputPartitions atomic.Int32
	// stateLimit bounds a state record (key and value), from the state topic's
	// max.message.bytes; 0 until read (size.go).
	stateLimit atomic.Int64
	// settingsLogged: the state and dead-letter topics' settings were logged (Run's
	// goroutine alone reads and sets it).
	settingsLogged bool
	produceFails   produceFailures   // loop goroutine only
	isolated       map[string]string // orders set aside, with the produce error (size.go); under mu

	mu     sync.Mutex
	parts  map[int32]*partition // owned units (partition p of every direct input), by number
	paused map[int32]bool
	held   map[tp]*Hold // partitions waiting for a dependency (hold.go)
	// assignedTP are the direct inputs' partitions assigned here, by unit.
	assignedTP map[int32]map[string]bool
	// lags are the records between the last one fetched and the high watermark
	// (seeded at assignment, lag.go).
	lags map[tp]int64
	// seedGen names, per assigned partition, the assignment whose seedLags may still
	// give it its lag; a revocation removes it, so an answer for a partition no longer
	// (or again, under a newer assignment) ours is dropped.
	seedGen   map[tp]uint64
	assignGen uint64
	// restoreIssues describes, per partition, a restore that waits or is retried.
	restoreIssues map[int32]string
	restores      map[int32]*restoreTask // restores in progress, by partition
	restoreSlots  chan struct{}          // bounds the restores that read at once
	restoring     int
	joined        bool
	lastGen       int32 // the group generation reconcile last checked (loop goroutine only)
	fatal         error
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
		held: map[tp]*Hold{}, assignedTP: map[int32]map[string]bool{}, lags: map[tp]int64{}, seedGen: map[tp]uint64{}, restoreIssues: map[int32]string{}, restores: map[int32]*restoreTask{}, restoreSlots: make(chan struct{}, 4), isolated: map[string]string{},
		breakers: map[string]*breaker{}, metrics: newInstruments(),
	}
	r.partners = r.cfg.partnersView()
	r.direct, r.rekeyed = cfg.directTopics(), map[string]bool{}
	for _, t := range cfg.RekeyTopics {
		r.rekeyed[t] = true
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
		// No topics yet: Run adds the input after its layout check, so a relay that was
		// built but never run does not join the group (and take partitions) at all.
		kgo.ConsumerGroup(cfg.Group),
		kgo.TransactionalID(cfg.TransactionalID),
		// Short: a crashed replica's open transaction blocks the restore of its
		// partitions on the next owner until it times out.
		kgo.TransactionTimeout(10*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A fetch in flight is not cut short when partitions resume: with the inputs
		// that are not paused caught up, it waits this long for them before the resumed
		// ones are fetched at all (franz-go's default is 5 s, and back-pressure resumes
		// often); Java's consumer waits 500 ms too.
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onRevoked),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, cfg.SessionTimeout/3)),
		kgo.WithHooks(r.lease),
		kgo.RecordPartitioner(placement{deadLetterTopic: cfg.DeadLetterTopic, part: r.part}),
	)
	opts = append(opts, r.balancers()...)
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

// fetchMaxWait bounds how long the broker holds a fetch for inputs that have no new
// records, and so how long partitions that back-pressure or a hold resumed wait for their
// first fetch.
const fetchMaxWait = 500 * time.Millisecond

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
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}
	r.runCtx = ctx
	r.cl.AddConsumeTopics(r.consumedTopics()...) // joins the group
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
			if fenced(err) {
				err = fmt.Errorf("%w (kafka.transactional_id %s): %w", ErrFenced, r.cfg.TransactionalID, err)
				r.setFatal(err) // not ready while it shuts down
			}
			return r.shutdown(ctx, err)
		}
	}
}

// ErrFenced is Run's error when another producer initialized the relay's transactional
// id: a newer process of this replica (then this one is a zombie), or a second live
// process given the same id. The relay's client cannot produce again; a new relay can.
var ErrFenced = errors.New("relay: fenced: another producer initialized this transactional id")

// fenced reports whether err says a newer producer of the transactional id fenced this
// one. Under KIP-890 part 2 a fence can also read INVALID_PRODUCER_EPOCH, and an end of
// transaction that the other producer's start aborted underneath reads
// INVALID_TXN_STATE (seen on Kafka 4.1 when the fence came during a rebalance): the relay
// never sends a transactional request out of order itself, so that too is the
// coordinator's state moved by another holder of the id.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTxnState)
}

// checkLayout verifies that the input, state and dead-letter topics exist, that the
// direct inputs and the state have the same partition count and that the state topic is
// compacted.
func (r *Relay) checkLayout(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := topics.Check(cctx, topics.NewAdmin(r.cl), topics.Layout{Input: append([]string{r.cfg.InputTopic}, r.cfg.CoTopics...), Repartition: r.cfg.RepartitionTopic, Rekeyed: r.cfg.RekeyTopics, State: r.cfg.StateTopic, DeadLetter: r.cfg.DeadLetterTopic})
	if err != nil {
		if errors.Is(err, topics.ErrPartitionMismatch) {
			r.metrics.add(ctx, r.metrics.layoutMismatch, 1)
			r.log.Error("refusing to process: partition counts differ", "err", err)
		}
		return fmt.Errorf("relay: %w", err)
	}
	r.inputPartitions.Store(n)
	return r.loadLimits(cctx)
}

// cycle runs one transaction: poll and fold for up to CommitInterval, add the delivery
// outcomes, commit, then hand the committed snapshots to delivery.
func (r *Relay) cycle(ctx context.Context) error {
	r.reconcile(ctx)
	r.feedResends()
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
		holds, err := r.process(ctx, fs, b)
		if err != nil {
			if errors.Is(err, errNotOwned) {
				r.log.Warn("transaction aborted", "err", err)
				return r.end(ctx, b, kgo.TryAbort)
			}
			r.abort(b)
			return err
		}
		if len(holds) > 0 {
			// Abort, so the held partitions rewind to their last commit with nothing half
			// done; the others redo this transaction's work in the next one.
			r.hold(holds) //nolint:contextcheck // a hold's probe lives as long as its partition (p.ctx), not this cycle
			return r.end(ctx, b, kgo.TryAbort)
		}
	}
	r.renderDeferred(ctx, b)
	r.expireOrphans(b)
	r.takeOutcomes(b)
	return r.commit(ctx, b)
}

// maxBatch bounds the records one transaction folds.
const maxBatch = 20000

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
			r.cl.PauseFetchPartitions(r.unitPartitions(ps...))
			r.stats.paused.Store(true)
			r.log.Warn("delivery backlog above bound; fetching paused", "pending", pending, "bound", r.cfg.MaxPending, "partitions", ps)
		}
	case pending <= int64(r.cfg.MaxPending)/2 && len(r.paused) > 0:
		ps := map[string][]int32{}
		for id := range r.paused {
			for _, t := range r.direct {
				if r.held[tp{t, id}] == nil {
					ps[t] = append(ps[t], id)
				}
			}
		}
		clear(r.paused)
		r.cl.ResumeFetchPartitions(ps)
		r.stats.paused.Store(false)
		r.log.Info("delivery backlog drained; fetching resumed", "pending", pending, "partitions", ps)
	}
}

// shutdown stops fetching, lets in-flight deliveries finish within ShutdownGrace, writes
// their outcomes in a last transaction, and leaves the group. cause is returned.
func (r *Relay) shutdown(ctx context.Context, cause error) error {
	r.cl.PauseFetchTopics(r.consumedTopics()...)
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
