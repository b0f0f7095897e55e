// Package reload applies a change of files while the service runs: it looks at a set of
// files at an interval and on demand (SIGHUP, wired in cmd/ucprelay), and when their
// content changed it calls Apply. ucprelay uses it to rotate the partners' signing keys
// without a restart (a Kubernetes Secret or ConfigMap update, an edited file).
//
// Files are compared by content (SHA-256), not modification time: Kubernetes replaces a
// mounted Secret by swapping a symbolic link, and an editor may keep the time. A failed
// Apply keeps what runs and is logged and counted; it is tried again at the next change
// or demand, not at every look, so a broken file is reported once.
package reload

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Watcher calls Apply when its files change or Demand is signalled.
type Watcher struct {
	// Files are the files whose change is applied; asked again after each successful
	// Apply (a reloaded configuration may name other key files).
	Files func() []string
	// Apply makes the change take effect; an error keeps what runs.
	Apply func(ctx context.Context) error
	// Interval between two looks at the files; 0: only on Demand.
	Interval time.Duration
	// Demand asks for an Apply now, changed or not (SIGHUP).
	Demand <-chan struct{}
	// Log receives one line per Apply. Default: slog.Default().
	Log *slog.Logger
}

// Run watches until ctx ends. It returns nil then.
func (w *Watcher) Run(ctx context.Context) error {
	log := w.Log
	if log == nil {
		log = slog.Default()
	}
	count, err := otel.Meter("github.com/ucprelay/ucprelay/internal/reload").Int64Counter("ucprelay.reloads",
		metric.WithDescription("Reloads of the signing keys (result: ok, failed), on a change of their files or SIGHUP."))
	if err != nil {
		return err
	}
	seen := digests(w.Files())
	var tick <-chan time.Time
	if w.Interval > 0 {
		t := time.NewTicker(w.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		cause := "changed"
		select {
		case <-ctx.Done():
			return nil
		case <-w.Demand:
			cause = "demanded"
		case <-tick:
		}
		now := digests(w.Files())
		if cause == "changed" && maps.Equal(now, seen) {
			continue
		}
		seen = now // a failed Apply is not tried again until the next change or demand
		if err := w.Apply(ctx); err != nil {
			log.Error("reload failed; what was loaded before keeps running", "cause", cause, "err", err)
			count.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "failed")))
			continue
		}
		count.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "ok")))
		// The files the applied change names; those looked at before Apply keep the
		// digest of that look, so a write during Apply is seen as a change (one more,
		// harmless, Apply) rather than missed.
		seen = digests(w.Files())
		for f := range seen {
			if d, ok := now[f]; ok {
				seen[f] = d
			}
		}
	}
}

// digests are the files' contents' hashes; a file that cannot be read has its error
// instead, so that its appearing, or going, is a change too.
func digests(files []string) map[string]string {
	out := make(map[string]string, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out[f] = "missing"
		case err != nil:
			out[f] = "unreadable: " + err.Error()
		default:
			sum := sha256.Sum256(b)
			out[f] = string(sum[:])
		}
	}
	return out
}
