package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ucprelay/ucprelay/internal/relay"
)

// ErrTransactionalIDCollision is run's error when the relay was fenced fenceLimit times
// within fenceWindow: two live processes hold one transactional id, and each fences the
// other as it starts again. The process that finds it out stops relaying (the other
// goes on alone) instead of fencing it once more; it reports the cause on /readyz and in
// the log until it is stopped.
var ErrTransactionalIDCollision = errors.New("transactional id collision")

const (
	fenceLimit  = 3
	fenceWindow = 10 * time.Minute
	// fenceRejoin is the pause before a fenced relay starts again.
	fenceRejoin = time.Second
)

// fences counts the fences of the last window.
type fences struct {
	at []time.Time
}

// add records a fence at now and reports whether the limit is reached within the window.
func (f *fences) add(now time.Time) bool {
	kept := f.at[:0]
	for _, t := range f.at {
		if now.Sub(t) < fenceWindow {
			kept = append(kept, t)
		}
	}
	f.at = append(kept, now)
	return len(f.at) >= fenceLimit
}

// relayFenced runs the relay in cur until ctx ends or it fails. A fence (relay.ErrFenced)
// is what a restart of this replica does to its predecessor, so a fenced relay is built
// again and rejoins (it may be the predecessor, and the successor fences it for good);
// the fenceLimit-th fence within fenceWindow is a collision, reported with its cause.
// problem holds what /readyz reports instead of the relay's health: the rebuild after a
// fence, or the collision.
func (a *app) relayFenced(ctx context.Context, cfg *settings, log *slog.Logger, cur *atomic.Pointer[relay.Relay], problem *atomic.Pointer[string]) error {
	var f fences
	id := cfg.transactionalID()
	for {
		err := cur.Load().Run(ctx)
		if !errors.Is(err, relay.ErrFenced) || ctx.Err() != nil {
			return err
		}
		wait := fenceRejoin
		if f.add(time.Now()) {
			collision := fmt.Errorf("%w: fenced %d times within %s: another live process uses transactional id %q (two processes on one host share the default id %s<host name>, or two replicas were given one kafka.transactional_id or kafka.instance_id); this process stops relaying so the other runs undisturbed, and tries again in %s: give each replica its own kafka.instance_id or kafka.transactional_id, then restart this one",
				ErrTransactionalIDCollision, len(f.at), fenceWindow, id, cfg.Kafka.TransactionalIDPrefix, fenceWindow)
			cause := collision.Error()
			problem.Store(&cause)
			log.Error("transactional id collision: relaying stopped", "transactional_id", id, "cause", cause)
			// The other holder may be gone by then (a zombie that died, or fences that
			// were something else): start again, with the count begun anew.
			wait, f = fenceWindow, fences{}
			err = collision
		} else {
			rebuilding := fmt.Sprintf("fenced (%d of %d within %s): starting again with a new producer", len(f.at), fenceLimit, fenceWindow)
			problem.Store(&rebuilding)
			log.Warn("fenced: another producer initialized this replica's transactional id; starting again with a new producer (a newer process of this replica fences this one for good)",
				"transactional_id", id, "fences", len(f.at), "collision_after", fenceLimit, "err", err)
			err = nil
		}
		select {
		case <-ctx.Done(): // stopped while fenced: the collision, if it was one, is the exit's cause
			return err
		case <-time.After(wait):
		}
		r, berr := a.buildRelay(ctx, cfg)
		if berr != nil {
			if ctx.Err() != nil {
				return err // stopped while it was built again
			}
			return berr
		}
		cur.Store(r)
		problem.Store(nil)
	}
}
