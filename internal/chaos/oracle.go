package chaos

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// Oracle folds each order's events into the 2026-04-08 body the partner must end up with.
func Oracle(byOrder map[string][]orderevents.Event) (map[string][]byte, error) {
	out := make(map[string][]byte, len(byOrder))
	for id, evs := range byOrder {
		s, err := fold.Fold(evs)
		if err != nil {
			return nil, fmt.Errorf("chaos: oracle of %s: %w", id, err)
		}
		if out[id], err = ucp.Marshal(s.Order, ucp.V20260408, ucp.Envelope{}); err != nil {
			return nil, fmt.Errorf("chaos: oracle of %s: %w", id, err)
		}
	}
	return out, nil
}

// SameJSON reports whether a and b are the same JSON value, whatever their layout.
func SameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
