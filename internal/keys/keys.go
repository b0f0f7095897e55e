// Package keys computes the partition a record key lands on, the way the producers of
// the order-domain topic compute it. ucprelay needs it twice: to forward an event that
// still sits in its order's old partition after the input topic grew, and to place an
// order's state record in `ucprelay state migrate` and `state inspect`.
package keys

import (
	"fmt"
	"hash/crc32"
	"hash/fnv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Partitioner names a producer's key-to-partition rule.
type Partitioner struct {
	name string
	tp   kgo.TopicPartitioner
}

// Names of the supported partitioners.
const (
	// Murmur2 is Kafka's default (Java client, franz-go, librdkafka's murmur2_random).
	Murmur2 = "murmur2"
	// Sarama is the default of github.com/IBM/sarama (FNV-1a).
	Sarama = "sarama"
	// CRC32 is librdkafka's consistent partitioner.
	CRC32 = "crc32"
)

// New returns the partitioner called name ("" means murmur2).
func New(name string) (*Partitioner, error) {
	var h kgo.PartitionerHasher
	switch name {
	case "", Murmur2:
		name = Murmur2
	case Sarama:
		h = kgo.SaramaCompatHasher(func(b []byte) uint32 {
			f := fnv.New32a()
			_, _ = f.Write(b)
			return f.Sum32()
		})
	case CRC32:
		h = kgo.SaramaHasher(crc32.ChecksumIEEE)
	default:
		return nil, fmt.Errorf("keys: unknown partitioner %q (want %s, %s or %s)", name, Murmur2, Sarama, CRC32)
	}
	return &Partitioner{name: name, tp: kgo.StickyKeyPartitioner(h).ForTopic("")}, nil
}

// MustNew is New for names known to be valid.
func MustNew(name string) *Partitioner {
	p, err := New(name)
	if err != nil {
		panic(err)
	}
	return p
}

// Name is the partitioner's name.
func (p *Partitioner) Name() string { return p.name }

// Partition returns the partition of key among n. key must not be empty.
func (p *Partitioner) Partition(key []byte, n int32) int32 {
	return int32(p.tp.Partition(&kgo.Record{Key: key}, int(n)))
}
