package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
)

// scanned collects what Scan passes to fn: each partition's values in the order read.
type scanned map[int32][]string

func (s scanned) fn(r *kgo.Record) error {
	s[r.Partition] = append(s[r.Partition], string(r.Value))
	return nil
}

// Scan reads with read_committed isolation: records of aborted transactions never reach
// fn, committed and plain ones do, in offset order per partition; the transaction
// markers at the end of a partition do not keep it waiting; `from` offsets are respected,
// and an offset below the log start reads from the log start.
func TestScanReadCommittedRealKafka(t *testing.T) {
	t.Parallel()
	e := realKafka(t)
	dlq := e.topic("dlq", 2)
	e.produce(rec(dlq, 0, "o", "plain-0"), rec(dlq, 0, "o", "plain-1"))
	e.txn(rec(dlq, 0, "o", "committed-0"), rec(dlq, 0, "o", "committed-1"), rec(dlq, 1, "o", "committed-p1"))(kgo.TryCommit)
	e.txn(rec(dlq, 1, "o", "aborted-p1"))(kgo.TryAbort)
	e.produce(rec(dlq, 1, "o", "plain-p1"))
	e.txn(rec(dlq, 0, "o", "aborted-0"), rec(dlq, 0, "o", "aborted-1"))(kgo.TryAbort) // partition 0 ends in an abort marker
	stable := e.waitStable(dlq)

	got := scanned{}
	ends, err := deadletter.Scan(e.ctx, e.kopts, dlq, nil, got.fn)
	if err != nil {
		t.Fatal(err)
	}
	want := scanned{0: {"plain-0", "plain-1", "committed-0", "committed-1"}, 1: {"committed-p1", "plain-p1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scan read %v, want %v", got, want)
	}
	if !maps.Equal(ends, stable) {
		t.Errorf("Scan returned ends %v, want the stable ends %v", ends, stable)
	}

	// From offset 3 of partition 0 (committed-1) and the end of partition 1.
	got = scanned{}
	if ends, err = deadletter.Scan(e.ctx, e.kopts, dlq, deadletter.Offsets{0: 3, 1: stable[1]}, got.fn); err != nil {
		t.Fatal(err)
	}
	if want := (scanned{0: {"committed-1"}}); !reflect.DeepEqual(got, want) || !maps.Equal(ends, stable) {
		t.Errorf("scan from offsets read %v (ends %v), want %v (ends %v)", got, ends, want, stable)
	}

	// Records removed from the log: an offset below its start reads from the start.
	resp, err := e.adm.DeleteRecords(e.ctx, kadm.Offsets{dlq: {0: {Topic: dlq, Partition: 0, At: 1}}})
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []deadletter.Offsets{nil, {0: 0}} {
		got = scanned{}
		if _, err := deadletter.Scan(e.ctx, e.kopts, dlq, from, got.fn); err != nil {
			t.Fatal(err)
		}
		if want := []string{"plain-1", "committed-0", "committed-1"}; !reflect.DeepEqual(got[0], want) {
			t.Errorf("scan from %v after the log start moved read %v, want %v", from, got[0], want)
		}
	}
}

