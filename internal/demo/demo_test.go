package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/demo"
)

// `make demo` must work on a fresh clone: the whole flow in one process, no broker.
func TestDemoEndToEnd(t *testing.T) {
	t.Parallel()
	var out, rec bytes.Buffer
	sum, err := demo.Run(context.Background(), demo.Options{Orders: 6, Duration: 60 * time.Second, Out: &out, Record: &rec})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if sum.Delivered != 6 || sum.Invalid != 0 || sum.Stale != 0 || sum.DeadLetters != 1 || sum.Retried != 2 {
		t.Fatalf("summary %+v\n%s", sum, out.String())
	}
	if n := strings.Count(rec.String(), "\n"); n != 8 { // 6 accepted + 2 injected failures
		t.Fatalf("record file has %d lines, want 8", n)
	}
	if strings.Contains(rec.String(), "demo-api-key") {
		t.Fatal("record file leaks the API key")
	}
}
