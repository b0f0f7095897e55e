package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

// The schema registry client follows no redirect: its url can carry credentials
// (user:password@), which a 307 would send to the host it names.
func TestRegistryClientFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	var reached atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = w.Write([]byte(`["subject"]`))
	}))
	defer elsewhere.Close()
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer registry.Close()
	reg, err := registryClient(registry.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.Subjects(context.Background())
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("want the registry's 307 as the answer, got %v", err)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}
