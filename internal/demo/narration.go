package demo

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/wait"
)

// progress prints a status line every second until the returned function is called.
func progress(ctx context.Context, out *lockedWriter, began time.Time, stats func() relay.Stats, health func() relay.Health,
	snk *partnerSinks, mu *sync.Mutex, sum *Summary) func() {
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wait.Sleep(pctx, time.Second) == nil {
			st, h, sk := stats(), health(), snk.Stats()
			if st.Paused {
				mu.Lock()
				sum.Paused = true
				mu.Unlock()
			}
			fetching := "fetching"
			if st.Paused {
				fetching = "PAUSED"
			}
			out.printf("progress   t=%4.1fs consumed %4d events, %4d snapshots delivered, %2d pending, %s, breakers %v, dead letters %d\n",
				time.Since(began).Seconds(), st.Consumed, sk.Accepted, st.Pending, fetching, h.Breakers, st.DeadLettered)
		}
	}()
	return func() { cancel(); <-done }
}

func printSummary(out *lockedWriter, s Summary, took time.Duration) {
	out.mu.Lock()
	defer out.mu.Unlock()
	tw := tabwriter.NewWriter(out.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(out.w, "\nsummary (%s)\n", took.Round(100*time.Millisecond))
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\t\n", k, v) }
	row("orders", s.Orders)
	row("events produced", s.Events)
	row("snapshots delivered", s.Delivered)
	row("orders at their final state", s.Converged)
	row("invalid", s.Invalid)
	row("stale", s.Stale)
	row("signature or API key refused", s.Unverified)
	row("requests refused in the outage", s.Refused)
	row("breaker opened", s.BreakerOpened)
	row("fetching paused", s.Paused)
	for reason, n := range s.DeadLettersByReason {
		row("dead-lettered: "+reason, n)
	}
	row("orders not ours (never sent)", s.NotOurs)
	row("replayed from the dead-letter topic", s.Replayed)
	row("dead-letter records after the replay", s.DeadLettersAfter)
	_ = tw.Flush()
}

// lockedWriter serialises the demo's narration and the sinks' record lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes p whole: a sink's record line, while the other sink may write too.
func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}
