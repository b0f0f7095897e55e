package avrocodec_test

import (
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/ucprelay/ucprelay/pkg/avrocodec"
)

// Every reason is listed once, in snake_case, and only registry_unavailable is transient.
func TestReasons(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[string]bool{}
	for _, r := range avrocodec.Reasons() {
		if seen[r] || !snake.MatchString(r) {
			t.Errorf("reason %q: repeated or not snake_case", r)
		}
		seen[r] = true
		err := fmt.Errorf("relay: %w", &avrocodec.DecodeError{Code: r, Err: errors.New("detail")})
		if got := avrocodec.ReasonOf(err); got != r {
			t.Errorf("ReasonOf(%v) = %q, want %q", err, got, r)
		}
		var de *avrocodec.DecodeError
		if !errors.As(err, &de) || de.Transient() != (r == avrocodec.ReasonRegistryUnavailable) {
			t.Errorf("%s: Transient() = %v", r, de.Transient())
		}
	}
	if !seen[avrocodec.ReasonRegistryUnavailable] || !seen[avrocodec.ReasonCorruptPayload] {
		t.Errorf("Reasons() = %v", avrocodec.Reasons())
	}
	if got := avrocodec.ReasonOf(errors.New("plain")); got != "" {
		t.Errorf("ReasonOf(plain error) = %q, want none", got)
	}
}

// A field of the wrong shape deep in a payload is named by its path.
func TestCorruptFieldNamesItsPath(t *testing.T) {
	t.Parallel()
	line := func(qty any) map[string]any {
		return map[string]any{"id": "l", "quantity": qty, "item": map[string]any{"id": "i", "title": "t", "price": int64(1)}}
	}
	native := map[string]any{
		"event_id": "e", "order_id": "o", "occurred_at": int64(1), "source": "s",
		"payload": map[string]any{"OrderPlaced": map[string]any{
			"checkout_id": "c", "permalink_url": "u", "currency": "USD",
			"line_items": []any{line(int64(1)), line("two")},
		}},
	}
	_, err := avrocodec.FromNative(native)
	if avrocodec.ReasonOf(err) != avrocodec.ReasonCorruptPayload || !regexp.MustCompile(`line_items\[1\]\.quantity: not a long`).MatchString(err.Error()) {
		t.Fatalf("FromNative: %v", err)
	}
}
