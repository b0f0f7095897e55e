package oracle_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/oracle"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

// Each order's body is its whole history folded and rendered for 2026-04-08, and it is
// schema-valid; the order of the events does not matter.
func TestBodies(t *testing.T) {
	t.Parallel()
	val, err := ucpschema.New(string(ucp.V20260408))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	byOrder := map[string][]orderevents.Event{}
	for seed := range uint64(6) {
		id := "ord_" + string(rune('a'+seed))
		evs := gen.Lifecycle(id, "google", seed, at)
		rev := make([]orderevents.Event, 0, len(evs))
		for i := len(evs) - 1; i >= 0; i-- {
			rev = append(rev, evs[i])
		}
		byOrder[id] = rev
	}
	got, err := oracle.Bodies(byOrder)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(byOrder) {
		t.Fatalf("%d bodies for %d orders", len(got), len(byOrder))
	}
	for id, evs := range byOrder {
		s, err := fold.Fold(evs)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ucp.Marshal(s.Order, ucp.V20260408, ucp.Envelope{})
		if err != nil {
			t.Fatal(err)
		}
		if string(got[id]) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", id, got[id], want)
		}
		if err := val.Validate(got[id]); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// An order whose events do not fold is named, and the fold's error is kept.
func TestBodiesNamesTheOrder(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	evs := gen.Lifecycle("ord_late", "google", 1, at)
	_, err := oracle.Bodies(map[string][]orderevents.Event{"ord_late": evs[1:]}) // no placement
	if !errors.Is(err, fold.ErrNotPlaced) || !strings.Contains(err.Error(), "ord_late") {
		t.Fatalf("got %v, want fold.ErrNotPlaced naming ord_late", err)
	}
}

func TestSameJSON(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{`{"a":1,"b":[1,2]}`, `{ "b": [1, 2], "a": 1.0 }`, true},
		{`{"a":{"x":"y"}}`, "{\n  \"a\": {\"x\": \"y\"}\n}", true},
		{`{"a":1}`, `{"a":2}`, false},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, false},
		{`{"a":null}`, `{}`, false},
		{`{"a":1}`, `{"a":1`, false},
		{``, ``, false},
	} {
		if got := oracle.SameJSON([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("SameJSON(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
