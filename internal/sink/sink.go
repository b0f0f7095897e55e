// Package sink is a local partner endpoint that plays an agent platform's UCP order
// webhook, for tests, `ucprelay demo` and `ucprelay sink`. It checks the API key,
// validates every body against the UCP order schema, checks per order that the
// freshness stamp never goes back (P2), can inject faults (scripted answers, failure
// rate, latency, outages, connection resets), and with a record writer appends every
// request as one JSON line in the format of the README's "Sink record file" section.
package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Validator checks a body against the UCP order schema of one version.
type Validator interface {
	Validate(body []byte) error
}

// Verifier checks a request's signature; a failure is answered 401.
type Verifier interface {
	Verify(r *http.Request, body []byte) error
}

// Redacted replaces credentials in the record file.
const Redacted = "[REDACTED]"

// Config configures a Sink.
type Config struct {
	// Validator checks bodies. Required.
	Validator Validator
	// PathPrefix precedes /webhooks/partners/{partner_id}/events/order. Default "".
	PathPrefix string
	// APIKey is the expected key; empty accepts any request. It is read from
	// APIKeyHeader or the "key" query parameter.
	APIKey string
	// APIKeyHeader names the key's header. Default "X-Goog-Api-Key".
	APIKeyHeader string
	// Record, when set, receives one JSON line per request.
	Record io.Writer
	// StaleStatus answers a stale delivery. Default 409.
	StaleStatus int
	// Verifier, when set, checks signatures.
	Verifier Verifier
	// KeepHistory keeps every accepted body per order (for tests). Default false: only
	// the latest per order is kept.
	KeepHistory bool
	// OnRequest, when set, is called after each answer with the request's record line
	// (API key redacted), e.g. to print live progress.
	OnRequest func(Line)
}

// Stats counts what the sink saw.
type Stats struct {
	Received     int
	Accepted     int // 2xx answers, duplicates included
	Duplicates   int // same order, stamp and Webhook-Id as the newest accepted
	Invalid      int // schema or JSON failures
	Stale        int // stamp older than the newest accepted, or equal with another id
	Unauthorized int
	Injected     int // answers decided by fault injection
	PerPartner   map[string]int
}

// Delivery is an accepted snapshot.
type Delivery struct {
	Partner   string
	WebhookID string
	Stamp     time.Time
	Body      []byte
}

// Fault is one scripted answer.
type Fault struct {
	// Status to answer; 0 with Reset closes the connection without answering.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body is the answer body. Default: a JSON error naming the injected fault.
	Body string
	// Reset closes the connection without an answer.
	Reset bool
}

// Sink is the endpoint. Create it with New; it is an http.Handler.
type Sink struct {
	cfg Config

	mu       sync.Mutex
	changed  chan struct{}
	stats    Stats
	latest   map[string]Delivery
	history  map[string][]Delivery
	script   []Fault
	failRate float64
	failWith Fault
	rng      *rand.Rand
	latency  time.Duration
	outage   bool

	recMu sync.Mutex
}

// New returns a Sink.
func New(cfg Config) (*Sink, error) {
	if cfg.Validator == nil {
		return nil, errors.New("sink: a validator is required")
	}
	if cfg.APIKeyHeader == "" {
		cfg.APIKeyHeader = "X-Goog-Api-Key"
	}
	if cfg.StaleStatus == 0 {
		cfg.StaleStatus = http.StatusConflict
	}
	return &Sink{
		cfg: cfg, changed: make(chan struct{}),
		stats:  Stats{PerPartner: map[string]int{}},
		latest: map[string]Delivery{}, history: map[string][]Delivery{},
		rng: rand.New(rand.NewPCG(1, 2)),
	}, nil
}

// Script queues answers given to the next requests, one each, before any other check.
func (s *Sink) Script(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, faults...)
}

// FailRate makes a fraction (0..1) of requests fail with f, drawn from a seeded source.
func (s *Sink) FailRate(rate float64, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRate, s.failWith = rate, f
}

// SetLatency delays every answer by d.
func (s *Sink) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// StartOutage answers every request 503 until EndOutage.
func (s *Sink) StartOutage() { s.setOutage(true) }

// EndOutage ends an outage.
func (s *Sink) EndOutage() { s.setOutage(false) }

func (s *Sink) setOutage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = on
}

// Stats returns a copy of the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *Sink) statsLocked() Stats {
	st := s.stats
	st.PerPartner = make(map[string]int, len(s.stats.PerPartner))
	for k, v := range s.stats.PerPartner {
		st.PerPartner[k] = v
	}
	return st
}

// Latest returns the newest accepted snapshot of an order.
func (s *Sink) Latest(orderID string) (Delivery, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.latest[orderID]
	return d, ok
}

// Orders returns the number of orders with an accepted snapshot.
func (s *Sink) Orders() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.latest)
}

// History returns every accepted snapshot of an order, in arrival order (KeepHistory).
func (s *Sink) History(orderID string) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.history[orderID]...)
}

// WaitFor returns when cond holds for the stats, or with ctx's error.
func (s *Sink) WaitFor(ctx context.Context, cond func(Stats) bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(s.statsLocked()), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sink: condition not met: %w", ctx.Err())
		case <-ch:
		}
	}
}

// bump records a change and wakes waiters; call with s.mu held.
func (s *Sink) bump() {
	close(s.changed)
	s.changed = make(chan struct{})
}

const maxBody = 4 << 20

// ServeHTTP answers one webhook request.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	now := time.Now()
	status, why := s.answer(w, r, body, err)
	s.record(now, r, body, status, why)
}

