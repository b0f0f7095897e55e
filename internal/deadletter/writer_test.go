package deadletter_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
)

// fakeProducer records what it is given and answers every record with err.
type fakeProducer struct {
	mu   sync.Mutex
	got  []*kgo.Record
	ctxs []context.Context
	err  error
}

func (f *fakeProducer) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, rs...)
	f.ctxs = append(f.ctxs, ctx)
	out := make(kgo.ProduceResults, 0, len(rs))
	for _, r := range rs {
		out = append(out, kgo.ProduceResult{Record: r, Err: f.err})
	}
	return out
}

func TestNewWriterNeedsProducerAndTopic(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		p     deadletter.Producer
		topic string
	}{{"no producer", nil, "dlq"}, {"no topic", &fakeProducer{}, ""}} {
		if w, err := deadletter.NewWriter(c.p, c.topic, "v1"); err == nil {
			t.Errorf("%s: NewWriter = %v, want an error", c.name, w)
		}
	}
	w, err := deadletter.NewWriter(&fakeProducer{}, "ucprelay.dlq", "v1")
	if err != nil || w.Topic() != "ucprelay.dlq" {
		t.Fatalf("NewWriter = %v, %v", w, err)
	}
}

// Record stamps the writer's version unless the record has its own, and removes the
// writer's secrets from the error text.
func TestWriterRecord(t *testing.T) {
	t.Parallel()
	w, err := deadletter.NewWriter(&fakeProducer{}, "dlq", "v1.4.0", "api-key-1", "api-key-2")
	if err != nil {
		t.Fatal(err)
	}
	r := deadletter.Record{OrderID: "o", Reason: "http_rejected", Stage: deadletter.StageDeliver,
		Error: "401 for key=api-key-1 and api-key-2"}
	back, err := deadletter.FromKafka(w.Record(r))
	if err != nil {
		t.Fatal(err)
	}
	if back.RelayVersion != "v1.4.0" || back.Error != "401 for key=[REDACTED] and [REDACTED]" {
		t.Errorf("written as %+v", back)
	}
	r.RelayVersion = "v1.3.9" // a record replayed from an older relay keeps its version
	if back, _ = deadletter.FromKafka(w.Record(r)); back.RelayVersion != "v1.3.9" {
		t.Errorf("relay version %q, want the record's own", back.RelayVersion)
	}
	if kr := w.Record(r); kr.Topic != "dlq" || string(kr.Key) != "o" {
		t.Errorf("record to %q keyed %q", kr.Topic, kr.Key)
	}
}

func TestWriterWrite(t *testing.T) {
	t.Parallel()
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, "caller")
	r := deadletter.Record{OrderID: "ord_9", Reason: "corrupt_payload", Stage: deadletter.StageDecode, Value: []byte{1, 2}}

	p := &fakeProducer{}
	w, _ := deadletter.NewWriter(p, "dlq", "v1", "secret")
	if err := w.Write(ctx, r); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 1 || string(p.got[0].Key) != "ord_9" || p.got[0].Topic != "dlq" || p.ctxs[0].Value(ctxKey{}) != "caller" {
		t.Fatalf("produced %v with the caller's context: %v", p.got, p.ctxs)
	}

	// A failed produce comes back wrapped, naming topic, order and reason, so the caller
	// does not commit its input offset.
	p = &fakeProducer{err: kerr.NotEnoughReplicas}
	w, _ = deadletter.NewWriter(p, "dlq", "v1")
	err := w.Write(ctx, r)
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("Write = %v, want kerr.NotEnoughReplicas in the chain", err)
	}
	for _, want := range []string{"dlq", "ord_9", "corrupt_payload"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if len(p.got) != 1 {
		t.Errorf("produced %d records, want 1 (no retry of its own)", len(p.got))
	}
}
