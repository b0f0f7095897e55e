package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfterSeconds keeps an absurd Retry-After from overflowing a Duration; callers
// cap it further by policy.
const maxRetryAfterSeconds = 7 * 24 * 3600

// Class tells the caller what to do with an answer or failure.
type Class int

const (
	// Success means the partner acknowledged the snapshot (2xx).
	Success Class = iota
	// Retryable means: try again after a backoff (timeouts, connection errors, 408, 425, 429, 5xx).
	Retryable
	// Permanent means the snapshot will never be accepted as sent (3xx, other 4xx); dead-letter it.
	Permanent
	// Credentials means 401 or 403. The endpoint rejects our credentials or signature for every
	// order alike; feed the breaker and alert instead of dead-lettering each order.
	Credentials
)

func (c Class) String() string {
	switch c {
	case Success:
		return "success"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case Credentials:
		return "credentials"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// ClassifyStatus maps an HTTP status code to its [Class].
func ClassifyStatus(status int) Class {
	switch {
	case status >= 200 && status < 300:
		return Success
	case status >= 300 && status < 400:
		// A redirect is never followed (see [NoRedirects]): the snapshot was not taken.
		return Permanent
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Credentials
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status == http.StatusFailedDependency, status >= 500:
		return Retryable
	default:
		return Permanent
	}
}

// maxErrorText bounds how much of a partner's error answer is kept.
const maxErrorText = 512

// StatusError is a non-2xx answer from the partner.
type StatusError struct {
	// Status is the HTTP status code.
	Status int
	// RetryAfter is the partner's Retry-After, zero when absent or unparsable.
	RetryAfter time.Duration
	// Text is the start of the answer body (at most 512 bytes), for the dead-letter record.
	// Empty for a redirect: its body tends to repeat the Location URL.
	Text string
	// Location is the host (and port) of a 3xx answer's Location header, resolved against
	// the request URL: never its path or query, which can carry the API key (P7). Empty for
	// other answers and for a redirect without a usable Location.
	Location string
}

func (e *StatusError) Error() string {
	if e.Redirect() {
		if e.Location == "" {
			return fmt.Sprintf("webhook: partner answered %d, a redirect without a usable Location; redirects are never followed", e.Status)
		}
		return fmt.Sprintf("webhook: partner answered %d, a redirect to host %s; redirects are never followed", e.Status, e.Location)
	}
	if e.Text == "" {
		return fmt.Sprintf("webhook: partner answered %d", e.Status)
	}
	return fmt.Sprintf("webhook: partner answered %d: %s", e.Status, e.Text)
}

// Class returns the behaviour class of the status.
func (e *StatusError) Class() Class { return ClassifyStatus(e.Status) }

// Redirect reports whether the answer was a 3xx, which the [Sender] never follows.
func (e *StatusError) Redirect() bool { return e.Status >= 300 && e.Status < 400 }

// IsRedirect reports whether err carries a partner's 3xx answer ([StatusError.Redirect]).
func IsRedirect(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Redirect()
}

// TransportError is a failure to get any answer: connection refused or reset, timeout,
// DNS or TLS failure. Always retryable. Its text never contains the request URL, so an
// API key sent as a query parameter cannot leak through it (P7).
type TransportError struct {
	// Op is what failed, e.g. "post".
	Op  string
	Err error
}

func (e *TransportError) Error() string { return "webhook: " + e.Op + ": " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// Class returns [Retryable].
func (e *TransportError) Class() Class { return Retryable }

// Classify returns the class of an error returned by [Sender.Send]: [Success] for nil,
// the class of a [StatusError] or [TransportError], and [Permanent] for anything else
// (a request that cannot be built will not build on the next try either).
func Classify(err error) Class {
	if err == nil {
		return Success
	}
	var c interface{ Class() Class }
	if errors.As(err, &c) {
		return c.Class()
	}
	return Permanent
}

// RetryAfterOf returns the Retry-After carried by err, or zero.
func RetryAfterOf(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// ParseRetryAfter reads a Retry-After value in either form of RFC 9110: delay seconds or
// an HTTP date. It returns zero for an empty, negative or unparsable value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, maxRetryAfterSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
