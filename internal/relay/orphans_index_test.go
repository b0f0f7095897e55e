package relay

import (
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/statestore"
)

// The orphan index follows the committed values: an orphan's record enters it with its
// waiting time, a placed record, a marker or a tombstone takes the order out, and the
// oldest waiting time is the gauge's.
func TestOrphanIndexFollowsTheRecords(t *testing.T) {
	t.Parallel()
	p := &partition{orphans: map[string]time.Time{}}
	t0 := time.UnixMilli(1789480992000).UTC()
	orphan := func(since time.Time) []byte {
		return (&statestore.Record{Version: 1, HeldSince: since, Events: [][]byte{{1}}}).Marshal()
	}
	indexOrphan(p, "a", orphan(t0.Add(time.Minute)))
	indexOrphan(p, "b", orphan(t0))
	indexOrphan(p, "c", (&statestore.Record{Partner: "google", Version: 1, Events: [][]byte{{1}}}).Marshal())
	if len(p.orphans) != 2 || !oldestOrphan(p).Equal(t0) {
		t.Fatalf("index %v, oldest %v", p.orphans, oldestOrphan(p))
	}
	indexOrphan(p, "b", (&statestore.Record{Partner: "google", Version: 2, Pending: statestore.Delivery{Version: 2, Digest: make([]byte, statestore.DigestSize)}, Events: [][]byte{{1}, {2}}}).Marshal())
	indexOrphan(p, "a", nil)
	if len(p.orphans) != 0 || !oldestOrphan(p).IsZero() {
		t.Fatalf("after placement and tombstone: %v", p.orphans)
	}
}
