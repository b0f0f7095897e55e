package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/testshared"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// The sink scenarios of the delivery path: the real webhook.Sender posts real UCP bodies
// to the validating sink over an in-memory network, inside a synctest bubble, so the
// minutes of backoff, Retry-After, breaker and hold time they involve pass in fake time.

// pipeListener is an in-memory network: each dial hands one end of a net.Pipe to the
// http.Server that Accepts on it. net.Pipe blocks durably, as synctest needs.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, errors.New("pipe network closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// scenario is one queue delivering to one sink partner "p" in a synctest bubble.
type scenario struct {
	t     *testing.T
	snk   *sink.Sink
	q     *queue
	srv   *http.Server
	tr    *http.Transport
	body  []byte
	mu    sync.Mutex
	outs  []Outcome
	trans []string
	reqAt []time.Time // when the sink received each request
}

// scenarioSchemas loads the validator outside the bubble (once per test).
func scenarioSchemas(t *testing.T) (*ucpschema.Validator, []byte) {
	t.Helper()
	v, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(testshared.Dir(t, "ucp-examples"), "order-created.json"))
	if err != nil {
		t.Fatal(err)
	}
	return v, body
}

// newScenario must run inside the bubble. sinkKey is the API key the sink wants, sentKey
// the one the relay sends.
func newScenario(t *testing.T, v *ucpschema.Validator, body []byte, sinkKey, sentKey string, tune func(*Config)) *scenario {
	sc := &scenario{t: t, body: body}
	snk, err := sink.New(sink.Config{Validator: v, APIKey: sinkKey, KeepHistory: true, OnRequest: func(sink.Line) {
		sc.mu.Lock()
		sc.reqAt = append(sc.reqAt, time.Now())
		sc.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	sc.snk = snk
	l := newPipeListener()
	sc.srv = &http.Server{Handler: snk, ReadHeaderTimeout: time.Minute}
	go func() { _ = sc.srv.Serve(l) }()
	sc.tr = &http.Transport{DialContext: l.dial, MaxIdleConnsPerHost: 64}
	snd, err := webhook.NewSender(webhook.WithHTTPClient(&http.Client{Transport: sc.tr}), webhook.WithAttemptTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{InputTopic: "i", StateTopic: "s", TransactionalID: "t", Group: "g", DeadLetterTopic: "d",
		MaxAttempts: 5, Backoff: webhook.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, MaxRetryAfter: time.Minute},
		Breaker:  BreakerConfig{FailuresToTrip: 5, OpenFor: 5 * time.Second, Hold: 5 * time.Minute, Poll: 250 * time.Millisecond},
		Partners: map[string]Partner{"p": {Endpoint: webhook.Endpoint{Partner: "p", BaseURL: "http://sink.test", APIKey: webhook.NewSecret(sentKey)}}}}
	if tune != nil {
		tune(cfg)
	}
	cfg.OnBreakerChange = func(_ string, from, to gobreaker.State) {
		sc.mu.Lock()
		sc.trans = append(sc.trans, from.String()+"->"+to.String())
		sc.mu.Unlock()
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	sc.q = newQueue(cfg, snd, map[string]*breaker{"p": cfg.newBreaker("p")}, func(o Outcome) {
		sc.mu.Lock()
		sc.outs = append(sc.outs, o)
		sc.mu.Unlock()
	})
	return sc
}

// submit queues version v of order id, stamped at the bubble's now.
func (sc *scenario) submit(id string, v int64) {
	var doc map[string]any
	if err := json.Unmarshal(sc.body, &doc); err != nil {
		sc.t.Fatal(err)
	}
	doc["id"] = id
	body, _ := json.Marshal(doc)
	stamp := time.Now().Truncate(time.Second).Add(time.Duration(v) * time.Second)
	h := http.Header{}
	h.Set("Webhook-Id", id+"-v"+strconv.FormatInt(v, 10))
	h.Set("Webhook-Timestamp", strconv.FormatInt(stamp.Unix(), 10))
	sc.q.submit(context.Background(), Job{OrderID: id, Partner: "p", Version: v, WebhookID: h.Get("Webhook-Id"), Stamp: stamp,
		Request: webhook.Request{Body: body, Header: h}})
}

// finish waits for every job, then shuts the network down so the bubble can end.
func (sc *scenario) finish() []Outcome {
	sc.q.wait()
	_ = sc.srv.Close()
	sc.tr.CloseIdleConnections()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]Outcome(nil), sc.outs...)
}

func (sc *scenario) outcomes() []Outcome {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]Outcome(nil), sc.outs...)
}

