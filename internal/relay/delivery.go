package relay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Job is one snapshot of one order to deliver.
type Job struct {
	OrderID   string
	Partner   string
	Version   int64 // snapshot version; a higher one replaces a queued lower one
	WebhookID string
	Stamp     time.Time // the freshness stamp of the envelope
	// NotBefore delays the first attempt: a snapshot found pending after a restore may
	// still be in flight from the previous owner, whose request the partner may process
	// late; a newer snapshot must not overtake it.
	NotBefore time.Time
	Request   webhook.Request
	// Source locates the input record that produced the snapshot, for dead-lettering.
	Source Source

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
	// Superseded: a newer snapshot of the order replaced this one before it was sent (P2).
	Superseded bool
	// Failed: the job will not be delivered; Reason, Err, Attempts, First and Last say why.
	Failed       bool
	Reason       string
	Err          error
	HTTPStatus   int
	Attempts     int
	First, Last  time.Time
	WaitedOnOpen bool
	// Abandoned is when the last attempt that got no answer (timeout, reset) started:
	// the partner may still process that request, so the order's next snapshot waits.
	Abandoned time.Time
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
	wg    sync.WaitGroup
}

// orderLine is an order's position in the queue: the job in flight and the one waiting.
type orderLine struct {
	waiting *Job
}

// breaker guards one partner endpoint.
type breaker = gobreaker.CircuitBreaker[webhook.Response]

func newQueue(cfg *Config, snd Sender, breakers map[string]*breaker, done func(Outcome)) *queue {
	return &queue{
		cfg: cfg, snd: snd, breakers: breakers, log: cfg.Logger, done: done,
		slots: make(chan struct{}, cfg.MaxInFlight), orders: map[string]*orderLine{}, quiet: map[string]time.Time{},
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
			if sleep(ctx, d) != nil {
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

// deliver makes the attempts of one job: retries with backoff, honouring Retry-After;
// while the partner's breaker is open it waits without spending the job's retry budget
// (P6), up to the hold time.
func (q *queue) deliver(ctx context.Context, j Job) Outcome {
	out := Outcome{Job: j}
	partner := q.cfg.Partners[j.Partner]
	cb := q.breakers[j.Partner]
	log := q.log.With("order_id", j.OrderID, "partner", j.Partner)
	var waitingSince time.Time
	var err error
	for out.Attempts < q.cfg.MaxAttempts {
		if q.lease != nil && q.lease.wait(ctx) != nil {
			out.Failed, out.Err = true, ctx.Err()
			return out
		}
		var resp webhook.Response
		started := time.Now()
		resp, err = cb.Execute(func() (webhook.Response, error) { return q.snd.Send(ctx, &partner.Endpoint, j.Request) })
		var te *webhook.TransportError
		if errors.As(err, &te) {
			out.Abandoned = started
		}
		if ctx.Err() != nil {
			out.Failed, out.Err = true, ctx.Err()
			return out
		}
		endpointDown := errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) ||
			err != nil && webhook.Classify(err) != webhook.Permanent && cb.State() != gobreaker.StateClosed
		if endpointDown {
			if waitingSince.IsZero() {
				waitingSince = time.Now()
				log.Warn("circuit open; delivery waits", "hold", q.cfg.Breaker.Hold)
			}
			out.WaitedOnOpen = true
			if time.Since(waitingSince) >= q.cfg.Breaker.Hold {
				break
			}
			if sleep(ctx, q.cfg.Breaker.Poll) != nil {
				out.Failed, out.Err = true, ctx.Err()
				return out
			}
			continue
		}
		waitingSince = time.Time{}
		out.Attempts++
		if err == nil {
			out.Status = resp.Status
			log.Debug("delivered", "status", resp.Status, "attempts", out.Attempts)
			return out
		}
		out.Last = time.Now()
		if out.First.IsZero() {
			out.First = out.Last
		}
		if webhook.Classify(err) == webhook.Permanent {
			break
		}
		if out.Attempts < q.cfg.MaxAttempts {
			d := q.cfg.Backoff.Delay(out.Attempts-1, err)
			log.Info("delivery failed; retrying", "attempt", out.Attempts, "in", d, "err", err)
			if sleep(ctx, d) != nil {
				out.Failed, out.Err = true, ctx.Err()
				return out
			}
		}
	}
	out.Failed, out.Err = true, err
	switch {
	case !waitingSince.IsZero():
		out.Reason = ReasonCircuitOpen
	case webhook.Classify(err) == webhook.Permanent:
		out.Reason = ReasonRejected
	case webhook.Classify(err) == webhook.Credentials:
		out.Reason = ReasonCredentials
	default:
		out.Reason = ReasonRetriesExhausted
	}
	var se *webhook.StatusError
	if errors.As(err, &se) {
		out.HTTPStatus = se.Status
	}
	return out
}
