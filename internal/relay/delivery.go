package relay

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ucprelay/ucprelay/internal/wait"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Sender makes one delivery attempt.
type Sender interface {
	Send(ctx context.Context, ep *webhook.Endpoint, req webhook.Request) (webhook.Response, error)
}

// Job is one snapshot of one order to deliver.
type Job struct {
	OrderID   string
	Partner   string
	Version   int64 // snapshot version; a higher one replaces a queued lower one
	WebhookID string
	Stamp     time.Time // the freshness stamp of the envelope
	Digest    []byte    // the body's digest (statestore.BodyDigest), recorded with the delivery
	// Trace is the input record's span context, which the delivery's spans continue;
	// with PropagateTrace (the partner's propagate_trace_context) the POST carries it.
	Trace          trace.SpanContext
	PropagateTrace bool
	// NotBefore delays the first attempt: a snapshot found pending after a restore may
	// still be in flight from the previous owner, whose request the partner may process
	// late; a newer snapshot must not overtake it.
	NotBefore time.Time
	Request   webhook.Request
	// Source locates the input record that produced the snapshot, for dead-lettering.
	Source Source
	// EventTime is when the newest input record of the snapshot was produced: the start
	// of the event-to-acknowledgement latency. Zero for resends after a restore.
	EventTime time.Time

	part *partition // the owning partition, for the outcome
}

// Source locates an input record.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Outcome is how a job ended.
type Outcome struct {
	Job Job
	// Status is the partner's 2xx answer when delivered.
	Status int
	// Superseded: a newer snapshot of the order replaced this one before it was sent, or
	// while it waited for a retry (P2).
	Superseded bool
	// Failed: the job will not be delivered; Reason, Err, Attempts, First and Last say why.
	Failed       bool
	Reason       string
	Err          error
	HTTPStatus   int
	Attempts     int
	First, Last  time.Time
	WaitedOnOpen bool
	// Abandoned is when the client gave up the last attempt that got no answer (timeout,
	// reset): the partner may still process that request, so the order's next snapshot
	// waits ResendSettle after it. Counted from the end, not the start: after a timeout a
	// settle counted from the start would already be over.
	Abandoned time.Time

	lastErr error // the last answer or failure from the partner itself
}

// queue delivers jobs with at most one POST in flight per order and latest-wins
// coalescing: a job submitted while an earlier one of the same order is in flight waits,
// and replaces any job of that order already waiting (P2). Different orders proceed
// concurrently up to the queue's width (P5). Retries, backoff and the partner's circuit
// breaker are applied per job.
type queue struct {
	cfg      *Config
	lease    *lease // nil: deliveries need no group membership (tests of the queue alone)
	snd      Sender
	breakers map[string]*breaker
	log      *slog.Logger
	slots    chan struct{} // width: concurrent POSTs
	done     func(Outcome)

	mu     sync.Mutex
	orders map[string]*orderLine
	// quiet holds, per order, until when its next snapshot must wait: an attempt got no
	// answer, and the partner may still process that request late.
	quiet map[string]time.Time
	// credAlerted rate-limits the credential alert per partner.
	credAlerted   map[string]time.Time
	onCredentials func(ctx context.Context, partner string)
	onRetry       func(ctx context.Context, partner string)
	onAttempt     func(ctx context.Context, partner, class string)
	wg            sync.WaitGroup
}

// orderLine is an order's position in the queue: the job in flight and the one waiting.
type orderLine struct {
	waiting *Job
}

// breaker guards one partner endpoint.
type breaker = gobreaker.CircuitBreaker[webhook.Response]