func (sc *scenario) gaps() []time.Duration {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(sc.reqAt); i++ {
		g = append(g, sc.reqAt[i].Sub(sc.reqAt[i-1]))
	}
	return g
}

func only(t *testing.T, outs []Outcome) Outcome {
	t.Helper()
	if len(outs) != 1 {
		t.Fatalf("want 1 outcome, got %d: %+v", len(outs), outs)
	}
	return outs[0]
}

func TestSinkScenarios(t *testing.T) {
	v, body := scenarioSchemas(t)
	cases := []struct {
		name    string
		sentKey string // default: the key the sink wants
		tune    func(*Config)
		setup   func(*scenario)
		check   func(*testing.T, *scenario, Outcome)
	}{{
		name:  "500,500,200 is delivered on the third attempt",
		setup: func(sc *scenario) { sc.snk.Script(sink.Fault{Status: 500}, sink.Fault{Status: 500}) },
		check: func(t *testing.T, sc *scenario, o Outcome) {
			if o.Failed || o.Attempts != 3 || o.Status != 200 || sc.snk.Stats().Accepted != 1 {
				t.Errorf("outcome %+v, sink %+v", o, sc.snk.Stats())
			}
		},
	}, {
		name:  "429 with Retry-After in seconds waits that long",
		setup: func(sc *scenario) { sc.snk.Script(sink.Fault{Status: 429, RetryAfter: "7"}) },
		check: func(t *testing.T, sc *scenario, o Outcome) {
			if g := sc.gaps(); o.Failed || o.Attempts != 2 || len(g) != 1 || g[0] < 7*time.Second || g[0] > 8*time.Second {
				t.Errorf("outcome %+v, gaps %v", o, g)
			}
		},
	}, {
		name: "429 with Retry-After as an HTTP date waits until then",
		setup: func(sc *scenario) {
			at := time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat)
			sc.snk.Script(sink.Fault{Status: 429, RetryAfter: at})
		},
		check: func(t *testing.T, sc *scenario, o Outcome) {
			// The date has one-second resolution: the wait is 9 to 10 s.
			if g := sc.gaps(); o.Failed || o.Attempts != 2 || len(g) != 1 || g[0] < 9*time.Second || g[0] > 10*time.Second {
				t.Errorf("outcome %+v, gaps %v", o, g)
			}
		},
	}, {
		name:  "Retry-After beyond the cap waits the cap",
		tune:  func(c *Config) { c.Backoff.MaxRetryAfter = 30 * time.Second },
		setup: func(sc *scenario) { sc.snk.Script(sink.Fault{Status: 503, RetryAfter: "3600"}) },
		check: func(t *testing.T, sc *scenario, o Outcome) {
			if g := sc.gaps(); o.Failed || len(g) != 1 || g[0] != 30*time.Second {
				t.Errorf("outcome %+v, gaps %v", o, g)
			}
		},
	}, {
		name: "422 is permanent: dead-lettered at once with the status and the answer",
		setup: func(sc *scenario) {
			sc.snk.Script(sink.Fault{Status: 422, Body: `{"error":"line_items[0].quantity invalid"}`})
		},
		check: func(t *testing.T, sc *scenario, o Outcome) {
			if !o.Failed || o.Reason != ReasonRejected || o.Attempts != 1 || o.HTTPStatus != 422 || sc.snk.Stats().Received != 1 {
				t.Errorf("outcome %+v, sink %+v", o, sc.snk.Stats())
			}
			if o.Err == nil || !containsAll(o.Err.Error(), "422", "quantity invalid") {
				t.Errorf("error %v lacks the status and the answer", o.Err)
			}
		},
	}, {
		name:    "401 on every call waits out the hold, then fails once as credentials_rejected",
		sentKey: "wrong-key",
		tune:    func(c *Config) { c.Breaker.Hold = 2 * time.Minute },
		setup: func(sc *scenario) {
			go func() {
				time.Sleep(2*time.Minute - time.Second)
				if n := len(sc.outcomes()); n != 0 {
					sc.t.Errorf("%d outcomes before the hold ended", n)
				}
			}()
		},
		check: func(t *testing.T, sc *scenario, o Outcome) {
			st := sc.snk.Stats()
			if !o.Failed || o.Reason != ReasonCredentials || o.HTTPStatus != 401 || !o.WaitedOnOpen {
				t.Errorf("outcome %+v", o)
			}
			if o.Last.Sub(o.First) < 110*time.Second {
				t.Errorf("failed after %v of 401s, before the 2m hold", o.Last.Sub(o.First))
			}
			// Credential probes are spaced (backoff, then the open breaker's 5 s): no hammering.
			if st.Unauthorized < 5 || st.Unauthorized > 40 {
				t.Errorf("%d requests in 2 minutes of 401", st.Unauthorized)
			}
			if !sc.saw("closed->open") {
				t.Errorf("401s did not open the breaker: %v", sc.trans)
			}
			t.Logf("401 for 2 minutes: %d requests, failed after %v as %s", st.Unauthorized, o.Last.Sub(o.First), o.Reason)
		},
	}, {
		name: "a timeout is retried; the attempt is marked abandoned",
		setup: func(sc *scenario) {
			sc.snk.SetLatency(3 * time.Second) // attempt timeout is 2 s
			go func() { time.Sleep(1500 * time.Millisecond); sc.snk.SetLatency(0) }()
		},
		check: func(t *testing.T, sc *scenario, o Outcome) {
			// The sink may still process the abandoned request (as a partner may): then it
			// sees the same snapshot twice, a duplicate, never a stale one.
			if st := sc.snk.Stats(); o.Failed || o.Attempts != 2 || o.Abandoned.IsZero() || st.Accepted < 1 || st.Stale != 0 {
				t.Errorf("outcome %+v, sink %+v", o, st)
			}
		},
	}, {
		name:  "connection resets are retried",
		setup: func(sc *scenario) { sc.snk.Script(sink.Fault{Reset: true}, sink.Fault{Reset: true}) },
		check: func(t *testing.T, sc *scenario, o Outcome) {
			if st := sc.snk.Stats(); o.Failed || o.Attempts != 3 || o.Abandoned.IsZero() || st.Accepted != 1 {
				t.Errorf("outcome %+v, sink %+v", o, st)
			}
		},
	}, {
		name:  "5xx until the attempt budget is spent: retries_exhausted",
		tune:  func(c *Config) { c.Breaker.FailuresToTrip = 100 },
		setup: func(sc *scenario) { sc.snk.StartOutage() },
		check: func(t *testing.T, sc *scenario, o Outcome) {
			if !o.Failed || o.Reason != ReasonRetriesExhausted || o.Attempts != 5 || o.HTTPStatus != 503 {
				t.Errorf("outcome %+v", o)
			}
		},
	}, {
		name: "5xx with long Retry-After until the time budget is spent: retries_exhausted",
		tune: func(c *Config) { c.Breaker.FailuresToTrip = 100; c.MaxRetryTime = 25 * time.Second },
		setup: func(sc *scenario) {
			for range 5 {
				sc.snk.Script(sink.Fault{Status: 503, RetryAfter: "10"})
			}
		},
		check: func(t *testing.T, sc *scenario, o Outcome) {
			if !o.Failed || o.Reason != ReasonRetriesExhausted || o.Attempts != 3 {
				t.Errorf("outcome %+v (want 3 attempts in a 25 s budget of 10 s waits)", o)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sent := c.sentKey
				if sent == "" {
					sent = "right-key"
				}
				sc := newScenario(t, v, body, "right-key", sent, c.tune)
				c.setup(sc)
				sc.submit("ord_1", 1)
				o := only(t, sc.finish())
				c.check(t, sc, o)
			})
		})
	}
}

