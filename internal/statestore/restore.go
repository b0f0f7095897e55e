package statestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/wait"
)

// Partition is the restored state of one state-topic partition.
type Partition struct {
	Topic     string
	Partition int32
	// Orders maps each order id to its latest record value (owned copies).
	Orders map[string][]byte
	// Pending lists the orders whose record marks a snapshot not yet acknowledged.
	Pending []string
	// NotOurs counts the orders marked not ours (notours.go).
	NotOurs int
	// Deferred are the orders whose newest snapshot waits for the clock
	// (Record.Deferred), with the newest stamp their partner may have seen.
	Deferred map[string]time.Time
	// Orphans are the orders whose events wait for their placement, with the time
	// since which they wait (Record.HeldSince).
	Orphans map[string]time.Time
	// Parked lists the orders parked because their state could not be read (park.go).
	Parked []string
	// Unreadable holds the orders whose record's header does not parse, with the error:
	// corrupt, or written in a newer format. They are kept in Orders as they are.
	Unreadable map[string]error
	// Schemas are the writer schemas relays recorded in the partition (schema.go).
	Schemas []string
	// Layout is the partition's layout record; nil when it has none.
	Layout *Layout
	// EndOffset is the last stable offset restore read up to.
	EndOffset int64
	// Records and Bytes count what restore read, tombstones included.
	Records, Bytes int64
	// Took is how long restore took.
	Took time.Duration
}

// Progress reports a restore's advance: the next offset to read and the end offset.
// Before reading, while a transaction is open on the partition, it reports the stable
// offset and the high watermark the restore waits to meet.
type Progress func(next, end int64)

// stableEnd returns the partition's end offset once no transaction is open on it: the
// last stable offset, after it caught up with the high watermark seen first. A previous
// owner's last transaction may still be completing (its markers are written after it
// committed, and a crashed owner's transaction stays open until it times out); reading
// only to the stable offset before then would miss state that is about to become
// visible, while the input offsets that transaction committed already skip its events.
func stableEnd(ctx context.Context, adm *kadm.Client, topic string, partition int32, bound time.Duration, waiting Progress) (int64, error) {
	lookup := func(list func(context.Context, ...string) (kadm.ListedOffsets, error), what string) (int64, error) {
		offs, err := list(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("statestore: %s offsets of %s: %w", what, topic, err)
		}
		o, ok := offs.Lookup(topic, partition)
		if !ok {
			return 0, fmt.Errorf("statestore: %s offset of %s/%d: partition not in the listing", what, topic, partition)
		}
		if o.Err != nil {
			return 0, fmt.Errorf("statestore: %s offset of %s/%d: %w", what, topic, partition, o.Err)
		}
		return o.Offset, nil
	}
	hwm, err := lookup(adm.ListEndOffsets, "end")
	if err != nil {
		return 0, err
	}
	started := time.Now()
	for {
		lso, err := lookup(adm.ListCommittedOffsets, "stable")
		if err != nil {
			return 0, err
		}
		if lso >= hwm {
			return lso, nil
		}
		if waiting != nil {
			waiting(lso, hwm)
		}
		if bound > 0 && time.Since(started) > bound {
			return 0, fmt.Errorf("%w: %s/%d: stable offset %d, end %d after %s (a producer's transaction is open on the state topic: a crashed relay's ends by its transaction timeout; a hanging one needs `kafka-transactions.sh abort`)",
				ErrUnstable, topic, partition, lso, hwm, bound)
		}
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return 0, fmt.Errorf("statestore: %s/%d: waiting for an open transaction to end (stable %d, end %d): %w", topic, partition, lso, hwm, err)
		}
	}
}

// ErrUnstable means a state partition's stable offset did not reach its end in time: a
// transaction stays open on it.
var ErrUnstable = errors.New("statestore: an open transaction keeps the state partition from its end")

