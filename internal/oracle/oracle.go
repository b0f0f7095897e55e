// Package oracle computes what a partner must end up with, independently of the relay:
// each order's events folded at once into its 2026-04-08 body. The demo, the chaos
// harness and the relay's integration tests compare the partner's latest body with it.
package oracle

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// Bodies folds each order's events into the 2026-04-08 body (without envelope) the
// partner must end up with, keyed by order id. The error names the first order whose
// events do not fold and wraps the fold's error.
func Bodies(byOrder map[string][]orderevents.Event) (map[string][]byte, error) {
	out := make(map[string][]byte, len(byOrder))
	for id, evs := range byOrder {
		s, err := fold.Fold(evs)
		if err != nil {
			return nil, fmt.Errorf("oracle: order %s: %w", id, err)
		}
		if out[id], err = ucp.Marshal(s.Order, ucp.V20260408, ucp.Envelope{}); err != nil {
			return nil, fmt.Errorf("oracle: order %s: %w", id, err)
		}
	}
	return out, nil
}

// SameJSON reports whether a and b are the same JSON value, whatever their layout and
// key order. Anything that is not JSON is the same as nothing.
func SameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
