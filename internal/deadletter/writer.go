package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer is the part of *kgo.Client the writer needs.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Writer writes dead-letter records and waits for the broker's acknowledgement: a caller
// commits its input offset only after [Writer.Write] returned nil, so a failed write
// loses nothing (the record is processed again).
type Writer struct {
	p            Producer
	topic        string
	relayVersion string
	secrets      []string
	maxBytes     atomic.Int64
}

// SetMaxRecordBytes bounds the size of the records the writer builds (0: no bound): the
// dead-letter topic's max.message.bytes, less the batch overhead. A record whose value
// would exceed it carries a [Reference] to its order instead, with [HeaderValueOmitted]
// giving the original size: its source coordinates locate the original bytes.
func (w *Writer) SetMaxRecordBytes(n int) { w.maxBytes.Store(int64(n)) }

// RecordSize is the size a record takes in a batch, near enough to bound it: key,
// value, headers and the per-record overhead.
func RecordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value) + 24
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// NewWriter returns a writer to topic. secrets are removed from every error text written.
func NewWriter(p Producer, topic, relayVersion string, secrets ...string) (*Writer, error) {
	if p == nil || topic == "" {
		return nil, errors.New("deadletter: writer needs a producer and a topic")
	}
	return &Writer{p: p, topic: topic, relayVersion: relayVersion, secrets: secrets}, nil
}

// Topic returns the dead-letter topic.
func (w *Writer) Topic() string { return w.topic }

// Record builds the Kafka record of r as this writer writes it.
func (w *Writer) Record(r Record) *kgo.Record {
	if r.RelayVersion == "" {
		r.RelayVersion = w.relayVersion
	}
	kr := r.ToKafka(w.topic, w.secrets...)
	if max := int(w.maxBytes.Load()); max > 0 && RecordSize(kr) > max {
		n := len(r.Value)
		r.Value = EncodeReference(Reference{OrderID: r.OrderID, Partner: r.Partner})
		r.ValueOmitted = n
		kr = r.ToKafka(w.topic, w.secrets...)
	}
	return kr
}

// Write produces r and waits until the broker has it.
func (w *Writer) Write(ctx context.Context, r Record) error {
	if err := w.p.ProduceSync(ctx, w.Record(r)).FirstErr(); err != nil {
		return fmt.Errorf("deadletter: write to %s (order %s, reason %s): %w", w.topic, r.OrderID, r.Reason, err)
	}
	return nil
}
