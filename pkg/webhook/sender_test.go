package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

const testKey = "k3y-s3cr3t-value"

func TestEndpointURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ep   webhook.Endpoint
		want string
		err  bool
	}{
		{"default template", webhook.Endpoint{Partner: "p1", BaseURL: "http://127.0.0.1:8080"}, "http://127.0.0.1:8080/webhooks/partners/p1/events/order", false},
		{"google prefix", webhook.Endpoint{Partner: "acme", BaseURL: "https://shoppingdataintegration.googleapis.com/v1/"}, "https://shoppingdataintegration.googleapis.com/v1/webhooks/partners/acme/events/order", false},
		{"custom template", webhook.Endpoint{Partner: "p 1", BaseURL: "https://h", PathTemplate: "/hooks/{partner_id}"}, "https://h/hooks/p%201", false},
		{"no partner", webhook.Endpoint{BaseURL: "https://h"}, "", true},
		{"no scheme", webhook.Endpoint{Partner: "p", BaseURL: "h:80"}, "", true},
		{"query in base", webhook.Endpoint{Partner: "p", BaseURL: "https://h?key=x"}, "", true},
		{"template without partner", webhook.Endpoint{Partner: "p", BaseURL: "https://h", PathTemplate: "/x"}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u, err := c.ep.URL()
			if c.err {
				if err == nil {
					t.Fatalf("want error, got %s", u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != c.want {
				t.Fatalf("got %s, want %s", u, c.want)
			}
		})
	}
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	want := map[int]webhook.Class{
		200: webhook.Success, 202: webhook.Success, 204: webhook.Success,
		408: webhook.Retryable, 424: webhook.Retryable, 425: webhook.Retryable, 429: webhook.Retryable,
		500: webhook.Retryable, 502: webhook.Retryable, 503: webhook.Retryable,
		400: webhook.Permanent, 404: webhook.Permanent, 409: webhook.Permanent, 422: webhook.Permanent,
		301: webhook.Permanent, 302: webhook.Permanent, 307: webhook.Permanent, 308: webhook.Permanent,
		401: webhook.Credentials, 403: webhook.Credentials,
	}
	for status, class := range want {
		if got := webhook.ClassifyStatus(status); got != class {
			t.Errorf("status %d: got %s, want %s", status, got, class)
		}
	}
}

func TestSendHeaderKeyAndBodyBytes(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"o1","tracking_url":"https://x/?a=1&b=<2>"}`)
	var got atomic.Pointer[http.Request]
	var gotBody atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r)
		gotBody.Store(&b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	s, err := webhook.NewSender()
	if err != nil {
		t.Fatal(err)
	}
	ep := &webhook.Endpoint{Partner: "p1", BaseURL: srv.URL, APIKey: webhook.NewSecret(testKey)}
	h := http.Header{}
	h.Set("Webhook-Id", "ord_1")
	resp, err := s.Send(context.Background(), ep, webhook.Request{Body: body, Header: h})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusAccepted {
		t.Fatalf("status %d", resp.Status)
	}
	r := got.Load()
	if r.Method != http.MethodPost || r.URL.Path != "/webhooks/partners/p1/events/order" {
		t.Fatalf("got %s %s", r.Method, r.URL.Path)
	}
	if r.Header.Get("X-Goog-Api-Key") != testKey || r.URL.RawQuery != "" {
		t.Fatalf("key not in header only: header %q query %q", r.Header.Get("X-Goog-Api-Key"), r.URL.RawQuery)
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Webhook-Id") != "ord_1" {
		t.Fatalf("headers %v", r.Header)
	}
	if string(*gotBody.Load()) != string(body) {
		t.Fatalf("body changed in transit: %s", *gotBody.Load())
	}
}

func TestSendQueryKeyNeverInErrors(t *testing.T) {
	t.Parallel()
	var query atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query.Store(r.URL.Query().Get("key"))
		http.Error(w, "bad request "+r.URL.String(), http.StatusBadRequest)
	}))
	defer srv.Close()
	s, _ := webhook.NewSender()
	ep := &webhook.Endpoint{Partner: "p1", BaseURL: srv.URL, APIKey: webhook.NewSecret(testKey), APIKeyQuery: "key"}
	_, err := s.Send(context.Background(), ep, webhook.Request{Body: []byte(`{}`)})
	if query.Load() != testKey {
		t.Fatalf("key not sent as query: %v", query.Load())
	}
	var se *webhook.StatusError
	if !errors.As(err, &se) || se.Status != 400 || webhook.Classify(err) != webhook.Permanent {
		t.Fatalf("want permanent 400, got %v", err)
	}
	// The partner echoed the URL: the echo is the partner's text, kept for operators, and
	// redaction of it is the dead-letter writer's job. The transport error path must not
	// carry the URL at all:
	srv.Close()
	_, err = s.Send(context.Background(), ep, webhook.Request{Body: []byte(`{}`)})
	if webhook.Classify(err) != webhook.Retryable {
		t.Fatalf("closed server: want retryable, got %v", err)
	}
	if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "key=") {
		t.Fatalf("transport error leaks the key: %v", err)
	}
}

func TestSendStatusClassesAndRetryAfter(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		status     int
		retryAfter string
		class      webhook.Class
		minRA      time.Duration
	}{
		{500, "", webhook.Retryable, 0},
		{503, "7", webhook.Retryable, 7 * time.Second},
		{429, date, webhook.Retryable, 80 * time.Second},
		{422, "", webhook.Permanent, 0},
		{401, "", webhook.Credentials, 0},
	}
	for _, c := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.retryAfter != "" {
				w.Header().Set("Retry-After", c.retryAfter)
			}
			http.Error(w, `{"error":"nope"}`, c.status)
		}))
		s, _ := webhook.NewSender()
		_, err := s.Send(context.Background(), &webhook.Endpoint{Partner: "p", BaseURL: srv.URL}, webhook.Request{Body: []byte(`{}`)})
		srv.Close()
		if got := webhook.Classify(err); got != c.class {
			t.Errorf("%d: class %s, want %s (%v)", c.status, got, c.class, err)
		}
		if ra := webhook.RetryAfterOf(err); ra < c.minRA || (c.minRA == 0 && ra != 0) {
			t.Errorf("%d: retry-after %s, want >= %s", c.status, ra, c.minRA)
		}
		if !strings.Contains(err.Error(), "nope") {
			t.Errorf("%d: error text lost: %v", c.status, err)
		}
	}
}

func TestSendTimeoutAndReset(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	defer slow.Close()
	defer close(done)
	s, _ := webhook.NewSender(webhook.WithAttemptTimeout(100 * time.Millisecond))
	_, err := s.Send(context.Background(), &webhook.Endpoint{Partner: "p", BaseURL: slow.URL}, webhook.Request{Body: []byte(`{}`)})
	if webhook.Classify(err) != webhook.Retryable || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("timeout: got %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*net.TCPConn).SetLinger(0)
			_ = c.Close()
		}
	}()
	_, err = s.Send(context.Background(), &webhook.Endpoint{Partner: "p", BaseURL: "http://" + ln.Addr().String()}, webhook.Request{Body: []byte(`{}`)})
	var te *webhook.TransportError
	if !errors.As(err, &te) || webhook.Classify(err) != webhook.Retryable {
		t.Fatalf("reset: got %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 9, 15, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-3":                            0,
		"12":                            12 * time.Second,
		"12abc":                         0,
		"Tue, 15 Sep 2026 12:01:00 GMT": time.Minute,
		"Tue, 15 Sep 2026 11:00:00 GMT": 0,
		"soon":                          0,
	}
	for in, want := range cases {
		if got := webhook.ParseRetryAfter(in, now); got != want {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
	}
}

func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	b := webhook.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, MaxRetryAfter: 3 * time.Second}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 10; n++ {
		ceil := min(100*time.Millisecond<<n, time.Second)
		for i := 0; i < 200; i++ {
			if d := b.Delay(n, nil); d <= 0 || d > ceil {
				t.Fatalf("retry %d: delay %s outside (0, %s]", n, d, ceil)
			}
		}
	}
	ra := &webhook.StatusError{Status: 429, RetryAfter: time.Hour}
	if d := b.Delay(0, ra); d != 3*time.Second {
		t.Fatalf("retry-after not capped: %s", d)
	}
	if err := (webhook.Backoff{}).Validate(); err == nil {
		t.Fatal("zero backoff validated")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := webhook.NewSecret(testKey)
	for _, out := range []string{s.String(), s.GoString(), s.LogValue().String()} {
		if strings.Contains(out, testKey) {
			t.Fatalf("secret printed: %s", out)
		}
	}
	if b, _ := s.MarshalText(); strings.Contains(string(b), testKey) {
		t.Fatal("secret marshalled")
	}
	if s.Reveal() != testKey {
		t.Fatal("reveal")
	}
}
