package kafkatest

import (
	"github.com/twmb/franz-go/pkg/kfake"
)

// Fake starts an in-process kfake cluster for fast tests and fault injection (see
// kfake.Cluster.ControlKey), seeded with the given topics of the given partition count,
// and closes it when the test ends. Topics are also created on demand by the code under
// test through CreateTopics. kfake is a fake: behaviour that matters (transactions,
// compaction, rebalances, partition growth) must also be proven on the real broker.
func Fake(t TB, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(int(partitions))}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kafkatest: kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}