// answer decides and writes the answer; status 0 means the connection was reset.
func (s *Sink) answer(w http.ResponseWriter, r *http.Request, body []byte, readErr error) (int, string) {
	s.mu.Lock()
	s.stats.Received++
	s.bump()
	latency := s.latency
	fault, injected := s.nextFaultLocked()
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
		}
	}
	if injected {
		return s.inject(w, fault)
	}
	partner, ok := s.route(r.URL.Path)
	switch {
	case !ok:
		return reject(w, http.StatusNotFound, "no such webhook: "+r.URL.Path)
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		return reject(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
	case readErr != nil:
		return reject(w, http.StatusBadRequest, "reading body: "+readErr.Error())
	case len(body) > maxBody:
		return reject(w, http.StatusRequestEntityTooLarge, "body over 4 MiB")
	}
	if s.cfg.APIKey != "" {
		key := r.Header.Get(s.cfg.APIKeyHeader)
		if key == "" {
			key = r.URL.Query().Get("key")
		}
		if key != s.cfg.APIKey {
			s.count(func(st *Stats) { st.Unauthorized++ })
			return reject(w, http.StatusUnauthorized, "missing or wrong API key")
		}
	}
	if s.cfg.Verifier != nil {
		if err := s.cfg.Verifier.Verify(r, body); err != nil {
			s.count(func(st *Stats) { st.Unauthorized++ })
			return reject(w, http.StatusUnauthorized, "signature: "+err.Error())
		}
	}
	if err := s.cfg.Validator.Validate(body); err != nil {
		s.count(func(st *Stats) { st.Invalid++ })
		return reject(w, http.StatusBadRequest, err.Error())
	}
	var head struct {
		ID          string `json:"id"`
		CreatedTime string `json:"created_time"`
		UCP         struct {
			Version string `json:"version"`
		} `json:"ucp"`
	}
	_ = json.Unmarshal(body, &head) // valid against the schema, so it is an object with an id
	stampText := r.Header.Get("Webhook-Timestamp")
	if stampText == "" {
		stampText = head.CreatedTime
	}
	stamp, err := parseStamp(stampText)
	if err != nil {
		s.count(func(st *Stats) { st.Invalid++ })
		return reject(w, http.StatusBadRequest, "freshness stamp: "+err.Error())
	}
	d := Delivery{Partner: partner, WebhookID: r.Header.Get("Webhook-Id"), Stamp: stamp, Body: body}
	if st, why := s.accept(head.ID, d); st != http.StatusOK {
		return reject(w, st, why)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, `{"ucp":{"version":%q}}`, head.UCP.Version)
	return http.StatusOK, ""
}

// accept applies the freshness rule and stores the delivery.
func (s *Sink) accept(orderID string, d Delivery) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.bump()
	prev, seen := s.latest[orderID]
	same := d.WebhookID == prev.WebhookID && (d.WebhookID != "" || bytes.Equal(d.Body, prev.Body))
	switch {
	case seen && (d.Stamp.Before(prev.Stamp) || d.Stamp.Equal(prev.Stamp) && !same):
		s.stats.Stale++
		return s.cfg.StaleStatus, fmt.Sprintf("stale: stamp %s after %s for order %s", d.Stamp.Format(time.RFC3339), prev.Stamp.Format(time.RFC3339), orderID)
	case seen && d.Stamp.Equal(prev.Stamp):
		s.stats.Duplicates++
	}
	s.stats.Accepted++
	s.stats.PerPartner[d.Partner]++
	s.latest[orderID] = d
	if s.cfg.KeepHistory {
		s.history[orderID] = append(s.history[orderID], d)
	}
	return http.StatusOK, ""
}

func (s *Sink) count(fn func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.stats)
	s.bump()
}

func (s *Sink) nextFaultLocked() (Fault, bool) {
	switch {
	case len(s.script) > 0:
		f := s.script[0]
		s.script = s.script[1:]
		s.stats.Injected++
		return f, true
	case s.outage:
		s.stats.Injected++
		return Fault{Status: http.StatusServiceUnavailable, Body: `{"error":"injected outage"}`}, true
	case s.failRate > 0 && s.rng.Float64() < s.failRate:
		s.stats.Injected++
		return s.failWith, true
	}
	return Fault{}, false
}

func (s *Sink) inject(w http.ResponseWriter, f Fault) (int, string) {
	if f.Reset || f.Status == 0 {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return 0, "injected connection reset"
			}
		}
		panic(http.ErrAbortHandler) // net/http closes the connection without an answer
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	body := f.Body
	if body == "" {
		body = fmt.Sprintf(`{"error":"injected %d"}`, f.Status)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, body)
	return f.Status, "injected: " + body
}

func reject(w http.ResponseWriter, status int, why string) (int, string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": why})
	_, _ = w.Write(b)
	return status, why
}

// route returns the partner id of a webhook path.
func (s *Sink) route(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, s.cfg.PathPrefix+"/webhooks/partners/")
	if !ok {
		return "", false
	}
	partner, ok := strings.CutSuffix(rest, "/events/order")
	if !ok || partner == "" || strings.Contains(partner, "/") {
		return "", false
	}
	return partner, true
}

// parseStamp reads a Webhook-Timestamp (unix seconds or RFC 3339) or created_time.
func parseStamp(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, errors.New("no Webhook-Timestamp header and no created_time")
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither unix seconds nor RFC 3339", v)
	}
	return t.UTC(), nil
}
