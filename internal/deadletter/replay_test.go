package deadletter_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/keys"
)

const inputPartitions = 4

// replayTopics returns an env on the real broker with a dead-letter topic of dlqParts
// partitions, an input topic of [inputPartitions], and a writer to the former.
func replayTopics(t *testing.T, dlqParts int32) (e *kafkaEnv, dlq, input string, w *deadletter.Writer) {
	t.Helper()
	e = realKafka(t)
	dlq, input = e.topic("dlq", dlqParts), e.topic("input", inputPartitions)
	w, err := deadletter.NewWriter(e.prod, dlq, "test")
	if err != nil {
		t.Fatal(err)
	}
	return e, dlq, input, w
}

// dead writes dead-letter records with w to the given partitions of its topic and returns
// them as written (with their offsets).
func (e *kafkaEnv) dead(w *deadletter.Writer, p int32, rs ...deadletter.Record) []*kgo.Record {
	e.t.Helper()
	out := make([]*kgo.Record, len(rs))
	for i, r := range rs {
		out[i] = w.Record(r)
		out[i].Partition = p
	}
	return e.produce(out...)
}

func deliverFailure(order, reason string) deadletter.Record {
	return deadletter.Record{OrderID: order, Reason: reason, Stage: deadletter.StageDeliver, Partner: "google", HTTPStatus: 503, Attempts: 3,
		SourceTopic: "orders", SourcePartition: 1, SourceOffset: 10,
		Value: deadletter.EncodeReference(deadletter.Reference{OrderID: order, Partner: "google", SnapshotVersion: 2})}
}

func replayOf(kr *kgo.Record) string {
	return fmt.Sprintf("%s/%d@%d", kr.Topic, kr.Partition, kr.Offset)
}

