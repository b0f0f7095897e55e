package relay

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// scriptSender answers by a function of the order and version it is sent, recording the
// sends and the concurrency per order.
type scriptSender struct {
	mu       sync.Mutex
	sends    []string
	inFlight map[string]int
	maxPer   map[string]int
	answer   func(order string, version int64) error
	gate     map[string]chan struct{} // a send of this order blocks until the channel closes
}

func newScriptSender(answer func(string, int64) error) *scriptSender {
	return &scriptSender{inFlight: map[string]int{}, maxPer: map[string]int{}, gate: map[string]chan struct{}{}, answer: answer}
}

func (s *scriptSender) Send(ctx context.Context, _ *webhook.Endpoint, req webhook.Request) (webhook.Response, error) {
	order := req.Header.Get("X-Order")
	v, _ := strconv.ParseInt(req.Header.Get("X-Version"), 10, 64)
	s.mu.Lock()
	s.sends = append(s.sends, order+"@"+strconv.FormatInt(v, 10))
	s.inFlight[order]++
	s.maxPer[order] = max(s.maxPer[order], s.inFlight[order])
	gate := s.gate[order]
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	s.inFlight[order]--
	s.mu.Unlock()
	if err := s.answer(order, v); err != nil {
		return webhook.Response{}, err
	}
	return webhook.Response{Status: http.StatusOK}, nil
}

func job(order string, v int64) Job {
	h := http.Header{}
	h.Set("X-Order", order)
	h.Set("X-Version", strconv.FormatInt(v, 10))
	return Job{OrderID: order, Partner: "p", Version: v, Request: webhook.Request{Body: []byte("{}"), Header: h}}
}

func testQueue(t *testing.T, snd Sender, width int) (*queue, func() []Outcome) {
	t.Helper()
	cfg := &Config{InputTopic: "i", StateTopic: "s", TransactionalID: "t", Group: "g", DeadLetterTopic: "d", MaxInFlight: width, MaxAttempts: 3,
		Backoff:  webhook.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		Partners: map[string]Partner{"p": {Endpoint: webhook.Endpoint{Partner: "p", BaseURL: "http://127.0.0.1:9"}}}}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var outs []Outcome
	q := newQueue(cfg, snd, map[string]*breaker{"p": cfg.newBreaker("p")}, func(o Outcome) {
		mu.Lock()
		outs = append(outs, o)
		mu.Unlock()
	})
	return q, func() []Outcome { mu.Lock(); defer mu.Unlock(); return append([]Outcome(nil), outs...) }
}

// P2: one POST in flight per order, and the newest waiting snapshot replaces older ones.
func TestQueueOneInFlightLatestWins(t *testing.T) {
	t.Parallel()
	snd := newScriptSender(func(string, int64) error { return nil })
	gate := make(chan struct{})
	snd.gate["A"] = gate
	q, outcomes := testQueue(t, snd, 8)
	ctx := context.Background()
	q.submit(ctx, job("A", 1))
	waitFor(t, func() bool { snd.mu.Lock(); defer snd.mu.Unlock(); return len(snd.sends) == 1 })
	q.submit(ctx, job("A", 2))
	q.submit(ctx, job("A", 4))
	q.submit(ctx, job("A", 3)) // older than the waiting 4: superseded at once
	snd.mu.Lock()
	delete(snd.gate, "A")
	snd.mu.Unlock()
	close(gate)
	q.wait()
	if got := snd.sends; len(got) != 2 || got[0] != "A@1" || got[1] != "A@4" {
		t.Fatalf("sends %v, want [A@1 A@4]", got)
	}
	if snd.maxPer["A"] != 1 {
		t.Fatalf("%d POSTs of one order in flight at once", snd.maxPer["A"])
	}
	superseded := map[int64]bool{}
	for _, o := range outcomes() {
		if o.Superseded {
			superseded[o.Job.Version] = true
		}
	}
	if len(outcomes()) != 4 || !superseded[2] || !superseded[3] {
		t.Fatalf("outcomes %+v", outcomes())
	}
}

