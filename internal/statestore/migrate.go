package statestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/wait"
)

// MigrateOptions configures [Migrate].
type MigrateOptions struct {
	// Topic is the state topic.
	Topic string
	// Partitions is the new partition count: the input topic's.
	Partitions int32
	// Partitioner places order ids as the input's producers do.
	Partitioner *keys.Partitioner
	// TransactionalID is the migration's transactional producer id.
	TransactionalID string
	// Progress, when set, receives a line per step.
	Progress func(format string, args ...any)
}

// MigrateReport says what a migration did.
type MigrateReport struct {
	// From and To are the partition counts the state was laid out for, before and after.
	From, To int32
	// Orders counts the orders read; Moved those rewritten to another partition.
	Orders, Moved int
	// Superseded counts orders found in both their old and their new partition; the copy
	// in the new partition, written by a relay after an earlier migration, is kept.
	Superseded int
	Took       time.Duration
}

// ErrShrink means the state topic has more partitions than the input: Kafka cannot
// remove partitions, and the state never needs fewer.
var ErrShrink = errors.New("statestore: the state topic has more partitions than the input")

// Migrate rewrites the state topic for a new partition count: it grows the topic to
// o.Partitions, reads every partition to its last stable offset, and in one transaction
// writes each order whose partition changed to its new partition with a tombstone in
// the old one, and a layout record for the new count to every partition. Relays refuse
// a partition whose layout record does not match the input until that transaction
// commits, so they never fold an order without its history. Safe to run again: an
// interrupted run leaves only the grown (empty) partitions, and a finished one leaves
// nothing to move.
func Migrate(ctx context.Context, kafkaOpts []kgo.Opt, o MigrateOptions) (MigrateReport, error) {
	start := time.Now()
	rep := MigrateReport{To: o.Partitions}
	progress := o.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	admCl, err := kgo.NewClient(kafkaOpts...)
	if err != nil {
		return rep, fmt.Errorf("statestore: client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	have, err := partitionCount(ctx, adm, o.Topic)
	if err != nil {
		return rep, err
	}
	switch {
	case have > o.Partitions:
		return rep, fmt.Errorf("%w: %s has %d, the input %d", ErrShrink, o.Topic, have, o.Partitions)
	case have < o.Partitions:
		progress("growing %s from %d to %d partitions", o.Topic, have, o.Partitions)
		resp, err := adm.UpdatePartitions(ctx, int(o.Partitions), o.Topic)
		if err == nil {
			_, err = resp.On(o.Topic, nil)
		}
		if err != nil {
			return rep, fmt.Errorf("statestore: grow %s: %w", o.Topic, err)
		}
		for have < o.Partitions {
			if have, err = partitionCount(ctx, adm, o.Topic); err != nil {
				return rep, err
			}
			if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
				return rep, err
			}
		}
	}
	var recs []*kgo.Record
	placed := make([]map[string][]byte, o.Partitions)
	for p := range o.Partitions {
		st, err := Restore(ctx, kafkaOpts, o.Topic, p, nil)
		if err != nil {
			return rep, err
		}
		placed[p] = st.Orders
		if st.Layout != nil && rep.From == 0 {
			rep.From = st.Layout.Partitions
		}
		progress("read %s/%d: %d orders, %d records", o.Topic, p, len(st.Orders), st.Records)
	}
	for p := range o.Partitions {
		for id, v := range placed[p] {
			rep.Orders++
			to := o.Partitioner.Partition([]byte(id), o.Partitions)
			if to == p {
				continue
			}
			recs = append(recs, &kgo.Record{Topic: o.Topic, Partition: p, Key: []byte(id)}) // tombstone
			if _, ok := placed[to][id]; ok {
				rep.Superseded++
				continue
			}
			recs = append(recs, &kgo.Record{Topic: o.Topic, Partition: to, Key: []byte(id), Value: v})
			rep.Moved++
		}
	}
	recs = append(recs, LayoutRecords(o.Topic, Layout{Partitions: o.Partitions, Partitioner: o.Partitioner.Name()})...)
	progress("writing %d moved orders, %d tombstones and %d layout records in one transaction", rep.Moved, rep.Moved+rep.Superseded, o.Partitions)
	if err := produceTxn(ctx, kafkaOpts, o.TransactionalID, recs); err != nil {
		return rep, err
	}
	rep.Took = time.Since(start)
	return rep, nil
}

func produceTxn(ctx context.Context, kafkaOpts []kgo.Opt, txnID string, recs []*kgo.Record) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, kafkaOpts...),
		kgo.TransactionalID(txnID), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(5*time.Minute))...)
	if err != nil {
		return fmt.Errorf("statestore: transactional client: %w", err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("statestore: begin: %w", err)
	}
	res := cl.ProduceSync(ctx, recs...)
	commit := kgo.TryCommit
	if err := res.FirstErr(); err != nil {
		commit = kgo.TryAbort
		_ = cl.EndTransaction(context.WithoutCancel(ctx), commit)
		return fmt.Errorf("statestore: write migration: %w", err)
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		return fmt.Errorf("statestore: commit migration: %w", err)
	}
	return nil
}

func partitionCount(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("statestore: metadata of %s: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok {
		return 0, fmt.Errorf("statestore: topic %s is not in the metadata", topic)
	}
	if td.Err != nil {
		return 0, fmt.Errorf("statestore: topic %s: %w", topic, td.Err)
	}
	return int32(len(td.Partitions)), nil
}