func header(kr *kgo.Record, key string) string {
	for _, h := range kr.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Replay writes each selected record to the input partition that owns its order
// (murmur2, as the producers place keys), with its value, a replay kind (resend for a
// delivery failure and for a snapshot that could not be rendered, event otherwise) and
// the dead-letter record it replays; records it cannot route and records the filter
// does not select are counted. Its progress group then makes a second run replay
// nothing, a third only what was dead-lettered since; FromStart reads everything again.
func TestReplayRoutesAndResumesRealKafka(t *testing.T) {
	t.Parallel()
	e, dlq, input, w := replayTopics(t, 2)
	written := e.dead(w, 0,
		deliverFailure("ord_deliver", "circuit_open"),
		deadletter.Record{OrderID: "ord_render", Reason: "render_failed", Stage: deadletter.StageFold, Partner: "google",
			Value: deadletter.EncodeReference(deadletter.Reference{OrderID: "ord_render", Partner: "google", SnapshotVersion: 1})},
		deadletter.Record{Reason: "missing_key", Stage: deadletter.StageDecode, Value: []byte("keyless")},
		deliverFailure("ord_other", "http_rejected"),
	)
	written = append(written, e.dead(w, 1,
		deadletter.Record{OrderID: "ord_decode", Reason: "corrupt_payload", Stage: deadletter.StageDecode, Value: []byte{0xc3, 0x01, 0xff},
			SourceTimestamp: time.UnixMilli(1788000000123).UTC(), SourceHeaders: []kgo.RecordHeader{{Key: "source-system", Value: []byte("oms")}}},
		deadletter.Record{OrderID: "ord_fold", Reason: "over_fulfilled", Stage: deadletter.StageFold, Value: []byte("event bytes")},
	)...)
	written = append(written, e.produce(rec(dlq, 1, "ord_plain", "no dead-letter headers"))...)
	filter := deadletter.Filter{Reasons: []string{"circuit_open", "render_failed", "missing_key", "corrupt_payload", "over_fulfilled"}}
	group := e.names.Group()
	cfg := deadletter.ReplayConfig{KafkaOpts: e.kopts, Topic: dlq, InputTopic: input, Filter: filter, Group: group}
	var reports []deadletter.ReplayStats
	cfg.Progress = func(s deadletter.ReplayStats) { reports = append(reports, s) }

	st, err := deadletter.Replay(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Group != group || st.Scanned != 7 || st.Replayed != 4 || st.Skipped != 1 || st.Unroutable != 2 || st.Span != 7 || st.Position != 7 {
		t.Errorf("replay: %+v; want 7 scanned, 4 replayed, 1 skipped (http_rejected), 2 unroutable (no key, no headers)", st)
	}
	if len(reports) == 0 || reports[len(reports)-1].Position != st.Span || reports[len(reports)-1].Replayed != 4 {
		t.Errorf("progress reports %+v, want a last one at the end", reports)
	}
	wantKind := map[string]deadletter.ReplayKind{"ord_deliver": deadletter.ReplayResend, "ord_render": deadletter.ReplayResend,
		"ord_decode": deadletter.ReplayEvent, "ord_fold": deadletter.ReplayEvent}
	source := map[string]*kgo.Record{}
	for _, kr := range written {
		source[string(kr.Key)] = kr
	}
	part := keys.MustNew(keys.Murmur2)
	owners := map[int32]bool{}
	for _, r := range e.consume(input, len(wantKind)) {
		order := string(r.Key)
		kind, ok := wantKind[order]
		if !ok {
			t.Errorf("replayed order %q, which the filter does not select", order)
			continue
		}
		delete(wantKind, order)
		owner := part.Partition(r.Key, inputPartitions)
		owners[owner] = true
		src := source[order]
		if r.Partition != owner || string(r.Value) != string(src.Value) {
			t.Errorf("order %s replayed to partition %d (owner %d), value %q (dead letter's %q)", order, r.Partition, owner, r.Value, src.Value)
		}
		if got := deadletter.ReplayKindOf(r.Headers); got != kind {
			t.Errorf("order %s replayed as %q, want %q", order, got, kind)
		}
		if got := header(r, deadletter.HeaderReplayOf); got != replayOf(src) {
			t.Errorf("order %s: replay-of %q, want %q", order, got, replayOf(src))
		}
		// The input record's own headers and timestamp come back with it (a mapping may read them).
		if order == "ord_decode" && (header(r, "source-system") != "oms" || r.Timestamp.UnixMilli() != 1788000000123) {
			t.Errorf("order %s replayed with headers %v at %s, want its source's", order, r.Headers, r.Timestamp)
		}
	}
	if len(owners) < 2 {
		t.Errorf("every replayed order is owned by one partition %v: the routing is not tested", owners)
	}

	// The group kept the progress: nothing is replayed twice.
	cfg.Progress = nil
	if st, err = deadletter.Replay(e.ctx, cfg); err != nil || st.Scanned != 0 || st.Replayed != 0 || st.Span != 0 {
		t.Errorf("second run: %+v, %v; want nothing left", st, err)
	}
	// Only what was dead-lettered since.
	late := e.dead(w, 1, deliverFailure("ord_late", "circuit_open"))[0]
	if st, err = deadletter.Replay(e.ctx, cfg); err != nil || st.Scanned != 1 || st.Replayed != 1 {
		t.Errorf("third run: %+v, %v; want the one record written since", st, err)
	}
	got := e.consume(input, 5)
	if i := slices.IndexFunc(got, func(r *kgo.Record) bool { return string(r.Key) == "ord_late" }); i < 0 || header(got[i], deadletter.HeaderReplayOf) != replayOf(late) {
		t.Errorf("the late record is not replayed as %s", replayOf(late))
	}
	// FromStart reads everything again, whatever the group kept.
	cfg.FromStart = true
	if st, err = deadletter.Replay(e.ctx, cfg); err != nil || st.Scanned != 8 || st.Replayed != 5 || st.Skipped != 1 || st.Unroutable != 2 {
		t.Errorf("from the start: %+v, %v; want all 8 read again, 5 replayed", st, err)
	}
	e.consume(input, 10)
}

// A dry run selects and lists what it would replay but writes nothing and keeps no
// progress: the real run after it replays everything. Without a group the replay keeps
// its progress in the filter's default group.
func TestReplayDryRunRealKafka(t *testing.T) {
	t.Parallel()
	e, dlq, input, w := replayTopics(t, 1)
	e.dead(w, 0, deliverFailure("ord_a", "circuit_open"), deliverFailure("ord_b", "circuit_open"), deliverFailure("ord_c", "retries_exhausted"))
	filter := deadletter.Filter{Reasons: []string{"circuit_open"}}
	var listed []string
	cfg := deadletter.ReplayConfig{KafkaOpts: e.kopts, Topic: dlq, InputTopic: input, Filter: filter, DryRun: true,
		OnRecord: func(r deadletter.Record) { listed = append(listed, r.OrderID) }}
	st, err := deadletter.Replay(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Replayed != 2 || st.Skipped != 1 || !slices.Equal(listed, []string{"ord_a", "ord_b"}) {
		t.Errorf("dry run: %+v, listed %v", st, listed)
	}
	if want := deadletter.DefaultReplayGroup(dlq, filter); st.Group != want || !strings.HasPrefix(want, "ucprelay-dlq-replay-") {
		t.Errorf("group %q, want the default %q", st.Group, want)
	}
	for p, o := range e.ends(input) {
		if o != 0 {
			t.Errorf("the dry run wrote to input partition %d", p)
		}
	}
	if offs, err := e.adm.FetchOffsets(e.ctx, st.Group); err == nil && len(offs[dlq]) != 0 {
		t.Errorf("the dry run kept progress: %v", offs)
	}

	cfg.DryRun, cfg.OnRecord = false, nil
	if st, err = deadletter.Replay(e.ctx, cfg); err != nil || st.Replayed != 2 {
		t.Fatalf("the run after the dry run: %+v, %v; want both replayed", st, err)
	}
	e.consume(input, 2)
	if st, err = deadletter.Replay(e.ctx, cfg); err != nil || st.Scanned != 0 {
		t.Errorf("a run with the same filter: %+v, %v; want the default group's progress kept", st, err)
	}
	// Another selection has its own group, and has not read anything yet.
	cfg.Filter = deadletter.Filter{Reasons: []string{"retries_exhausted"}}
	if st, err = deadletter.Replay(e.ctx, cfg); err != nil || st.Scanned != 3 || st.Replayed != 1 {
		t.Errorf("another filter: %+v, %v; want its own progress, from the start", st, err)
	}
}

// The configured partitioner places the records, as the producers place keys.
func TestReplayPartitionerRealKafka(t *testing.T) {
	t.Parallel()
	e, dlq, input, w := replayTopics(t, 1)
	orders := []string{"ord_1", "ord_2", "ord_3", "ord_4", "ord_5", "ord_6"}
	for _, id := range orders {
		e.dead(w, 0, deliverFailure(id, "circuit_open"))
	}
	if _, err := deadletter.Replay(e.ctx, deadletter.ReplayConfig{KafkaOpts: e.kopts, Topic: dlq, InputTopic: input, Partitioner: keys.Sarama}); err != nil {
		t.Fatal(err)
	}
	sarama, murmur := keys.MustNew(keys.Sarama), keys.MustNew(keys.Murmur2)
	differ := false
	for _, r := range e.consume(input, len(orders)) {
		if want := sarama.Partition(r.Key, inputPartitions); r.Partition != want {
			t.Errorf("order %s in partition %d, sarama places it in %d", r.Key, r.Partition, want)
		}
		differ = differ || murmur.Partition(r.Key, inputPartitions) != r.Partition
	}
	if !differ {
		t.Error("murmur2 places these orders alike: the test cannot tell the partitioners apart")
	}
}

func TestReplayUnknownPartitioner(t *testing.T) {
	t.Parallel()
	_, err := deadletter.Replay(t.Context(), deadletter.ReplayConfig{Topic: "dlq", InputTopic: "orders", Partitioner: "round-robin"})
	if err == nil || !strings.Contains(err.Error(), "round-robin") {
		t.Errorf("Replay = %v, want the unknown partitioner named", err)
	}
}

// A dead letter whose value was too large to copy carries a reference: replaying it reads
// the original value back from its source record (never the reference, which the relay
// would take for a request to resend), and one whose source is gone is counted, not
// replayed.
func TestReplayReadsOmittedValuesBackRealKafka(t *testing.T) {
	t.Parallel()
	e, dlq, input, _ := replayTopics(t, 1)
	src := e.topic("source", 1)
	w, err := deadletter.NewWriter(e.prod, dlq, "test")
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxRecordBytes(2000)
	big := bytes.Repeat([]byte{0xC3}, 5000)
	orig := e.produce(&kgo.Record{Topic: src, Key: []byte("ord_big"), Value: big})[0]
	e.dead(w, 0,
		deadletter.Record{OrderID: "ord_big", Stage: deadletter.StageDecode, Reason: "unknown_framing",
			SourceTopic: src, SourcePartition: 0, SourceOffset: orig.Offset, Value: big},
		deadletter.Record{OrderID: "ord_gone", Stage: deadletter.StageDecode, Reason: "unknown_framing",
			SourceTopic: src, SourcePartition: 0, SourceOffset: orig.Offset + 100, Value: big},
		deadletter.Record{OrderID: "ord_state", Stage: deadletter.StageFold, Reason: "order_too_large",
			SourceTopic: "state", SourcePartition: 0, SourceOffset: -1, Value: big})
	st, err := deadletter.Replay(e.ctx, deadletter.ReplayConfig{KafkaOpts: e.kopts, Topic: dlq, InputTopic: input})
	if err != nil {
		t.Fatal(err)
	}
	if st.Scanned != 3 || st.Replayed != 1 || st.Refetched != 1 || st.Unavailable != 2 {
		t.Fatalf("stats %+v", st)
	}
	got := e.consume(input, 1)[0]
	if string(got.Key) != "ord_big" || !bytes.Equal(got.Value, big) || header(got, deadletter.HeaderReplayKind) != string(deadletter.ReplayEvent) {
		t.Errorf("replayed %s: %d bytes, kind %q", got.Key, len(got.Value), header(got, deadletter.HeaderReplayKind))
	}
}
