package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/demo"
)

// `make demo` must work on a fresh clone: the whole flow in one process, no broker: the
// outage opens the breaker and pauses fetching, every order converges, the late
// partner's order placed before it was configured is never sent and the one after is,
// the poison record is replayed (and dead-lettered again), and the record file holds
// every request without the API key. Every request is signed (RFC 9421 for the 2026-04-08
// partner, a detached JWS for the 2026-01-23 one) and verified with the public JWK the
// demo prints.
func TestDemoEndToEnd(t *testing.T) {
	t.Parallel()
	var out, rec bytes.Buffer
	sum, err := demo.Run(context.Background(), demo.Options{Orders: 16, Duration: 90 * time.Second, Outage: 4 * time.Second, Out: &out, Record: &rec})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if sum.Converged != 17 || sum.Invalid != 0 || sum.Stale != 0 || sum.BreakerOpened == 0 || !sum.Paused || sum.Refused == 0 ||
		sum.DeadLetters != 1 || sum.DeadLettersByReason["unknown_framing"] != 1 || sum.Replayed != 1 || sum.DeadLettersAfter != 2 ||
		sum.NotOurs != 1 || sum.Leaked != 0 || sum.Unverified != 0 {
		t.Fatalf("summary %+v\n%s", sum, out.String())
	}
	if n := strings.Count(rec.String(), "\n"); n != sum.Delivered+sum.Refused {
		t.Errorf("record file has %d lines, want %d delivered + %d refused", n, sum.Delivered, sum.Refused)
	}
	for _, path := range []string{"/webhooks/partners/google/events/order", "/webhooks/partners/acme-agent/events/order"} {
		if !strings.Contains(rec.String(), path) {
			t.Errorf("no request to %s in the record file", path)
		}
	}
	if strings.Contains(rec.String(), "demo-api-key") {
		t.Fatal("record file leaks the API key")
	}
	for _, want := range []string{`"kty":"EC","crv":"P-256"`, "RFC 9421 signature checked", "detached JWS checked", "progress", "PAUSED", "closed -> open", "half-open -> closed", "$ ucprelay dlq replay", "summary"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("narration lacks %q", want)
		}
	}
}
