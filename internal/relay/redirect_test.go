package relay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// A partner answering 3xx is a failed delivery at the first answer: dead-lettered as
// http_redirect, never retried, never followed (the body, key and signature stay home,
// and the 200 of the server it points at is no acknowledgement), and no partner outage
// for the breaker.
func TestQueueRedirectFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	const key = "redirect-test-k3y"
	var reached atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer elsewhere.Close()
	var posts atomic.Int64
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		status := http.StatusFound
		if r.Header.Get("X-Order") == "temp" {
			status = http.StatusTemporaryRedirect
		}
		w.Header().Set("Location", elsewhere.URL+"/hook?key="+key)
		w.WriteHeader(status)
	}))
	defer partner.Close()

	snd, err := webhook.NewSender()
	if err != nil {
		t.Fatal(err)
	}
	q, outcomes := testQueue(t, snd, 1)
	q.cfg.Partners["p"] = Partner{Endpoint: webhook.Endpoint{Partner: "p", BaseURL: partner.URL, APIKey: webhook.NewSecret(key), APIKeyQuery: "key"}}
	// Were a redirect a failure of the endpoint, the first would open the breaker and the
	// second job would wait on it and end as circuit_open after the hold.
	q.cfg.Breaker.FailuresToTrip, q.cfg.Breaker.Hold, q.cfg.Breaker.Poll = 1, 200*time.Millisecond, 10*time.Millisecond
	q.breakers["p"] = q.cfg.newBreaker("p")
	ctx := context.Background()
	q.submit(ctx, job("found", 1))
	q.submit(ctx, job("temp", 1))
	q.wait()

	host := strings.TrimPrefix(elsewhere.URL, "http://")
	got := outcomes()
	if len(got) != 2 {
		t.Fatalf("outcomes %+v", got)
	}
	for _, o := range got {
		want := map[string]int{"found": http.StatusFound, "temp": http.StatusTemporaryRedirect}[o.Job.OrderID]
		if !o.Failed || o.Reason != ReasonRedirect || o.Attempts != 1 || o.HTTPStatus != want || o.WaitedOnOpen {
			t.Errorf("%s: want failed %s after 1 attempt with status %d, got %+v", o.Job.OrderID, ReasonRedirect, want, o)
		}
		if o.Err == nil || !strings.Contains(o.Err.Error(), host) {
			t.Errorf("%s: error does not name the Location host %s: %v", o.Job.OrderID, host, o.Err)
		} else if msg := o.Err.Error(); strings.Contains(msg, key) || strings.Contains(msg, "/hook") {
			t.Errorf("%s: error carries the Location's path or key: %s", o.Job.OrderID, msg)
		}
	}
	if n := posts.Load(); n != 2 {
		t.Errorf("%d POSTs to the partner, want 2 (one per job, no retries)", n)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
	if s := q.breakers["p"].State(); s != gobreaker.StateClosed {
		t.Errorf("breaker %s after redirects, want closed", s)
	}
	if u, _ := url.Parse(partner.URL); u.Host == host {
		t.Fatal("test servers share a host")
	}
}
