package deadletter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/internal/wait"
)

// ReplayConfig configures [Replay].
type ReplayConfig struct {
	// KafkaOpts carry the connection.
	KafkaOpts []kgo.Opt
	// Topic is the dead-letter topic; InputTopic the relay's input topic.
	Topic, InputTopic string
	// RepartitionTopic receives the records that still need re-keying (a mapping topic
	// keyed by something else than the order id whose record could not be mapped);
	// empty: such records are unroutable.
	RepartitionTopic string
	// Partitioner places each order id in the input topic as the producers do, so the
	// record reaches the worker that owns the order's state.
	Partitioner string
	// Filter selects the records to replay.
	Filter Filter
	// Group keeps the replay's progress (committed dead-letter offsets), so a run that
	// stopped resumes where it stopped. Empty: [DefaultReplayGroup] of the filter.
	Group string
	// FromStart ignores the progress kept in Group and reads the whole topic again.
	FromStart bool
	// DryRun reads and selects but writes nothing and keeps no progress.
	DryRun bool
	// Rate limits the records written per second; 0 means no limit.
	Rate float64
	// Progress, when set, is called as the replay advances and once at the end.
	Progress func(ReplayStats)
	// OnRecord, when set, is called for each selected record (dry runs list them).
	OnRecord func(Record)
}

// ReplayStats counts a replay.
type ReplayStats struct {
	Group string `json:"group"`
	// Span is the number of offsets the run covers (from its start offsets to the end
	// offsets when it began; transaction markers take offsets too), Position how many it
	// has covered, Scanned how many records it has read.
	Span, Position, Scanned int64
	// Replayed were written back to the input topic (selected, in a dry run).
	Replayed int64
	// Skipped did not match the filter; Unroutable have no order id to route by
	// (missing_key) or no dead-letter headers.
	Skipped, Unroutable int64
	// Refetched were replayed with their original value read back from its source
	// record (the dead letter carried a reference: the value was too large to copy);
	// Unavailable could not be, the source record being gone (retention) or not a
	// record (state), and were not replayed.
	Refetched, Unavailable int64
	Took                   time.Duration
}

// DefaultReplayGroup names the progress of a replay with filter f: each filter keeps its
// own, so replaying another selection does not skip records an earlier run passed over.
func DefaultReplayGroup(topic string, f Filter) string {
	sum := sha256.Sum256([]byte(topic + "\x00" + f.String()))
	return "ucprelay-dlq-replay-" + hex.EncodeToString(sum[:6])
}