// P5: a slow order does not hold back the others.
func TestQueueSlowOrderDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	snd := newScriptSender(func(string, int64) error { return nil })
	gate := make(chan struct{})
	snd.gate["slow"] = gate
	q, outcomes := testQueue(t, snd, 4)
	ctx := context.Background()
	q.submit(ctx, job("slow", 1))
	for i := range 20 {
		q.submit(ctx, job("o"+strconv.Itoa(i), 1))
	}
	waitFor(t, func() bool { return len(outcomes()) == 20 })
	close(gate)
	q.wait()
	if len(outcomes()) != 21 {
		t.Fatalf("%d outcomes", len(outcomes()))
	}
}

func TestQueueRetriesAndFailures(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := map[string]int{}
	snd := newScriptSender(func(order string, _ int64) error {
		mu.Lock()
		defer mu.Unlock()
		calls[order]++
		switch {
		case order == "flaky" && calls[order] < 3:
			return &webhook.StatusError{Status: 503}
		case order == "bad":
			return &webhook.StatusError{Status: 422, Text: "invalid"}
		case order == "down":
			return &webhook.StatusError{Status: 500}
		}
		return nil
	})
	q, outcomes := testQueue(t, snd, 4)
	q.cfg.Breaker.FailuresToTrip = 100
	q.breakers["p"] = q.cfg.newBreaker("p") // the breaker reads its settings when it is made
	ctx := context.Background()
	for _, o := range []string{"flaky", "bad", "down"} {
		q.submit(ctx, job(o, 1))
	}
	q.wait()
	got := map[string]Outcome{}
	for _, o := range outcomes() {
		got[o.Job.OrderID] = o
	}
	if o := got["flaky"]; o.Failed || o.Attempts != 3 || o.Status != 200 {
		t.Errorf("flaky: %+v", o)
	}
	if o := got["bad"]; !o.Failed || o.Reason != ReasonRejected || o.Attempts != 1 || o.HTTPStatus != 422 {
		t.Errorf("bad: %+v", o)
	}
	if o := got["down"]; !o.Failed || o.Reason != ReasonRetriesExhausted || o.Attempts != 3 || o.HTTPStatus != 500 || o.First.IsZero() {
		t.Errorf("down: %+v", o)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// P2 with requests that got no answer: the partner may still process an abandoned
// request late, so the order's next, newer snapshot waits ResendSettle after it, while
// the retry of the same snapshot goes at once. Order "w" gets its newer snapshot while
// the abandoned one waits to be retried (the newer one replaces it); order "l" gets its
// newer snapshot only after the first is done.
func TestQueueNewerSnapshotWaitsAfterAbandonedAttempt(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	failed := map[string]bool{}
	snd := newScriptSender(func(order string, v int64) error {
		mu.Lock()
		defer mu.Unlock()
		sentAt[order+"@"+strconv.FormatInt(v, 10)] = time.Now()
		if v == 1 && !failed[order] {
			failed[order] = true
			return &webhook.TransportError{Op: "post", Err: context.DeadlineExceeded}
		}
		return nil
	})
	q, _ := testQueue(t, snd, 4)
	const settle = 300 * time.Millisecond
	q.cfg.ResendSettle = settle
	start := time.Now()
	q.submit(context.Background(), job("w", 1))
	q.submit(context.Background(), job("l", 1))
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return failed["w"] })
	q.submit(context.Background(), job("w", 2))
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); _, ok := sentAt["l@1"]; return ok && failed["l"] })
	for time.Since(start) < 50*time.Millisecond {
		time.Sleep(5 * time.Millisecond)
	}
	q.submit(context.Background(), job("l", 2))
	q.wait()
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"w@2", "l@2"} {
		if got := sentAt[k].Sub(start); got < settle {
			t.Errorf("%s went %s after the abandoned attempt, want >= %s", k, got, settle)
		}
	}
	if got := sentAt["l@1"].Sub(start); got >= settle {
		t.Errorf("the retry of the abandoned snapshot itself waited %s", got)
	}
}
