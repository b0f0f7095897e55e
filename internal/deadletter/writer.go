package deadletter

import (
	"context"
	"errors"
	"fmt"

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
	return r.ToKafka(w.topic, w.secrets...)
}

// Write produces r and waits until the broker has it.
func (w *Writer) Write(ctx context.Context, r Record) error {
	if err := w.p.ProduceSync(ctx, w.Record(r)).FirstErr(); err != nil {
		return fmt.Errorf("deadletter: write to %s (order %s, reason %s): %w", w.topic, r.OrderID, r.Reason, err)
	}
	return nil
}
