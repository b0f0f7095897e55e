package deadletter

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Filter selects dead-letter records. Empty fields match everything; a record matches
// when it matches every non-empty field.
type Filter struct {
	Reasons  []string
	Stages   []Stage
	OrderIDs []string
	Partners []string
	// Since and Until bound the record's failure time ([Record.Time]), Until exclusive.
	Since, Until time.Time
}

// Match reports whether r (read at time ts) is selected.
func (f Filter) Match(r Record, ts time.Time) bool {
	t := r.Time(ts)
	return (len(f.Reasons) == 0 || slices.Contains(f.Reasons, r.Reason)) &&
		(len(f.Stages) == 0 || slices.Contains(f.Stages, r.Stage)) &&
		(len(f.OrderIDs) == 0 || slices.Contains(f.OrderIDs, r.OrderID)) &&
		(len(f.Partners) == 0 || slices.Contains(f.Partners, r.Partner)) &&
		(f.Since.IsZero() || !t.Before(f.Since)) &&
		(f.Until.IsZero() || t.Before(f.Until))
}

// String is a stable rendering of the filter, for naming a replay's progress.
func (f Filter) String() string {
	sorted := func(v []string) []string { v = slices.Clone(v); sort.Strings(v); return v }
	stages := make([]string, len(f.Stages))
	for i, s := range f.Stages {
		stages[i] = string(s)
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("reason=%v stage=%v order=%v partner=%v since=%s until=%s",
		sorted(f.Reasons), sorted(stages), sorted(f.OrderIDs), sorted(f.Partners), ts(f.Since), ts(f.Until))
}

// Time is when the record failed: its last delivery failure, else the time the record
// was written (ts, the Kafka record timestamp).
func (r Record) Time(ts time.Time) time.Time {
	if !r.LastFailure.IsZero() {
		return r.LastFailure
	}
	return ts
}

// Offsets are per-partition offsets of one topic.
type Offsets map[int32]int64

// Scan reads topic with read_committed isolation from the offsets in from (partitions
// missing there, or all when from is nil, from their start) up to the last stable offsets
// at the time of the call, and calls fn for every record in offset order per partition.
// It returns those end offsets. A record dead-lettered while Scan runs is left for the
// next scan. An error from fn stops the scan.
func Scan(ctx context.Context, kafkaOpts []kgo.Opt, topic string, from Offsets, fn func(*kgo.Record) error) (Offsets, error) {
	admCl, err := kgo.NewClient(kafkaOpts...)
	if err != nil {
		return nil, fmt.Errorf("deadletter: client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	ends, err := listed(ctx, adm.ListCommittedOffsets, topic)
	if err != nil {
		return nil, err
	}
	starts, err := listed(ctx, adm.ListStartOffsets, topic)
	if err != nil {
		return nil, err
	}
	consume := map[int32]kgo.Offset{}
	next := Offsets{}
	for p, end := range ends {
		start := starts[p]
		if o, ok := from[p]; ok && o > start {
			start = o
		}
		if start < end {
			consume[p] = kgo.NewOffset().At(start)
			next[p] = start
		}
	}
	if len(consume) == 0 {
		return ends, nil
	}
	opts := append(append([]kgo.Opt{}, kafkaOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets: keep them so the position reaches the end.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("deadletter: client: %w", err)
	}
	defer cl.Close()
	for len(next) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("deadletter: scan %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("deadletter: scan %s/%d: %w", topic, p, err) })
		if ferr != nil {
			return nil, ferr
		}
		var stop error
		fs.EachRecord(func(r *kgo.Record) {
			if stop != nil {
				return
			}
			at, reading := next[r.Partition]
			if !reading || r.Offset < at {
				return
			}
			next[r.Partition] = r.Offset + 1
			if r.Offset < ends[r.Partition] && !r.Attrs.IsControl() {
				stop = fn(r)
			}
			if next[r.Partition] >= ends[r.Partition] {
				delete(next, r.Partition)
			}
		})
		if stop != nil {
			return nil, stop
		}
	}
	return ends, nil
}

// listed returns one topic's listed offsets by partition.
func listed(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string) (Offsets, error) {
	l, err := list(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("deadletter: list offsets of %s: %w", topic, err)
	}
	if err := l.Error(); err != nil {
		return nil, fmt.Errorf("deadletter: list offsets of %s: %w", topic, err)
	}
	out := Offsets{}
	for p, o := range l[topic] {
		out[p] = o.Offset
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("deadletter: topic %s has no partitions (does it exist?)", topic)
	}
	return out, nil
}

// Summary describes the dead-letter records a scan selected.
type Summary struct {
	Topic     string           `json:"topic"`
	Filter    string           `json:"filter"`
	Scanned   int              `json:"scanned"`
	Matched   int              `json:"matched"`
	Malformed int              `json:"malformed"` // records without dead-letter headers
	ByReason  map[string]int   `json:"by_reason"`
	ByStage   map[string]int   `json:"by_stage"`
	ByPartner map[string]int   `json:"by_partner"`
	Oldest    time.Time        `json:"oldest"`
	Newest    time.Time        `json:"newest"`
	Samples   []Sample         `json:"samples"`
	Ends      map[int32]int64  `json:"end_offsets"`
	perReason map[string]int32 // samples taken per reason
}

// Sample is one selected record, shown to an operator.
type Sample struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Record    Record `json:"record"`
}

// Inspect scans the dead-letter topic and summarises the records f selects, keeping up
// to samples records of each reason.
func Inspect(ctx context.Context, kafkaOpts []kgo.Opt, topic string, f Filter, samples int) (*Summary, error) {
	s := &Summary{Topic: topic, Filter: f.String(), ByReason: map[string]int{}, ByStage: map[string]int{}, ByPartner: map[string]int{},
		perReason: map[string]int32{}}
	ends, err := Scan(ctx, kafkaOpts, topic, nil, func(kr *kgo.Record) error {
		s.Scanned++
		r, ok := parseOK(kr)
		if !ok {
			s.Malformed++
			return nil
		}
		if !f.Match(r, kr.Timestamp) {
			return nil
		}
		s.Matched++
		s.ByReason[r.Reason]++
		s.ByStage[string(r.Stage)]++
		partner := r.Partner
		if partner == "" {
			partner = "(none)"
		}
		s.ByPartner[partner]++
		t := r.Time(kr.Timestamp)
		if s.Oldest.IsZero() || t.Before(s.Oldest) {
			s.Oldest = t
		}
		if t.After(s.Newest) {
			s.Newest = t
		}
		if int(s.perReason[r.Reason]) < samples {
			s.perReason[r.Reason]++
			s.Samples = append(s.Samples, Sample{Partition: kr.Partition, Offset: kr.Offset, Record: r})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Ends = ends
	return s, nil
}

// parseOK parses a dead-letter record; false for a record without dead-letter headers,
// which a summary counts instead of failing on.
func parseOK(kr *kgo.Record) (Record, bool) {
	r, err := FromKafka(kr)
	return r, err == nil
}