func (sc *scenario) saw(transition string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, tr := range sc.trans {
		if tr == transition {
			return true
		}
	}
	return false
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// P6 and P2 through a 60 s outage: deliveries wait on the open breaker without spending
// their budget, nothing fails before the hold, newer snapshots submitted during the outage
// replace the queued older ones, and after recovery every order's newest snapshot is
// delivered and none is stale. The breaker goes closed → open → half-open → closed.
func TestSixtySecondOutage(t *testing.T) {
	v, body := scenarioSchemas(t)
	synctest.Test(t, func(t *testing.T) {
		sc := newScenario(t, v, body, "k", "k", func(c *Config) { c.MaxInFlight = 8 })
		const orders = 40
		sc.snk.StartOutage()
		for i := range orders {
			sc.submit("ord_"+strconv.Itoa(i), 1)
		}
		time.Sleep(20 * time.Second)
		for i := 0; i < orders; i += 2 { // half the orders change during the outage
			sc.submit("ord_"+strconv.Itoa(i), 2)
		}
		time.Sleep(40 * time.Second)
		for _, o := range sc.outcomes() {
			if !o.Superseded {
				t.Fatalf("an outcome before the outage ended: %+v", o)
			}
		}
		injected := sc.snk.Stats().Injected
		sc.snk.EndOutage()
		outs := sc.finish()
		var delivered, superseded int
		for _, o := range outs {
			switch {
			case o.Failed:
				t.Errorf("failed: %+v", o)
			case o.Superseded:
				superseded++
			default:
				delivered++
			}
		}
		st := sc.snk.Stats()
		if delivered != orders || superseded != orders/2 || st.Accepted != orders || st.Stale != 0 || st.Invalid != 0 {
			t.Errorf("delivered %d superseded %d; sink %+v", delivered, superseded, st)
		}
		for i := range orders {
			id := "ord_" + strconv.Itoa(i)
			want := id + "-v1"
			if i%2 == 0 {
				want = id + "-v2"
			}
			if d, _ := sc.snk.Latest(id); d.WebhookID != want || len(sc.snk.History(id)) != 1 {
				t.Errorf("order %s: partner has %q (history %d), want only %q", id, d.WebhookID, len(sc.snk.History(id)), want)
			}
		}
		// While open the breaker lets one probe through every OpenFor (5 s), so 60 s of
		// outage cost about 12 probes plus the 5 failures that tripped it; without the
		// breaker 40 orders would have made hundreds of attempts.
		if injected > 40 {
			t.Errorf("%d requests during the outage: deliveries did not wait on the breaker", injected)
		}
		for _, tr := range []string{"closed->open", "open->half-open", "half-open->closed"} {
			if !sc.saw(tr) {
				t.Errorf("breaker never went %s: %v", tr, sc.trans)
			}
		}
		t.Logf("60 s outage: %d requests refused, %d delivered, %d superseded, transitions %v", injected, delivered, superseded, sc.trans)
	})
}

// P6: a delivery that waits on the open breaker longer than the hold is dead-lettered
// with reason circuit_open, once, not after each of its attempts.
func TestOutageLongerThanHoldIsCircuitOpen(t *testing.T) {
	v, body := scenarioSchemas(t)
	synctest.Test(t, func(t *testing.T) {
		sc := newScenario(t, v, body, "k", "k", func(c *Config) { c.Breaker.Hold = time.Minute })
		sc.snk.StartOutage()
		start := time.Now()
		sc.submit("ord_1", 1)
		o := only(t, sc.finish())
		if !o.Failed || o.Reason != ReasonCircuitOpen || o.HTTPStatus != 503 || !o.WaitedOnOpen {
			t.Errorf("outcome %+v", o)
		}
		if took := time.Since(start); took < time.Minute || took > 70*time.Second {
			t.Errorf("failed after %v, want the 1m hold", took)
		}
	})
}

// P2 with a partner that processes an abandoned request late: the first request reaches
// the partner, which answers it only 3.9 s later whatever the client does; the client
// gives up after its 2 s attempt timeout. The order's newer snapshot, queued meanwhile,
// waits ResendSettle (2 s) after the attempt was given up, not after it started, so the
// partner has processed the old request before the new one comes and nothing is stale.
func TestNewerSnapshotWaitsSettleAfterAbandonedAttempt(t *testing.T) {
	v, body := scenarioSchemas(t)
	synctest.Test(t, func(t *testing.T) {
		sc := newScenario(t, v, body, "k", "k", func(c *Config) { c.ResendSettle = 2 * time.Second })
		var first sync.Once
		inner := sc.srv.Handler
		sc.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			late := false
			first.Do(func() { late = true })
			if late {
				time.Sleep(3900 * time.Millisecond) // processed late, the client long gone
			}
			r = r.Clone(context.WithoutCancel(r.Context()))
			r.Body = io.NopCloser(bytes.NewReader(b))
			inner.ServeHTTP(w, r)
		})
		start := time.Now()
		sc.submit("ord_1", 1)
		time.Sleep(500 * time.Millisecond)
		sc.submit("ord_1", 2)
		time.Sleep(5 * time.Second) // the late handler is done by then
		outs := sc.finish()
		st := sc.snk.Stats()
		if d, _ := sc.snk.Latest("ord_1"); st.Stale != 0 || d.WebhookID != "ord_1-v2" {
			t.Errorf("sink %+v, partner has %q: the newer snapshot overtook the abandoned one", st, d.WebhookID)
		}
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if len(sc.reqAt) != 2 || sc.reqAt[1].Sub(start) < 4*time.Second {
			t.Errorf("requests answered at %v, want the newer one at least 4 s in (timeout 2 s + settle 2 s)", sc.reqAt)
		}
		if len(outs) != 2 || !outs[0].Superseded || outs[0].Abandoned.IsZero() || outs[1].Failed || outs[1].Superseded {
			t.Errorf("outcomes %+v", outs)
		}
	})
}
