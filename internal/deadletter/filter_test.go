package deadletter_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/deadletter"
)

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	written := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	failed := written.Add(-time.Hour)
	decode := deadletter.Record{OrderID: "o1", Reason: "corrupt_payload", Stage: deadletter.StageDecode}
	deliver := deadletter.Record{OrderID: "o2", Reason: "circuit_open", Stage: deadletter.StageDeliver, Partner: "google", LastFailure: failed}
	cases := []struct {
		name string
		f    deadletter.Filter
		r    deadletter.Record
		want bool
	}{
		{"empty filter", deadletter.Filter{}, decode, true},
		{"reason", deadletter.Filter{Reasons: []string{"circuit_open", "corrupt_payload"}}, decode, true},
		{"other reason", deadletter.Filter{Reasons: []string{"circuit_open"}}, decode, false},
		{"stage", deadletter.Filter{Stages: []deadletter.Stage{deadletter.StageDeliver}}, deliver, true},
		{"other stage", deadletter.Filter{Stages: []deadletter.Stage{deadletter.StageFold}}, deliver, false},
		{"order", deadletter.Filter{OrderIDs: []string{"o2"}}, deliver, true},
		{"other order", deadletter.Filter{OrderIDs: []string{"o2"}}, decode, false},
		{"partner", deadletter.Filter{Partners: []string{"google"}}, deliver, true},
		{"no partner", deadletter.Filter{Partners: []string{"google"}}, decode, false},
		{"every field", deadletter.Filter{Reasons: []string{"circuit_open"}, Stages: []deadletter.Stage{deadletter.StageDeliver},
			OrderIDs: []string{"o2"}, Partners: []string{"google"}}, deliver, true},
		{"one field of several fails", deadletter.Filter{Reasons: []string{"circuit_open"}, Partners: []string{"other"}}, deliver, false},
		// Times: a delivery failure by its last failure, anything else by when it was written.
		{"since, inclusive", deadletter.Filter{Since: written}, decode, true},
		{"since, after", deadletter.Filter{Since: written.Add(time.Nanosecond)}, decode, false},
		{"until, exclusive", deadletter.Filter{Until: written}, decode, false},
		{"until, after", deadletter.Filter{Until: written.Add(time.Nanosecond)}, decode, true},
		{"last failure before since", deadletter.Filter{Since: failed.Add(time.Minute)}, deliver, false},
		{"last failure within", deadletter.Filter{Since: failed, Until: written}, deliver, true},
	}
	for _, c := range cases {
		if got := c.f.Match(c.r, written); got != c.want {
			t.Errorf("%s: %s matches %+v: %v, want %v", c.name, c.f, c.r, got, c.want)
		}
	}
}

func TestRecordTime(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	if got := (deadletter.Record{}).Time(ts); !got.Equal(ts) {
		t.Errorf("without a failure time: %v, want the record timestamp", got)
	}
	last := ts.Add(-time.Hour)
	if got := (deadletter.Record{FirstFailure: last.Add(-time.Hour), LastFailure: last}).Time(ts); !got.Equal(last) {
		t.Errorf("with failures: %v, want the last", got)
	}
}

// String names a selection, not the way it was typed: reordering the values or the time
// zone of the bounds keeps it; any other selection changes it (and so the default
// progress group).
func TestFilterStringIsStable(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	a := deadletter.Filter{Reasons: []string{"circuit_open", "http_rejected"}, Stages: []deadletter.Stage{deadletter.StageFold, deadletter.StageDeliver},
		OrderIDs: []string{"o2", "o1"}, Partners: []string{"google", "acme"}, Since: since}
	b := deadletter.Filter{Reasons: []string{"http_rejected", "circuit_open"}, Stages: []deadletter.Stage{deadletter.StageDeliver, deadletter.StageFold},
		OrderIDs: []string{"o1", "o2"}, Partners: []string{"acme", "google"}, Since: since.In(time.FixedZone("PST", -8*3600))}
	if a.String() != b.String() {
		t.Errorf("reordered filters differ:\n%s\n%s", a, b)
	}
	if deadletter.DefaultReplayGroup("dlq", a) != deadletter.DefaultReplayGroup("dlq", b) {
		t.Error("reordered filters have different default replay groups")
	}
	if !slices.Equal(a.Reasons, []string{"circuit_open", "http_rejected"}) || !slices.Equal(b.OrderIDs, []string{"o1", "o2"}) ||
		a.Stages[0] != deadletter.StageFold {
		t.Error("String reordered the filter's own values")
	}
	others := []deadletter.Filter{
		{},
		{Reasons: []string{"circuit_open"}},
		{Stages: []deadletter.Stage{"circuit_open"}},
		{OrderIDs: []string{"circuit_open"}},
		{Partners: []string{"circuit_open"}},
		{Since: since},
		{Until: since},
		{Since: since.Add(time.Nanosecond)},
	}
	seen := map[string]int{}
	for i, f := range others {
		if j, dup := seen[f.String()]; dup {
			t.Errorf("filters %d and %d render alike: %s", j, i, f)
		}
		seen[f.String()] = i
	}
	if deadletter.DefaultReplayGroup("dlq-a", a) == deadletter.DefaultReplayGroup("dlq-b", a) {
		t.Error("the default replay group does not depend on the topic")
	}
}