// Replay writes the selected dead-letter records back to the input topic, keyed by order
// id into the partition that owns the order, where the running relays process them
// again: an event that failed to decode or fold as the event it was (a duplicate is
// ignored, a still-bad event is dead-lettered again), a failed delivery as a request to
// resend the order's current snapshot, which the relay skips when the partner already
// has it. That makes a replay safe while relays run, never stale (P2), and harmless to
// repeat. Progress is committed to the replay's group after each written batch.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplayStats, error) {
	start := time.Now()
	st := ReplayStats{Group: cfg.Group}
	if st.Group == "" {
		st.Group = DefaultReplayGroup(cfg.Topic, cfg.Filter)
	}
	part, err := keys.New(cfg.Partitioner)
	if err != nil {
		return st, err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, cfg.KafkaOpts...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return st, fmt.Errorf("deadletter: client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	inputs, err := listed(ctx, adm.ListEndOffsets, cfg.InputTopic)
	if err != nil {
		return st, err
	}
	n := int32(len(inputs))
	var from Offsets
	if !cfg.FromStart {
		if from, err = progressOf(ctx, adm, st.Group, cfg.Topic); err != nil {
			return st, err
		}
	}
	if st.Span, err = remaining(ctx, adm, cfg.Topic, from); err != nil {
		return st, err
	}
	done := Offsets{} // next offset per partition whose records are all written
	var batch []*kgo.Record
	lastFlush, lastReport := time.Now(), time.Time{}
	flush := func() error {
		if len(batch) > 0 {
			if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				return fmt.Errorf("deadletter: replay to %s: %w", cfg.InputTopic, err)
			}
			batch = batch[:0]
		}
		lastFlush = time.Now()
		if cfg.DryRun || len(done) == 0 {
			return nil
		}
		return commitProgress(ctx, adm, st.Group, cfg.Topic, done)
	}
	paced := newPacer(cfg.Rate)
	_, err = Scan(ctx, cfg.KafkaOpts, cfg.Topic, from, func(kr *kgo.Record) error {
		st.Scanned++
		r, perr := FromKafka(kr)
		rekey := perr == nil && cfg.RepartitionTopic != "" && hasHeader(r.SourceHeaders, mapping.HeaderRekey)
		switch {
		case perr != nil || (r.OrderID == "" && !rekey):
			st.Unroutable++
		case !cfg.Filter.Match(r, kr.Timestamp):
			st.Skipped++
		case r.ValueOmitted > 0 && r.Stage != StageDeliver:
			// The value was too large for the dead-letter topic: replaying the reference
			// would turn an event into a request for a resend. Read the original instead.
			v, err := original(ctx, cfg.KafkaOpts, r)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				st.Unavailable++
				break
			}
			st.Refetched++
			r.Value = v
			fallthrough
		default:
			st.Replayed++
			if cfg.OnRecord != nil {
				cfg.OnRecord(r)
			}
			if !cfg.DryRun {
				if err := paced(ctx); err != nil {
					return err
				}
				if rekey {
					// Not yet keyed by its order: the relay maps it again and re-keys it.
					key := []byte(HeaderValue(r.SourceHeaders, mapping.HeaderSourceKey))
					batch = append(batch, replayRecord(kr, r, cfg.RepartitionTopic, key, part.Partition(key, n)))
				} else {
					batch = append(batch, replayRecord(kr, r, cfg.InputTopic, []byte(r.OrderID), part.Partition([]byte(r.OrderID), n)))
				}
			}
		}
		prev, ok := done[kr.Partition]
		if !ok {
			prev = kr.Offset // the first record read here; earlier offsets were removed
		}
		st.Position += kr.Offset + 1 - prev
		done[kr.Partition] = kr.Offset + 1
		if len(batch) >= 500 || time.Since(lastFlush) >= time.Second {
			if err := flush(); err != nil {
				return err
			}
		}
		if cfg.Progress != nil && time.Since(lastReport) >= 200*time.Millisecond {
			lastReport = time.Now()
			st.Took = time.Since(start)
			cfg.Progress(st)
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		st.Position = st.Span
	}
	st.Took = time.Since(start)
	if cfg.Progress != nil {
		cfg.Progress(st)
	}
	return st, err
}

// original reads the value a dead letter omitted from its source record.
func original(ctx context.Context, opts []kgo.Opt, r Record) ([]byte, error) {
	if r.SourceTopic == "" || r.SourceOffset < 0 {
		return nil, errors.New("deadletter: the omitted value came from no record")
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.SourceTopic: {r.SourcePartition: kgo.NewOffset().At(r.SourceOffset)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, fmt.Errorf("deadletter: client: %w", err)
	}
	defer cl.Close()
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(fctx, r.SourceTopic)
	if err != nil {
		return nil, fmt.Errorf("deadletter: offsets of %s: %w", r.SourceTopic, err)
	}
	ends, err := adm.ListEndOffsets(fctx, r.SourceTopic)
	if err != nil {
		return nil, fmt.Errorf("deadletter: offsets of %s: %w", r.SourceTopic, err)
	}
	first, okStart := starts.Lookup(r.SourceTopic, r.SourcePartition)
	end, okEnd := ends.Lookup(r.SourceTopic, r.SourcePartition)
	if !okStart || !okEnd || first.Err != nil || end.Err != nil || r.SourceOffset < first.Offset || r.SourceOffset >= end.Offset {
		return nil, fmt.Errorf("deadletter: %s/%d@%d is not in the topic (retention, or another topic of that name)", r.SourceTopic, r.SourcePartition, r.SourceOffset)
	}
	for {
		fs := cl.PollFetches(fctx)
		if err := fctx.Err(); err != nil {
			return nil, fmt.Errorf("deadletter: read %s/%d@%d: %w", r.SourceTopic, r.SourcePartition, r.SourceOffset, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("deadletter: read %s/%d@%d: %w", r.SourceTopic, r.SourcePartition, r.SourceOffset, ferr)
		}
		var (
			v     []byte
			found bool
			past  bool
		)
		fs.EachRecord(func(kr *kgo.Record) {
			switch {
			case found || past:
			case kr.Offset == r.SourceOffset && len(kr.Value) == r.ValueOmitted:
				v, found = kr.Value, true
			case kr.Offset >= r.SourceOffset:
				past = true // removed (retention, compaction), or not the record dead-lettered
			}
		})
		switch {
		case found:
			return v, nil
		case past:
			return nil, fmt.Errorf("deadletter: %s/%d@%d is no longer the record dead-lettered", r.SourceTopic, r.SourcePartition, r.SourceOffset)
		}
	}
}

// replayRecord is the input record that replays dead-letter record kr (parsed as r).
//
// A record that came from another topic than the one it is written to names that topic
// (mapping.HeaderSourceTopic, unless it names one already), so a relay with a mapping maps
// it by that topic's rules.
func replayRecord(kr *kgo.Record, r Record, topic string, key []byte, partition int32) *kgo.Record {
	kind := ReplayEvent
	if r.Stage == StageDeliver {
		kind = ReplayResend
	} else if ref, err := ParseReference(r.Value); err == nil && ref.OrderID == r.OrderID {
		kind = ReplayResend // a snapshot that could not be rendered
	}
	hs := append([]kgo.RecordHeader{}, r.SourceHeaders...)
	if r.SourceTopic != "" && r.SourceTopic != topic && !hasHeader(hs, mapping.HeaderSourceTopic) {
		hs = append(hs, kgo.RecordHeader{Key: mapping.HeaderSourceTopic, Value: []byte(r.SourceTopic)})
	}
	out := &kgo.Record{
		Topic: topic, Partition: partition, Key: key, Value: r.Value, Timestamp: r.SourceTimestamp,
		Headers: append(hs,
			kgo.RecordHeader{Key: HeaderReplayKind, Value: []byte(kind)},
			kgo.RecordHeader{Key: HeaderReplayOf, Value: fmt.Appendf(nil, "%s/%d@%d", kr.Topic, kr.Partition, kr.Offset)}),
	}
	return out
}

func hasHeader(hs []kgo.RecordHeader, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

// HeaderValue is the value of the first header named key ("" without one).
func HeaderValue(hs []kgo.RecordHeader, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// retriable runs fn until it succeeds, fails for good, or 30 s of retriable errors
// (a coordinator still loading, e.g. on a fresh cluster) have passed.
func retriable(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		err := fn()
		if err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			return err
		}
		if wait.Sleep(ctx, delay) != nil {
			return err
		}
	}
}

// progressOf returns the dead-letter offsets a replay group committed.
func progressOf(ctx context.Context, adm *kadm.Client, group, topic string) (Offsets, error) {
	var resp kadm.OffsetResponses
	err := retriable(ctx, func() error {
		var err error
		if resp, err = adm.FetchOffsets(ctx, group); err == nil {
			err = resp.Error()
		}
		return err
	})
	if errors.Is(err, kerr.GroupIDNotFound) {
		return Offsets{}, nil // a first run: no progress kept yet
	}
	if err != nil {
		return nil, fmt.Errorf("deadletter: progress of %s: %w", group, err)
	}
	out := Offsets{}
	for p, o := range resp[topic] {
		if o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}

// commitProgress records the next offset to replay per dead-letter partition.
func commitProgress(ctx context.Context, adm *kadm.Client, group, topic string, done Offsets) error {
	var os kadm.Offsets
	for p, o := range done {
		os.AddOffset(topic, p, o, -1)
	}
	err := retriable(ctx, func() error {
		resp, err := adm.CommitOffsets(ctx, group, os)
		if err == nil {
			err = resp.Error()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("deadletter: keep progress in group %s: %w", group, err)
	}
	return nil
}

// remaining counts the records between from (or the start) and the stable end.
func remaining(ctx context.Context, adm *kadm.Client, topic string, from Offsets) (int64, error) {
	ends, err := listed(ctx, adm.ListCommittedOffsets, topic)
	if err != nil {
		return 0, err
	}
	starts, err := listed(ctx, adm.ListStartOffsets, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for p, end := range ends {
		s := max(starts[p], from[p])
		n += max(end-s, 0)
	}
	return n, nil
}

// newPacer returns a function that spaces calls to rate per second (none when rate <= 0).
func newPacer(rate float64) func(context.Context) error {
	if rate <= 0 {
		return func(context.Context) error { return nil }
	}
	every := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	return func(ctx context.Context) error {
		if err := wait.Sleep(ctx, time.Until(next)); err != nil {
			return err
		}
		next = next.Add(every)
		if now := time.Now(); next.Before(now.Add(-time.Second)) {
			next = now // no burst after a stall
		}
		return nil
	}
}
