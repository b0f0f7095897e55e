package chaos

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"text/tabwriter"
	"time"
)

// Report is what a scenario observed.
type Report struct {
	Orders, Events       int
	Faults               map[string]int
	Delivered            int // snapshots the partner accepted
	Lost, Stale, Invalid int
	NotAcked             int // orders whose state does not record their final snapshot acknowledged
	DeadBefore           map[string]int
	DeadAfter            map[string]int
	// Poison counts the poison records produced, by the reason each must be
	// dead-lettered with: DeadBefore must hold exactly as many of each.
	Poison map[string]int
	// NotOurs counts the orders of a platform not configured (never to be sent);
	// Leaked those the partner got anyway.
	NotOurs, Leaked int
	Took            time.Duration
}

// afterReplay is how many dead letters of a poison reason the topic must hold after the
// replay: each replayed poison record dead-lettered once more; a record without a key
// cannot be routed, so it is not replayed.
func (r Report) afterReplay(reason string) int {
	if reason == "missing_key" {
		return r.Poison[reason]
	}
	return 2 * r.Poison[reason]
}

// poisonReplayed reports whether every poison reason has its count after the replay.
func (r Report) poisonReplayed() bool {
	for reason := range r.Poison {
		if r.DeadAfter[reason] != r.afterReplay(reason) {
			return false
		}
	}
	return true
}

// Broken lists the promises the run broke; empty when it kept them all.
func (r Report) Broken() []string {
	var b []string
	if r.Lost > 0 {
		b = append(b, fmt.Sprintf("P1 nothing lost: %d orders never reached their final state at the partner", r.Lost))
	}
	if r.Stale > 0 {
		b = append(b, fmt.Sprintf("P2 never stale: the partner got %d older snapshots after newer ones", r.Stale))
	}
	if r.Invalid > 0 {
		b = append(b, fmt.Sprintf("P3 always complete and valid: %d bodies failed the UCP schema", r.Invalid))
	}
	for _, reason := range slices.Sorted(maps.Keys(r.Poison)) {
		if got, want := r.DeadBefore[reason], r.Poison[reason]; got != want {
			b = append(b, fmt.Sprintf("P8 containment: %d poison records must be dead-lettered %s exactly once, the dead-letter topic holds %d", want, reason, got))
		}
	}
	if r.Leaked > 0 {
		b = append(b, fmt.Sprintf("only a partner's own orders leave: the partner got %d of %d orders of a platform that is not configured", r.Leaked, r.NotOurs))
	}
	if !r.poisonReplayed() {
		for _, reason := range slices.Sorted(maps.Keys(r.Poison)) {
			if got, want := r.DeadAfter[reason], r.afterReplay(reason); got != want {
				b = append(b, fmt.Sprintf("dlq replay: %s dead letters %d after the replay, want %d (each replayed poison record dead-lettered once more)", reason, got, want))
			}
		}
	}
	if r.NotAcked > 0 {
		b = append(b, fmt.Sprintf("state: %d orders without their final snapshot acknowledged", r.NotAcked))
	}
	return b
}

// Print writes the report as a table.
func (r Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nchaos report (%s)\n", r.Took.Round(time.Second))
	fmt.Fprintf(tw, "orders\t%d\n", r.Orders)
	fmt.Fprintf(tw, "events\t%d\n", r.Events)
	var names []string
	for f := range r.Faults {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		fmt.Fprintf(tw, "fault: %s\t%d\n", f, r.Faults[f])
	}
	fmt.Fprintf(tw, "snapshots delivered\t%d\n", r.Delivered)
	fmt.Fprintf(tw, "lost\t%d\n", r.Lost)
	fmt.Fprintf(tw, "stale\t%d\n", r.Stale)
	fmt.Fprintf(tw, "schema-invalid\t%d\n", r.Invalid)
	fmt.Fprintf(tw, "orders without their final snapshot acknowledged in the state\t%d\n", r.NotAcked)
	reasons := map[string]bool{}
	for k := range r.DeadBefore {
		reasons[k] = true
	}
	for k := range r.DeadAfter {
		reasons[k] = true
	}
	names = names[:0]
	for k := range reasons {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(tw, "dead letters %s (before → after replay)\t%d → %d\n", k, r.DeadBefore[k], r.DeadAfter[k])
	}
	for _, k := range slices.Sorted(maps.Keys(r.Poison)) {
		fmt.Fprintf(tw, "poison records %s (produced → dead-lettered)\t%d → %d\n", k, r.Poison[k], r.DeadBefore[k])
	}
	fmt.Fprintf(tw, "orders of a platform not configured (placed → sent)\t%d → %d\n", r.NotOurs, r.Leaked)
	broken := r.Broken()
	if len(broken) == 0 {
		fmt.Fprintf(tw, "promises\tkept\n")
	}
	_ = tw.Flush()
	for _, b := range broken {
		fmt.Fprintf(w, "BROKEN: %s\n", b)
	}
}
