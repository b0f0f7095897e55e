package fold_test

import (
	"testing"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// Identity: the primary event's id, unless that id was sent already or the snapshot adds
// nothing; then a UUIDv5 of order, version and body digest, one per body.
func TestIdentityFallsBackToTheBodyDigest(t *testing.T) {
	t.Parallel()
	evs := []orderevents.Event{placed8F3KQ2()}
	s, err := fold.Fold(evs)
	if err != nil {
		t.Fatal(err)
	}
	none := func() []byte { t.Fatal("digest asked for although the primary event's id is free"); return nil }
	if got := s.Identity(evs, fold.Sent{}, none); got != "ord_8F3KQ2" || got != s.WebhookID {
		t.Fatalf("first send: %q, want the order id", got)
	}
	digest := func(b byte) func() []byte { return func() []byte { return []byte{b, 1, 2, 3} } }
	used := s.Identity(evs, fold.Sent{IDs: []string{"", "ord_8F3KQ2"}}, digest(1))
	again := s.Identity(evs, fold.Sent{Version: 1, IDs: []string{"ord_8F3KQ2"}}, digest(1))
	other := s.Identity(evs, fold.Sent{Version: 1, IDs: []string{"ord_8F3KQ2"}}, digest(2))
	if used == "ord_8F3KQ2" || len(used) != 36 || again != used || other == used {
		t.Fatalf("id taken: %q; nothing added, same body: %q; nothing added, other body: %q", used, again, other)
	}
}