func (c *Config) newBreaker(partner string) *breaker {
	b := c.Breaker
	return gobreaker.NewCircuitBreaker[webhook.Response](gobreaker.Settings{
		Name:        partner,
		MaxRequests: 1,
		Timeout:     b.OpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= b.FailuresToTrip },
		IsSuccessful: func(err error) bool {
			// A permanent answer (a 4xx, a never-followed 3xx) is the partner up and
			// answering: no outage to trip on.
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

func newQueue(cfg *Config, snd Sender, breakers map[string]*breaker, done func(Outcome)) *queue {
	return &queue{
		cfg: cfg, snd: snd, breakers: breakers, log: cfg.Logger, done: done,
		slots: make(chan struct{}, cfg.MaxInFlight), orders: map[string]*orderLine{}, quiet: map[string]time.Time{},
		credAlerted: map[string]time.Time{},
	}
}

// submit queues a job. ctx bounds the job's delivery; done is called once per job.
func (q *queue) submit(ctx context.Context, j Job) {
	q.mu.Lock()
	if line, busy := q.orders[j.OrderID]; busy {
		if w := line.waiting; w != nil {
			if w.Version > j.Version {
				q.mu.Unlock()
				q.done(Outcome{Job: j, Superseded: true})
				return
			}
			defer q.done(Outcome{Job: *w, Superseded: true})
		}
		line.waiting = &j
		q.mu.Unlock()
		return
	}
	q.orders[j.OrderID] = &orderLine{}
	q.wg.Add(1)
	q.mu.Unlock()
	go q.run(ctx, j)
}

// run delivers j, then whatever job of the same order waits, until none does.
func (q *queue) run(ctx context.Context, j Job) {
	defer q.wg.Done()
	for {
		if t := q.quietUntil(j.OrderID); t.After(j.NotBefore) {
			j.NotBefore = t
		}
		if d := time.Until(j.NotBefore); d > 0 {
			if wait.Sleep(ctx, d) != nil {
				q.finishOrder(ctx, j)
				return
			}
		}
		select {
		case q.slots <- struct{}{}:
		case <-ctx.Done():
			q.finishOrder(ctx, j)
			return
		}
		out := q.deliver(ctx, j)
		<-q.slots
		q.done(out)
		q.mu.Lock()
		if !out.Abandoned.IsZero() {
			q.quiet[j.OrderID] = out.Abandoned.Add(q.cfg.ResendSettle)
		}
		line := q.orders[j.OrderID]
		next := line.waiting
		line.waiting = nil
		if next == nil {
			delete(q.orders, j.OrderID)
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		j = *next
	}
}

// quietUntil returns until when the order's next attempt must wait, forgetting past times.
func (q *queue) quietUntil(order string) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.quiet[order]
	if ok && !t.After(time.Now()) {
		delete(q.quiet, order)
		if len(q.quiet) > 10000 {
			now := time.Now()
			for o, u := range q.quiet {
				if !u.After(now) {
					delete(q.quiet, o)
				}
			}
		}
		return time.Time{}
	}
	return t
}

// finishOrder reports j and any waiting job as failed by shutdown.
func (q *queue) finishOrder(ctx context.Context, j Job) {
	q.mu.Lock()
	line := q.orders[j.OrderID]
	next := line.waiting
	delete(q.orders, j.OrderID)
	q.mu.Unlock()
	q.done(Outcome{Job: j, Failed: true, Err: ctx.Err()})
	if next != nil {
		q.done(Outcome{Job: *next, Failed: true, Err: ctx.Err()})
	}
}

// wait returns when every submitted job has reported its outcome.
func (q *queue) wait() { q.wg.Wait() }

// deliver makes the attempts of one job: retries with backoff, honouring Retry-After,
// within the attempt budget (MaxAttempts) and the time budget (MaxRetryTime). While the
// partner's endpoint is down (breaker open, or failing while it probes) or rejects our
// credentials (401/403, endpoint-wide), the job waits without spending either budget
// (P6), up to the hold time; then it fails with reason circuit_open or
// credentials_rejected.
func (q *queue) deliver(ctx context.Context, j Job) Outcome {
	out := Outcome{Job: j}
	partner := q.cfg.Partners[j.Partner]
	cb := q.breakers[j.Partner]
	log := q.log.With("order_id", j.OrderID, "partner", j.Partner)
	var (
		waitingSince time.Time     // when the current wait on the endpoint began
		spent        time.Duration // time spent on attempts and backoff, not on waits
		credRetries  int           // credential failures in a row, to space their probes
		tries        int           // attempts that spent the retry budget
		err          error
	)
	fail := func() Outcome { out.Failed, out.Err = true, ctx.Err(); return out }
	for tries < q.cfg.MaxAttempts && spent < q.cfg.MaxRetryTime {
		if q.newerWaiting(j.OrderID) {
			// A newer snapshot of the order arrived while this one waited to be retried:
			// send that one instead (P2, latest wins); it carries the whole order.
			out.Superseded = true
			return out
		}
		if q.lease != nil && q.lease.wait(ctx) != nil {
			return fail()
		}
		var resp webhook.Response
		started := time.Now()
		resp, err = cb.Execute(func() (webhook.Response, error) { return q.attempt(ctx, &partner.Endpoint, j, out.Attempts+1) })
		q.countAttempt(ctx, j.Partner, err)
		var te *webhook.TransportError
		if errors.As(err, &te) {
			out.Abandoned = time.Now()
		}
		if ctx.Err() != nil {
			return fail()
		}
		class := webhook.Classify(err)
		rejected := errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
		if rejected || class == webhook.Credentials || class == webhook.Retryable && cb.State() != gobreaker.StateClosed {
			if !rejected {
				out.Attempts++
				out.Last = time.Now()
				if out.First.IsZero() {
					out.First = out.Last
				}
				out.HTTPStatus = statusOf(err)
				out.lastErr = err
			}
			if waitingSince.IsZero() {
				waitingSince = time.Now()
				log.Warn("partner endpoint down; delivery waits", "hold", q.cfg.Breaker.Hold, "err", err)
			}
			out.WaitedOnOpen = true
			if time.Since(waitingSince) >= q.cfg.Breaker.Hold {
				break
			}
			pause := q.cfg.Breaker.Poll
			if class == webhook.Credentials {
				// Feed the breaker, but do not hammer the partner with a key it refuses
				// while the breaker still counts up to its trip.
				q.alertCredentials(ctx, j.Partner, err)
				pause = max(pause, q.cfg.Backoff.Delay(credRetries, nil))
				credRetries++
			}
			if wait.Sleep(ctx, pause) != nil {
				return fail()
			}
			continue
		}
		waitingSince, credRetries = time.Time{}, 0
		out.Attempts++
		tries++
		if err == nil {
			out.Status = resp.Status
			log.Debug("delivered", "status", resp.Status, "attempts", out.Attempts)
			return out
		}
		out.Last = time.Now()
		if out.First.IsZero() {
			out.First = out.Last
		}
		out.HTTPStatus, out.lastErr = statusOf(err), err
		spent += out.Last.Sub(started)
		if class == webhook.Permanent {
			break
		}
		if tries < q.cfg.MaxAttempts {
			d := min(q.cfg.Backoff.Delay(tries-1, err), max(q.cfg.MaxRetryTime-spent, 0))
			log.Info("delivery failed; retrying", "attempt", out.Attempts, "in", d, "err", err)
			if q.onRetry != nil {
				q.onRetry(ctx, j.Partner)
			}
			if wait.Sleep(ctx, d) != nil {
				return fail()
			}
			spent += d
		}
	}
	out.Failed, out.Err = true, out.lastErr
	if out.Err == nil {
		out.Err = err
	}
	switch {
	case !waitingSince.IsZero() && webhook.Classify(out.lastErr) == webhook.Credentials:
		out.Reason = ReasonCredentials
	case !waitingSince.IsZero():
		out.Reason = ReasonCircuitOpen
	case webhook.IsRedirect(out.lastErr):
		out.Reason = ReasonRedirect
	case webhook.Classify(out.lastErr) == webhook.Permanent:
		out.Reason = ReasonRejected
	default:
		out.Reason = ReasonRetriesExhausted
	}
	return out
}

// attempt makes one POST of j inside a client span that continues the trace of the
// input record (j.Trace) and, for a partner that asks for it, is propagated to the
// partner (traceparent, tracestate); to any other partner nothing internal goes. The
// span carries no URL: it can hold the API key (P7).
func (q *queue) attempt(ctx context.Context, ep *webhook.Endpoint, j Job, n int) (webhook.Response, error) {
	if j.Trace.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, j.Trace)
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, "POST order webhook", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("ucprelay.partner", j.Partner), attribute.String("ucprelay.order_id", j.OrderID),
			attribute.Int64("ucprelay.snapshot_version", j.Version), attribute.Int("ucprelay.attempt", n),
			attribute.String("http.request.method", http.MethodPost)))
	defer span.End()
	req := j.Request
	if j.PropagateTrace {
		req.Header = req.Header.Clone()
		otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	resp, err := q.snd.Send(ctx, ep, req)
	switch status := max(resp.Status, statusOf(err)); {
	case err != nil:
		if status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	return resp, err
}

// countAttempt counts an attempt's answer by class: 2xx, 4xx, 5xx or transport (no
// answer); an attempt the open breaker refused was not sent and is not counted.
func (q *queue) countAttempt(ctx context.Context, partner string, err error) {
	if q.onAttempt == nil {
		return
	}
	class := "2xx"
	var te *webhook.TransportError
	switch st := statusOf(err); {
	case errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests):
		return // not sent
	case errors.As(err, &te):
		class = "transport"
	case st >= 500:
		class = "5xx"
	case st >= 400:
		class = "4xx"
	case err != nil:
		class = "error"
	}
	q.onAttempt(ctx, partner, class)
}

// newerWaiting reports whether a newer snapshot of the order waits behind the one being
// delivered.
func (q *queue) newerWaiting(order string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	line := q.orders[order]
	return line != nil && line.waiting != nil
}

// statusOf returns the HTTP status an error carries, 0 for none.
func statusOf(err error) int {
	var se *webhook.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// alertCredentials reports a partner rejecting our credentials or signature: an
// endpoint-wide fault an operator must fix, logged at error level at most once a minute
// per partner and counted.
func (q *queue) alertCredentials(ctx context.Context, partner string, err error) {
	if q.onCredentials != nil {
		q.onCredentials(ctx, partner)
	}
	q.mu.Lock()
	last := q.credAlerted[partner]
	now := time.Now()
	due := now.Sub(last) >= time.Minute
	if due {
		q.credAlerted[partner] = now
	}
	q.mu.Unlock()
	if due {
		q.log.Error("partner rejects our credentials or signature: check the API key and signing key; deliveries wait and are not dead-lettered before the hold",
			"partner", partner, "hold", q.cfg.Breaker.Hold, "err", err)
	}
}
