package deadletter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
)

// kafkaEnv is one test's view of a broker (real or kfake): its own topics, an admin
// client, and a producer that writes each record to the partition it names.
type kafkaEnv struct {
	t     *testing.T
	ctx   context.Context
	kopts []kgo.Opt
	adm   *kadm.Client
	names kafkatest.Names
	prod  *kgo.Client
	txns  int
}

// realKafka returns an env on the real broker; each env gives its test a 30 s budget.
func realKafka(t *testing.T) *kafkaEnv {
	t.Helper()
	return newKafkaEnv(t, kafkatest.Brokers(t))
}

// fakeKafka returns an env on a kfake cluster of its own.
func fakeKafka(t *testing.T) *kafkaEnv {
	t.Helper()
	return newKafkaEnv(t, kafkatest.Fake(t, 1).ListenAddrs())
}

func newKafkaEnv(t *testing.T, seeds []string) *kafkaEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	// A fresh topic's metadata may lag its creation; refresh it within 50 ms, not kgo's 5 s.
	kopts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(50 * time.Millisecond)}
	e := &kafkaEnv{t: t, ctx: ctx, kopts: kopts, adm: kafkatest.Admin(t, seeds), names: kafkatest.NewNames(t)}
	e.prod = e.client()
	return e
}

// client returns a client closed when the test ends, writing to the partitions records name.
func (e *kafkaEnv) client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, e.kopts...), append([]kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// topic creates a topic of this test.
func (e *kafkaEnv) topic(role string, partitions int32) string {
	e.t.Helper()
	name := e.names.Topic(role)
	kafkatest.CreateTopic(e.t, e.adm, name, partitions, nil)
	return name
}

// produce writes rs and returns them with their offsets.
func (e *kafkaEnv) produce(rs ...*kgo.Record) []*kgo.Record {
	e.t.Helper()
	if err := e.prod.ProduceSync(e.ctx, rs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return rs
}

// txn begins a transaction of a transactional producer of its own and writes rs in it;
// the caller ends it with end.
func (e *kafkaEnv) txn(rs ...*kgo.Record) (end func(commit kgo.TransactionEndTry)) {
	e.t.Helper()
	e.txns++
	cl := e.client(kgo.TransactionalID(fmt.Sprintf("%s.%d", e.names.TxnID(), e.txns)))
	if err := cl.BeginTransaction(); err != nil {
		e.t.Fatal(err)
	}
	if err := cl.ProduceSync(e.ctx, rs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return func(commit kgo.TransactionEndTry) {
		e.t.Helper()
		if err := cl.EndTransaction(e.ctx, commit); err != nil {
			e.t.Fatal(err)
		}
	}
}

// waitStable waits until no partition of topic has an open transaction (its last stable
// offset is its high watermark: the markers of ended transactions are written) and
// returns those ends.
func (e *kafkaEnv) waitStable(topic string) deadletter.Offsets {
	e.t.Helper()
	var ends deadletter.Offsets
	e.eventually("the transactions of "+topic+" to be stable", func() bool {
		stable, err := e.adm.ListCommittedOffsets(e.ctx, topic)
		if err != nil || stable.Error() != nil {
			return false
		}
		high := e.ends(topic)
		ends = deadletter.Offsets{}
		ok := true
		stable.Each(func(o kadm.ListedOffset) {
			ends[o.Partition] = o.Offset
			ok = ok && o.Offset == high[o.Partition]
		})
		return ok
	})
	return ends
}

// ends returns the high watermarks of topic.
func (e *kafkaEnv) ends(topic string) deadletter.Offsets {
	e.t.Helper()
	l, err := e.adm.ListEndOffsets(e.ctx, topic)
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		e.t.Fatal(err)
	}
	out := deadletter.Offsets{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// eventually polls cond until it holds; the test fails when its budget ends first.
func (e *kafkaEnv) eventually(what string, cond func() bool) {
	e.t.Helper()
	for !cond() {
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("waited in vain for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// consume reads topic from its start until it has n records; the test fails when there
// are more than n once the n arrived.
func (e *kafkaEnv) consume(topic string, n int) []*kgo.Record {
	e.t.Helper()
	cl := e.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(e.ctx)
		if e.ctx.Err() != nil {
			e.t.Fatalf("%s: read %d records, want %d", topic, len(got), n)
		}
		got = append(got, fs.Records()...)
	}
	var total int64
	for _, o := range e.ends(topic) {
		total += o
	}
	if len(got) != n || total != int64(n) {
		e.t.Fatalf("%s holds %d records (%d read), want %d", topic, total, len(got), n)
	}
	return got
}

// rec is a record for topic's partition p.
func rec(topic string, p int32, key, value string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(key), Value: []byte(value)}
}
