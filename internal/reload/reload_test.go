package reload_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/reload"
)

// A watcher applies a change of content, a demand with or without a change, not an
// unchanged look; a failed apply is not retried until the next change or demand. The
// interval is short, but every assertion waits for an event, never for a time.
func TestWatcherAppliesChangesAndDemands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	file := filepath.Join(dir, "key.pem")
	write := func(s string) {
		t.Helper()
		// As Kubernetes does: a new file renamed over the old one.
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	applied := make(chan string, 16)
	var fail atomic.Bool
	looks := make(chan struct{}, 1)
	demand := make(chan struct{})
	w := &reload.Watcher{
		Files: func() []string {
			select {
			case looks <- struct{}{}:
			default:
			}
			return []string{file}
		},
		Apply: func(context.Context) error {
			b, _ := os.ReadFile(file)
			applied <- string(b)
			if fail.Load() {
				return errors.New("bad key")
			}
			return nil
		},
		Interval: 5 * time.Millisecond,
		Demand:   demand,
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	next := func(want string) {
		t.Helper()
		select {
		case got := <-applied:
			if got != want {
				t.Fatalf("applied %q, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("no apply; want %q", want)
		}
	}
	// quiet waits for several looks and asserts none applied.
	quiet := func() {
		t.Helper()
		for range 5 {
			<-looks
		}
		select {
		case got := <-applied:
			t.Fatalf("applied %q without a change", got)
		default:
		}
	}
	quiet()
	write("two")
	next("two")
	quiet()
	demand <- struct{}{}
	next("two") // a demand applies even without a change
	fail.Store(true)
	write("three")
	next("three")
	quiet() // the failure is reported once, not at every look
	fail.Store(false)
	demand <- struct{}{}
	next("three")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	next("") // a file that goes is a change too
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
