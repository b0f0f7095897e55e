package webhook

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with full jitter: the n-th retry waits a uniformly
// random time in [0, min(Max, Initial·2ⁿ)), so a crowd of retries spreads out instead of
// hitting a recovering partner in waves. A partner's Retry-After, capped at MaxRetryAfter,
// replaces the jittered delay when it is longer.
type Backoff struct {
	// Initial is the cap of the first retry's delay. Default 200ms.
	Initial time.Duration
	// Max caps every delay. Default 30s.
	Max time.Duration
	// MaxRetryAfter caps a partner's Retry-After. Default 5m.
	MaxRetryAfter time.Duration
}

// DefaultBackoff returns the defaults stated on [Backoff]'s fields.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 200 * time.Millisecond, Max: 30 * time.Second, MaxRetryAfter: 5 * time.Minute}
}

// WithDefaults returns b with each zero field set to its default.
func (b Backoff) WithDefaults() Backoff {
	d := DefaultBackoff()
	if b.Initial == 0 {
		b.Initial = d.Initial
	}
	if b.Max == 0 {
		b.Max = d.Max
	}
	if b.MaxRetryAfter == 0 {
		b.MaxRetryAfter = d.MaxRetryAfter
	}
	return b
}

// Validate checks the policy.
func (b Backoff) Validate() error {
	if b.Initial <= 0 || b.Max < b.Initial || b.MaxRetryAfter < 0 {
		return errors.New("webhook: backoff needs 0 < initial <= max and max_retry_after >= 0")
	}
	return nil
}

// Delay returns how long to wait before retry number n (0 for the first retry) after err.
func (b Backoff) Delay(n int, err error) time.Duration {
	ceil := b.Initial
	for i := 0; i < n && ceil < b.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.Max)
	d := time.Duration(rand.Int64N(int64(ceil)) + 1)
	if ra := min(RetryAfterOf(err), b.MaxRetryAfter); ra > d {
		d = ra
	}
	return d
}