// Restore reads a state partition from its start to its last stable offset with
// read_committed isolation and returns each order's latest record. A tombstone (nil
// value) deletes an order. kafkaOpts carry the connection; progress may be nil. It waits
// as long as ctx allows for an open transaction to end; see [RestoreBounded].
func Restore(ctx context.Context, kafkaOpts []kgo.Opt, topic string, partition int32, progress Progress) (*Partition, error) {
	return RestoreBounded(ctx, kafkaOpts, topic, partition, 0, progress)
}

// RestoreBounded is [Restore] that waits at most stableWait (0: no bound) for an open
// transaction on the partition to end before it reads, and then fails with [ErrUnstable].
// An order whose record does not parse is kept as it is and listed in Unreadable: one
// unreadable order never fails the partition.
func RestoreBounded(ctx context.Context, kafkaOpts []kgo.Opt, topic string, partition int32, stableWait time.Duration, progress Progress) (*Partition, error) {
	start := time.Now()
	p := &Partition{Topic: topic, Partition: partition, Orders: map[string][]byte{}, Unreadable: map[string]error{}}
	admCl, err := kgo.NewClient(kafkaOpts...)
	if err != nil {
		return nil, fmt.Errorf("statestore: client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if p.EndOffset, err = stableEnd(ctx, adm, topic, partition, stableWait, progress); err != nil {
		return nil, err
	}
	begins, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("statestore: start offsets of %s: %w", topic, err)
	}
	if b, ok := begins.Lookup(topic, partition); ok && b.Err == nil && b.Offset >= p.EndOffset {
		p.Took = time.Since(start)
		return p, nil // empty
	}
	opts := append(append([]kgo.Opt{}, kafkaOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets too: keep them so the read position can reach
		// the end offset even when the partition ends with a marker.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.FetchMaxPartitionBytes(32<<20),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("statestore: client: %w", err)
	}
	defer cl.Close()
	next := int64(0)
	var layouts [][]byte
	schemas := map[string]string{}
	for next < p.EndOffset {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("statestore: restore %s/%d at %d of %d: %w", topic, partition, next, p.EndOffset, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("statestore: restore %s/%d: %w", topic, partition, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Attrs.IsControl() || r.Offset >= p.EndOffset {
				return
			}
			p.Records++
			p.Bytes += int64(len(r.Value))
			if string(r.Key) == LayoutKey {
				layouts = append(layouts[:0], append([]byte(nil), r.Value...))
				return
			}
			if isSystemKey(r.Key) {
				if r.Value != nil {
					schemas[string(r.Key)] = string(r.Value)
				}
				return // a schema record, or one of a newer ucprelay: never an order
			}
			if r.Value == nil {
				delete(p.Orders, string(r.Key))
				return
			}
			p.Orders[string(r.Key)] = append([]byte(nil), r.Value...)
		})
		if progress != nil {
			progress(next, p.EndOffset)
		}
	}
	if len(layouts) == 1 && layouts[0] != nil {
		l, err := ParseLayout(layouts[0])
		if err != nil {
			return nil, fmt.Errorf("statestore: %s/%d: %w", topic, partition, err)
		}
		p.Layout = &l
	}
	for k, s := range schemas {
		if isSchemaKey(k) {
			p.Schemas = append(p.Schemas, s)
		}
	}
	for id, v := range p.Orders {
		if IsParked(v) {
			p.Parked = append(p.Parked, id)
			continue
		}
		if IsNotOurs(v) {
			p.NotOurs++
			continue
		}
		h, err := ParseHeader(v)
		if err != nil {
			p.Unreadable[id] = fmt.Errorf("statestore: %s/%d order %s: %w", topic, partition, id, err)
			continue
		}
		if !h.Pending.IsZero() && h.Pending.Version > h.Acked.Version {
			p.Pending = append(p.Pending, id)
		}
		if h.Deferred {
			if p.Deferred == nil {
				p.Deferred = map[string]time.Time{}
			}
			p.Deferred[id] = h.LastStamp()
		}
		if !h.HeldSince.IsZero() {
			if p.Orphans == nil {
				p.Orphans = map[string]time.Time{}
			}
			p.Orphans[id] = h.HeldSince
		}
	}
	p.Took = time.Since(start)
	return p, nil
}
