package fold

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"testing"
)

var snakeCase = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

// Reasons is the table's reasons in order, then the unclassified one, each once and in
// snake_case; each domain error, however wrapped, maps to its own.
func TestReasonsListTheTable(t *testing.T) {
	t.Parallel()
	got := Reasons()
	if len(got) != len(reasons)+1 || got[len(got)-1] != ReasonUnclassified {
		t.Fatalf("Reasons() = %v, want the %d table entries then %q", got, len(reasons), ReasonUnclassified)
	}
	for i, r := range reasons {
		if got[i] != r.reason {
			t.Errorf("Reasons()[%d] = %q, want %q (the table's order)", i, got[i], r.reason)
		}
	}
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r] || !snakeCase.MatchString(r) {
			t.Errorf("reason %q: repeated or not snake_case", r)
		}
		seen[r] = true
	}
	if !slices.Contains(got, "orphan") {
		t.Errorf("Reasons() = %v lacks orphan (ErrNotPlaced)", got)
	}
}

func TestReasonOfEachDomainError(t *testing.T) {
	t.Parallel()
	for _, r := range reasons {
		for _, err := range []error{
			r.err,
			fail(r.err, "order %s", "o1"),
			fmt.Errorf("relay: %w", &Error{Err: fmt.Errorf("%w: detail", r.err)}),
		} {
			if got := Reason(err); got != r.reason {
				t.Errorf("Reason(%v) = %q, want %q", err, got, r.reason)
			}
		}
		var fe *Error
		if err := fail(r.err, "x"); !errors.As(err, &fe) || fe.Reason() != r.reason {
			t.Errorf("(*Error).Reason of %v: want %q", err, r.reason)
		}
	}
	for _, err := range []error{nil, errors.New("something else")} {
		if got := Reason(err); got != ReasonUnclassified {
			t.Errorf("Reason(%v) = %q, want %q", err, got, ReasonUnclassified)
		}
	}
}
