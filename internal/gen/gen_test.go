package gen

import (
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

// Every generated lifecycle folds, at every prefix, into an order valid against the
// UCP schema: tests and benchmarks use them as their oracle.
func TestLifecyclesFoldValid(t *testing.T) {
	val, err := ucpschema.New(string(ucp.V20260408))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	kinds := map[int]int{}
	for seed := range uint64(70) {
		evs := Lifecycle("ord_gen", "google", seed, at)
		kinds[len(evs)]++
		for n := 1; n <= len(evs); n++ {
			s, err := fold.Fold(evs[:n])
			if err != nil {
				t.Fatalf("seed %d, %d events: %v", seed, n, err)
			}
			body, err := ucp.Marshal(s.Order, ucp.V20260408, ucp.Envelope{})
			if err != nil {
				t.Fatal(err)
			}
			if err := val.Validate(body); err != nil {
				t.Fatalf("seed %d, %d events: %v\n%s", seed, n, err, body)
			}
		}
	}
	if kinds[2] == 0 || kinds[3] == 0 || kinds[5] == 0 {
		t.Fatalf("lifecycle shapes %v: want cancellations, plain deliveries and returns", kinds)
	}
}
