package topics

import (
	"context"
	"fmt"
	"slices"
	"strconv"
)

// shownConfigs are the topic settings `ucprelay topics check` shows: the ones that decide
// whether state survives (cleanup and retention), how large a record may be, and how
// many replicas must have a write.
var shownConfigs = []string{"cleanup.policy", "retention.ms", "delete.retention.ms", "min.compaction.lag.ms", "max.message.bytes", "min.insync.replicas"}

// Info describes one topic as the broker has it.
type Info struct {
	Topic       string
	Partitions  int32
	Replication int
	// Configs holds the shownConfigs values (the broker's default where not set).
	Configs map[string]string
	// Warnings are settings that work but put data at risk.
	Warnings []string
}

// Describe reads each topic's partitions, replication and the shown settings, and names
// what puts data at risk: min.insync.replicas below 2 with 3 or more replicas (one broker
// down and an acknowledged write may be lost with it).
func Describe(ctx context.Context, a *Admin, names ...string) ([]Info, error) {
	details, err := a.adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topics: list %v: %w", names, err)
	}
	rcs, err := a.adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topics: describe %v: %w", names, err)
	}
	out := make([]Info, 0, len(names))
	for _, t := range names {
		d, ok := details[t]
		if !ok || d.Err != nil {
			return nil, fmt.Errorf("topics: %w: %s (create it with `ucprelay topics create`)", ErrMissingTopic, t)
		}
		in := Info{Topic: t, Partitions: int32(len(d.Partitions)), Configs: map[string]string{}}
		for _, p := range d.Partitions {
			in.Replication = max(in.Replication, len(p.Replicas))
		}
		rc, err := rcs.On(t, nil)
		if err != nil {
			return nil, fmt.Errorf("topics: describe %s: %w", t, err)
		}
		for _, c := range rc.Configs {
			if slices.Contains(shownConfigs, c.Key) {
				in.Configs[c.Key] = c.MaybeValue()
			}
		}
		in.Warnings = risks(in.Replication, in.Configs)
		out = append(out, in)
	}
	return out, nil
}

// risks names the settings of a topic with this replication that put data at risk.
func risks(replication int, configs map[string]string) []string {
	var out []string
	if isr, err := strconv.Atoi(configs["min.insync.replicas"]); err == nil && isr < 2 && replication >= 3 {
		out = append(out, fmt.Sprintf("min.insync.replicas=%d with replication %d: a write acknowledged by one replica is lost if that broker fails; set 2", isr, replication))
	}
	return out
}

// ShownConfigs lists the settings Describe reads, in display order.
func ShownConfigs() []string { return slices.Clone(shownConfigs) }

// MaxMessageBytes is the topic's max.message.bytes, the largest record batch the broker
// accepts for it (the broker's default when it says none).
func (in Info) MaxMessageBytes() int {
	if n, err := strconv.Atoi(in.Configs["max.message.bytes"]); err == nil && n > 0 {
		return n
	}
	return DefaultMaxMessageBytes
}
