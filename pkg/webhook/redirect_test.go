package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// redirectPair starts the server a partner redirects to, counting what reaches it, and a
// partner answering status with a Location there whose path and query carry the key.
func redirectPair(t *testing.T, status int) (partner string, elsewhere *url.URL, reached *atomic.Int64) {
	t.Helper()
	reached = new(atomic.Int64)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusOK) // would read as the partner's acknowledgement
	}))
	t.Cleanup(other.Close)
	elsewhere, err := url.Parse(other.URL)
	if err != nil {
		t.Fatal(err)
	}
	loc := other.URL + "/secret-path/hook?key=" + url.QueryEscape(testKey) + "&token=t0k3n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", loc)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`<a href="` + loc + `">moved</a>`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, elsewhere, reached
}

// checkRedirectErr asserts err is a permanent, recognisable redirect naming only host.
func checkRedirectErr(t *testing.T, err error, status int, host string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%d: Send succeeded: the redirect was followed", status)
	}
	if c := webhook.Classify(err); c != webhook.Permanent {
		t.Fatalf("%d: class %s, want permanent (%v)", status, c, err)
	}
	var se *webhook.StatusError
	if !errors.As(err, &se) || se.Status != status || !se.Redirect() || !webhook.IsRedirect(err) {
		t.Fatalf("%d: want a redirect StatusError with status %d, got %#v", status, status, err)
	}
	if se.Location != host {
		t.Fatalf("%d: Location %q, want host %q", status, se.Location, host)
	}
	msg := err.Error()
	if !strings.Contains(msg, host) {
		t.Fatalf("%d: error does not name the Location host %s: %s", status, host, msg)
	}
	for _, leak := range []string{testKey, url.QueryEscape(testKey), "key=", "t0k3n", "secret-path", "moved"} {
		if strings.Contains(msg, leak) {
			t.Fatalf("%d: error carries %q from the Location or body: %s", status, leak, msg)
		}
	}
}

func TestSendNeverFollowsRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, query := range []string{"", "key"} {
			partner, elsewhere, reached := redirectPair(t, status)
			s, err := webhook.NewSender()
			if err != nil {
				t.Fatal(err)
			}
			ep := &webhook.Endpoint{Partner: "p1", BaseURL: partner, APIKey: webhook.NewSecret(testKey), APIKeyQuery: query}
			_, err = s.Send(context.Background(), ep, webhook.Request{Body: []byte(`{"id":"o1"}`)})
			checkRedirectErr(t, err, status, elsewhere.Host)
			if n := reached.Load(); n != 0 {
				t.Fatalf("%d (key query %q): the redirect target got %d requests", status, query, n)
			}
		}
	}
}

// TestSendCallerClientsFollowNoRedirects: a client given to WithHTTPClient or set as an
// Endpoint's Client follows no redirect either, and is itself left unchanged.
func TestSendCallerClientsFollowNoRedirects(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("caller's CheckRedirect")
	var called atomic.Int64
	follow := func(*http.Request, []*http.Request) error { called.Add(1); return sentinel }
	for _, status := range []int{302, 307} {
		for _, via := range []string{"WithHTTPClient", "Endpoint.Client"} {
			partner, elsewhere, reached := redirectPair(t, status)
			caller := &http.Client{Transport: webhook.NewTransport(), CheckRedirect: follow}
			plain := &http.Client{Transport: webhook.NewTransport()} // nil CheckRedirect: Go follows
			var opts []webhook.SenderOption
			ep := &webhook.Endpoint{Partner: "p1", BaseURL: partner, APIKey: webhook.NewSecret(testKey)}
			if via == "WithHTTPClient" {
				opts = append(opts, webhook.WithHTTPClient(caller))
			} else {
				ep.Client = caller
			}
			s, err := webhook.NewSender(opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Send(context.Background(), ep, webhook.Request{Body: []byte(`{}`)})
			checkRedirectErr(t, err, status, elsewhere.Host)
			ep.Client = plain
			_, err = s.Send(context.Background(), ep, webhook.Request{Body: []byte(`{}`)})
			checkRedirectErr(t, err, status, elsewhere.Host)
			if n := reached.Load(); n != 0 {
				t.Fatalf("%d via %s: the redirect target got %d requests", status, via, n)
			}
			if called.Load() != 0 {
				t.Fatalf("%d via %s: the caller's CheckRedirect was consulted", status, via)
			}
			if caller.CheckRedirect == nil || !errors.Is(caller.CheckRedirect(nil, nil), sentinel) {
				t.Fatalf("%d via %s: the caller's client was modified", status, via)
			}
			if plain.CheckRedirect != nil {
				t.Fatalf("%d via %s: the endpoint's client was modified", status, via)
			}
			called.Store(0)
		}
	}
}

func TestSendRedirectWithoutAbsoluteLocation(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("none") {
			w.WriteHeader(http.StatusMultipleChoices)
			return
		}
		w.Header().Set("Location", "/elsewhere?key="+testKey)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	s, _ := webhook.NewSender()
	ep := &webhook.Endpoint{Partner: "p1", BaseURL: srv.URL, APIKey: webhook.NewSecret(testKey)}
	_, err := s.Send(context.Background(), ep, webhook.Request{Body: []byte(`{}`)})
	checkRedirectErr(t, err, http.StatusTemporaryRedirect, u.Host) // relative: the partner's own host

	ep.APIKeyQuery = "none"
	_, err = s.Send(context.Background(), ep, webhook.Request{Body: []byte(`{}`)})
	var se *webhook.StatusError
	if !webhook.IsRedirect(err) || webhook.Classify(err) != webhook.Permanent || !errors.As(err, &se) || se.Location != "" {
		t.Fatalf("300 without Location: want a permanent redirect without host, got %v", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Fatalf("error leaks the key: %v", err)
	}
}

func TestNoRedirects(t *testing.T) {
	t.Parallel()
	if c := webhook.NoRedirects(nil); c == nil || c.CheckRedirect == nil {
		t.Fatal("NoRedirects(nil) must return a client refusing redirects")
	}
	orig := &http.Client{}
	c := webhook.NoRedirects(orig)
	if c == orig || orig.CheckRedirect != nil {
		t.Fatal("NoRedirects modified its argument")
	}
	if err := c.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Fatalf("CheckRedirect returned %v", err)
	}
}