// Scan ends at the last stable offsets of the time of the call: a record written while
// it runs, or after an open transaction, is left for the next scan, and an open
// transaction does not keep Scan waiting.
func TestScanEndsWhereTheCallStartedRealKafka(t *testing.T) {
	t.Parallel()
	e := realKafka(t)
	dlq := e.topic("dlq", 2)
	e.produce(rec(dlq, 0, "o", "a"), rec(dlq, 0, "o", "b"), rec(dlq, 1, "o", "c"))
	stable := e.waitStable(dlq)

	got := scanned{}
	ends, err := deadletter.Scan(e.ctx, e.kopts, dlq, nil, func(r *kgo.Record) error {
		if len(got) == 0 {
			e.produce(rec(dlq, 0, "o", "late-0"), rec(dlq, 1, "o", "late-1")) // acknowledged before the scan goes on
		}
		return got.fn(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (scanned{0: {"a", "b"}, 1: {"c"}}); !reflect.DeepEqual(got, want) || !maps.Equal(ends, stable) {
		t.Fatalf("scan read %v (ends %v), want %v (ends %v)", got, ends, want, stable)
	}
	got = scanned{}
	if ends, err = deadletter.Scan(e.ctx, e.kopts, dlq, ends, got.fn); err != nil {
		t.Fatal(err)
	}
	if want := (scanned{0: {"late-0"}, 1: {"late-1"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("the next scan read %v, want %v", got, want)
	}

	// An open transaction in partition 1, and a plain record after it: partition 1's
	// stable end stays at the transaction's first offset until it commits.
	open := ends[1]
	end := e.txn(rec(dlq, 1, "o", "in-txn"))
	e.produce(rec(dlq, 1, "o", "after-txn"), rec(dlq, 0, "o", "beside-txn"))
	got = scanned{}
	if ends, err = deadletter.Scan(e.ctx, e.kopts, dlq, ends, got.fn); err != nil {
		t.Fatal(err)
	}
	if want := (scanned{0: {"beside-txn"}}); !reflect.DeepEqual(got, want) || ends[1] != open {
		t.Errorf("with a transaction open at %d: read %v (ends %v), want %v", open, got, ends, want)
	}
	end(kgo.TryCommit)
	e.waitStable(dlq)
	got = scanned{}
	if _, err = deadletter.Scan(e.ctx, e.kopts, dlq, ends, got.fn); err != nil {
		t.Fatal(err)
	}
	if want := (scanned{1: {"in-txn", "after-txn"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("after the commit: read %v, want %v", got, want)
	}
}

// An error from fn stops the scan at once and is returned as it is.
func TestScanStopsOnFnError(t *testing.T) {
	t.Parallel()
	e := fakeKafka(t)
	dlq := e.topic("dlq", 1)
	for i := range 5 {
		e.produce(rec(dlq, 0, "o", fmt.Sprint(i)))
	}
	errStop := errors.New("stop here")
	var calls int
	ends, err := deadletter.Scan(e.ctx, e.kopts, dlq, nil, func(*kgo.Record) error {
		calls++
		if calls == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || calls != 2 || ends != nil {
		t.Errorf("Scan = %v, %v after %d calls; want the fn's error after 2", ends, err, calls)
	}
}

// An empty topic (or one read to its end) returns its ends without reading; a topic
// that does not exist is an error.
func TestScanEmptyAndMissingTopic(t *testing.T) {
	t.Parallel()
	e := fakeKafka(t)
	dlq := e.topic("dlq", 3)
	fn := func(r *kgo.Record) error { t.Errorf("read %v", r); return nil }
	ends, err := deadletter.Scan(e.ctx, e.kopts, dlq, nil, fn)
	if err != nil || !maps.Equal(ends, deadletter.Offsets{0: 0, 1: 0, 2: 0}) {
		t.Errorf("empty topic: %v, %v", ends, err)
	}
	e.produce(rec(dlq, 1, "o", "x"))
	if ends, err = deadletter.Scan(e.ctx, e.kopts, dlq, deadletter.Offsets{1: 1}, fn); err != nil || ends[1] != 1 {
		t.Errorf("read to its end: %v, %v", ends, err)
	}
	if _, err := deadletter.Scan(e.ctx, e.kopts, e.names.Topic("missing"), nil, fn); err == nil {
		t.Error("a missing topic was scanned")
	}
}

// A scan whose context has ended returns the context's error and reads nothing.
func TestScanContextEnded(t *testing.T) {
	t.Parallel()
	e := fakeKafka(t)
	dlq := e.topic("dlq", 1)
	e.produce(rec(dlq, 0, "o", "a"))
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err := deadletter.Scan(ctx, e.kopts, dlq, nil, func(r *kgo.Record) error { t.Errorf("read %v", r); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Scan = %v, want context.Canceled", err)
	}
}

// Inspect counts the selected records by reason, stage and partner ("(none)" without
// one), bounds their failure times, keeps up to the asked number of samples per reason,
// and counts records without dead-letter headers instead of failing on them.
func TestInspect(t *testing.T) {
	t.Parallel()
	e := fakeKafka(t)
	dlq := e.topic("dlq", 2)
	w, err := deadletter.NewWriter(e.prod, dlq, "test")
	if err != nil {
		t.Fatal(err)
	}
	// Records without a failure time count by their timestamp (written now), between these.
	oldest := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	newest := oldest.Add(72 * time.Hour)
	e.dead(w, 0, deliverFailure("o1", "circuit_open"), deliverFailure("o2", "circuit_open"), deliverFailure("o3", "circuit_open"))
	failures := []*kgo.Record{w.Record(deadletter.Record{OrderID: "o4", Reason: "http_rejected", Stage: deadletter.StageDeliver, Partner: "acme", LastFailure: oldest}),
		w.Record(deadletter.Record{OrderID: "o5", Reason: "http_rejected", Stage: deadletter.StageDeliver, Partner: "google", LastFailure: newest})}
	for _, r := range failures {
		r.Partition = 1
	}
	e.produce(failures...)
	e.dead(w, 1, deadletter.Record{OrderID: "o6", Reason: "corrupt_payload", Stage: deadletter.StageDecode})
	e.produce(rec(dlq, 1, "o7", "not a dead letter"))

	s, err := deadletter.Inspect(e.ctx, e.kopts, dlq, deadletter.Filter{Stages: []deadletter.Stage{deadletter.StageDeliver}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Scanned != 7 || s.Matched != 5 || s.Malformed != 1 || s.Topic != dlq || s.Filter == "" {
		t.Errorf("summary %+v", s)
	}
	if want := map[string]int{"circuit_open": 3, "http_rejected": 2}; !maps.Equal(s.ByReason, want) {
		t.Errorf("by reason %v, want %v", s.ByReason, want)
	}
	if want := map[string]int{"google": 4, "acme": 1}; !maps.Equal(s.ByPartner, want) || s.ByStage["deliver"] != 5 {
		t.Errorf("by partner %v, by stage %v", s.ByPartner, s.ByStage)
	}
	if !s.Oldest.Equal(oldest) || !s.Newest.Equal(newest) {
		t.Errorf("oldest %v newest %v", s.Oldest, s.Newest)
	}
	perReason := map[string]int{}
	for _, x := range s.Samples {
		perReason[x.Record.Reason]++
	}
	if want := map[string]int{"circuit_open": 2, "http_rejected": 2}; !maps.Equal(perReason, want) {
		t.Errorf("samples per reason %v, want %v", perReason, want)
	}
	if !maps.Equal(s.Ends, map[int32]int64{0: 3, 1: 4}) {
		t.Errorf("ends %v", s.Ends)
	}
	if s, err = deadletter.Inspect(e.ctx, e.kopts, dlq, deadletter.Filter{Partners: []string{""}}, 1); err != nil || s.ByPartner["(none)"] != 1 {
		t.Errorf("records without a partner: %+v, %v", s, err)
	}
}
