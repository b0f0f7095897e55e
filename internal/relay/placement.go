package relay

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/keys"
)

// placement is the relay client's partitioner. A state record belongs to the state
// partition of its input partition, a forwarded record to the partition its order's
// key maps to by the producers' partitioner (kafka.partitioner): both are placed by the
// Partition field the relay sets, never hashed again by the client (with a partitioner
// other than murmur2 the client's default would put an order's state where its restore
// never looks). Dead letters go by their key, with the same partitioner, so one order's
// dead letters stay in order in one partition.
type placement struct {
	deadLetterTopic string
	part            *keys.Partitioner
}

var _ kgo.Partitioner = placement{}

func (p placement) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == p.deadLetterTopic {
		return byKey{p.part}
	}
	return kgo.ManualPartitioner().ForTopic(topic)
}

// byKey places a record by its key.
type byKey struct{ part *keys.Partitioner }

func (byKey) RequiresConsistency(*kgo.Record) bool { return true }

func (b byKey) Partition(r *kgo.Record, n int) int { return int(b.part.Partition(r.Key, int32(n))) }
