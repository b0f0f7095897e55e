package statestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// LayoutKey is the key of the layout record every state partition holds. Order ids are
// never empty, so the leading NUL cannot collide with one.
const LayoutKey = "\x00ucprelay.layout"

// Layout is the value of the layout record: the partition count the partition's orders
// were placed for. A relay restores a partition only when its layout record matches the
// input topic's partition count; `ucprelay topics create` writes the first layout records
// and `ucprelay state migrate` rewrites them in the transaction that moves the orders.
type Layout struct {
	Partitions  int32  `json:"partitions"`
	Partitioner string `json:"partitioner"`
}

// Marshal encodes the layout record value.
func (l Layout) Marshal() []byte {
	b, _ := json.Marshal(l)
	return b
}

// ParseLayout decodes a layout record value.
func ParseLayout(v []byte) (Layout, error) {
	var l Layout
	if err := json.Unmarshal(v, &l); err != nil || l.Partitions <= 0 {
		return Layout{}, fmt.Errorf("%w: layout record %q", ErrCorrupt, v)
	}
	return l, nil
}

// Producer is the part of *kgo.Client that writes layout records.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// LayoutRecords returns the layout record of each of the topic's partitions.
func LayoutRecords(topic string, l Layout) []*kgo.Record {
	v := l.Marshal()
	out := make([]*kgo.Record, l.Partitions)
	for p := range l.Partitions {
		out[p] = &kgo.Record{Topic: topic, Partition: p, Key: []byte(LayoutKey), Value: v}
	}
	return out
}

// WriteLayout writes the layout record to every partition of a new state topic. The
// producer must place records by their Partition field (kgo.ManualPartitioner).
func WriteLayout(ctx context.Context, p Producer, topic string, l Layout) error {
	if err := p.ProduceSync(ctx, LayoutRecords(topic, l)...).FirstErr(); err != nil {
		return fmt.Errorf("statestore: write layout records to %s: %w", topic, err)
	}
	return nil
}
