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
