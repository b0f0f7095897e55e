package relay

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// A produce error the broker gives for the record itself is told from an outage.
func TestRecordRefused(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]bool{
		kerr.MessageTooLarge: true, kerr.RecordListTooLarge: true, kerr.InvalidRecord: true, kerr.CorruptMessage: true,
		kerr.PolicyViolation: true, fmt.Errorf("produce: %w", kerr.MessageTooLarge): true,
		kerr.NotLeaderForPartition: false, kerr.RequestTimedOut: false, kerr.NotEnoughReplicas: false,
		errors.New("connection reset"): false, kgo.ErrRecordTimeout: false,
	} {
		if got := recordRefused(err); got != want {
			t.Errorf("%v: refused %v, want %v", err, got, want)
		}
	}
}

// Aborts for produce errors back off, growing; the same orders refused for the same
// reason isolateAfter times in a row are set aside, and only they; an outage (nothing
// refused) or a different refusal never isolates.
func TestProduceAbortsBackOffAndIsolate(t *testing.T) {
	t.Parallel()
	r := &Relay{cfg: Config{Backoff: webhook.Backoff{Initial: 10 * time.Millisecond, Max: time.Second}}, isolated: map[string]string{},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	big := []refusal{{key: "ord_big", err: kerr.MessageTooLarge}}
	var delays []time.Duration
	for range isolateAfter - 1 {
		delays = append(delays, r.afterProduceAbort(big))
		if r.isolatedErr("ord_big") != "" {
			t.Fatalf("set aside after %d aborts, want %d", len(delays), isolateAfter)
		}
	}
	// An outage between them starts the count again (it is not the same abort).
	delays = append(delays, r.afterProduceAbort(nil))
	for range isolateAfter - 1 {
		delays = append(delays, r.afterProduceAbort(big))
	}
	if r.isolatedErr("ord_big") != "" {
		t.Fatal("set aside although an outage broke the series")
	}
	delays = append(delays, r.afterProduceAbort(big))
	if why := r.isolatedErr("ord_big"); why == "" {
		t.Fatalf("not set aside after %d identical aborts in a row", isolateAfter)
	}
	if r.isolatedErr("ord_other") != "" {
		t.Error("an order that caused nothing is set aside")
	}
	for i, d := range delays {
		if d <= 0 || d > time.Second {
			t.Errorf("abort %d: waited %s, want a backoff within (0, 1s]", i, d)
		}
	}
	// The set-aside order's records become produce_refused dead letters with references.
	w := &keyWork{key: "ord_big", recs: []*kgo.Record{{Topic: "orders", Partition: 2, Offset: 7, Key: []byte("ord_big"), Value: make([]byte, 5000)}}}
	r.setAside(w, r.isolatedErr("ord_big"))
	if len(w.dead) != 1 {
		t.Fatalf("%d dead letters", len(w.dead))
	}
	d := w.dead[0]
	if d.Reason != ReasonProduceRefused || d.SourceOffset != 7 || d.ValueOmitted != 5000 || len(d.Value) > 200 {
		t.Errorf("dead letter %+v", d)
	}
	if ref, err := deadletter.ParseReference(d.Value); err != nil || ref.OrderID != "ord_big" {
		t.Errorf("reference %+v, %v", ref, err)
	}
}

// A state record fits when key and value stay within the limit the state topic allows.
func TestFitsState(t *testing.T) {
	t.Parallel()
	r := &Relay{}
	if !r.fitsState("o", make([]byte, 10<<20)) {
		t.Error("limit not read yet: nothing is refused")
	}
	lim := recordLimit(40000)
	if lim != 40000-batchOverhead || recordLimit(5<<20) != producerBatchMax-batchOverhead {
		t.Errorf("limits %d, %d", lim, recordLimit(5<<20))
	}
	r.stateLimit.Store(int64(lim))
	if !r.fitsState("ord", make([]byte, lim-3-24)) || r.fitsState("ord", make([]byte, lim-3-23)) {
		t.Error("the bound is not key + value + 24 bytes ≤ limit")
	}
}
