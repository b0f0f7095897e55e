// Package topics creates and checks the Kafka topics ucprelay owns: the compacted state
// topic, co-partitioned with the input, and the dead-letter topic. `ucprelay topics
// create` creates them; `ucprelay run` checks them at start and refuses to run on a
// layout it would corrupt (wrong cleanup policy, or input and state partition counts
// that differ after the input topic grew).
package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/statestore"
)

// Admin wraps a client for the layout checks. Topic listings bypass kgo's metadata cache,
// so a check right after a create (or a create right after a failed check) sees the truth.
type Admin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// NewAdmin returns an Admin over cl.
func NewAdmin(cl *kgo.Client) *Admin { return &Admin{cl: cl, adm: kadm.NewClient(cl)} }

// partitionCounts returns the partition count of each existing topic among names.
func (a *Admin) partitionCounts(ctx context.Context, names ...string) (map[string]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, fmt.Errorf("topics: metadata: %w", err)
	}
	out := make(map[string]int32, len(names))
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
		case err != nil:
			return nil, fmt.Errorf("topics: %s: %w", *t.Topic, err)
		default:
			out[*t.Topic] = int32(len(t.Partitions))
		}
	}
	return out, nil
}

// Layout names the topics of one relay deployment.
type Layout struct {
	// Input are the order-domain event topics read directly (keyed by order id); all
	// must have the same partition count.
	Input []string
	// Repartition is ucprelay's topic of re-keyed records, co-partitioned with Input:
	// created with Input's partition count. Empty when no input is re-keyed.
	Repartition string
	// Rekeyed are the input topics keyed by something else than the order id (any
	// partition count); they must exist.
	Rekeyed []string
	// State is the compacted state topic, co-partitioned with Input. Empty when the
	// deployment keeps no state.
	State string
	// DeadLetter is the dead-letter topic.
	DeadLetter string
	// Partitioner is the producers' key partitioner, recorded in the state topic's
	// layout records. Default murmur2.
	Partitioner string
}

// Sentinel errors, to tell layout problems apart with errors.Is.
var (
	// ErrMissingTopic: a topic the relay needs does not exist.
	ErrMissingTopic = errors.New("topic does not exist")
	// ErrPartitionMismatch: input and state topics have different partition counts, so an
	// order's events and its state would live in different partitions. Run
	// `ucprelay state migrate` after growing the input topic.
	ErrPartitionMismatch = errors.New("input and state topics have different partition counts")
	// ErrNotCompacted: the state topic's cleanup.policy is not compact, so the broker would
	// delete order state by age.
	ErrNotCompacted = errors.New("state topic is not compacted")
)

// StateConfigs are the settings of a state topic: compacted, never deleted by age, and
// cleaned eagerly enough that it holds about one record per order.
func StateConfigs() map[string]*string {
	return map[string]*string{
		"cleanup.policy":            ptr("compact"),
		"min.cleanable.dirty.ratio": ptr("0.1"),
		"segment.ms":                ptr("3600000"),
		"retention.ms":              ptr("-1"),
	}
}

// RepartitionConfigs are the settings of a repartition topic: its records matter until
// the relay folded them (within seconds); 7 days cover any outage and a replay.
func RepartitionConfigs() map[string]*string {
	return map[string]*string{
		"cleanup.policy": ptr("delete"),
		"retention.ms":   ptr(strconv.FormatInt(7*24*3600*1000, 10)),
	}
}

// DeadLetterConfigs are the settings of a dead-letter topic: kept 30 days.
func DeadLetterConfigs() map[string]*string {
	return map[string]*string{
		"cleanup.policy": ptr("delete"),
		"retention.ms":   ptr(strconv.FormatInt(30*24*3600*1000, 10)),
	}
}

func ptr(s string) *string { return &s }

func partitionerName(s string) string {
	if s == "" {
		return keys.Murmur2
	}
	return s
}

// writeLayout writes the layout records of a new state topic, which a relay needs before
// it restores a partition.
func (a *Admin) writeLayout(ctx context.Context, topic string, l statestore.Layout) error {
	cl, err := kgo.NewClient(append(a.cl.Opts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return fmt.Errorf("topics: client: %w", err)
	}
	defer cl.Close()
	return statestore.WriteLayout(ctx, cl, topic, l)
}

// Created reports what Create did for one topic.
type Created struct {
	Topic      string
	Partitions int32
	Existed    bool
}

// Create creates the state and repartition topics with the input's partition count and
// the dead-letter topic with deadLetterPartitions partitions; topics that exist are left
// as they are. The input topics must exist.
func Create(ctx context.Context, adm *Admin, l Layout, replication int16, deadLetterPartitions int32) ([]Created, error) {
	n, err := inputPartitions(ctx, adm, l.Input)
	if err != nil {
		return nil, err
	}
	if err := rekeyedExist(ctx, adm, l.Rekeyed); err != nil {
		return nil, err
	}
	var out []Created
	create := func(topic string, partitions int32, configs map[string]*string) error {
		resp, err := adm.adm.CreateTopic(ctx, partitions, replication, configs, topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			out = append(out, Created{Topic: topic, Partitions: partitions, Existed: true})
			return nil
		case err != nil:
			return fmt.Errorf("topics: create %s: %w", topic, err)
		}
		out = append(out, Created{Topic: topic, Partitions: partitions})
		return nil
	}
	if l.State != "" {
		if err := create(l.State, n, StateConfigs()); err != nil {
			return out, err
		}
		if c := out[len(out)-1]; !c.Existed {
			if err := adm.waitVisible(ctx, []Created{c}); err != nil {
				return out, err
			}
			if err := adm.writeLayout(ctx, l.State, statestore.Layout{Partitions: n, Partitioner: partitionerName(l.Partitioner)}); err != nil {
				return out, err
			}
		}
	}
	if l.Repartition != "" {
		if err := create(l.Repartition, n, RepartitionConfigs()); err != nil {
			return out, err
		}
	}
	if l.DeadLetter != "" {
		if deadLetterPartitions <= 0 {
			deadLetterPartitions = n
		}
		if err := create(l.DeadLetter, deadLetterPartitions, DeadLetterConfigs()); err != nil {
			return out, err
		}
	}
	return out, adm.waitVisible(ctx, out)
}

// waitVisible returns once every topic shows in metadata with its partitions: a broker
// answers CreateTopics before its metadata shows the topic.
func (a *Admin) waitVisible(ctx context.Context, cs []Created) error {
	var names []string
	for _, c := range cs {
		if !c.Existed {
			names = append(names, c.Topic)
		}
	}
	if len(names) == 0 {
		return nil
	}
	for {
		counts, err := a.partitionCounts(ctx, names...)
		if err != nil {
			return err
		}
		visible := true
		for _, c := range cs {
			visible = visible && (c.Existed || counts[c.Topic] >= c.Partitions)
		}
		if visible {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics: created topics not visible in metadata: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Check verifies the layout before the relay runs: every topic exists, the input topics
// share one partition count, the state topic has that count and is compacted, and only
// compacted (cleanup.policy compact alone: compact,delete deletes state by age). It returns
// the input partition count.
func Check(ctx context.Context, adm *Admin, l Layout) (int32, error) {
	in := l.Input
	if l.Repartition != "" {
		in = append(slices.Clone(in), l.Repartition)
	}
	n, err := inputPartitions(ctx, adm, in)
	if err != nil {
		return 0, err
	}
	if err := rekeyedExist(ctx, adm, l.Rekeyed); err != nil {
		return 0, err
	}
	names := []string{}
	if l.State != "" {
		names = append(names, l.State)
	}
	if l.DeadLetter != "" {
		names = append(names, l.DeadLetter)
	}
	counts, err := adm.partitionCounts(ctx, names...)
	if err != nil {
		return 0, err
	}
	for _, t := range names {
		if _, ok := counts[t]; !ok {
			return 0, fmt.Errorf("topics: %w: %s (create it with `ucprelay topics create`)", ErrMissingTopic, t)
		}
	}
	if l.State == "" {
		return n, nil
	}
	if sp := counts[l.State]; sp != n {
		return 0, fmt.Errorf("topics: %w: input %s has %d, state %s has %d; run `ucprelay state migrate` to repartition the state",
			ErrPartitionMismatch, strings.Join(l.Input, ","), n, l.State, sp)
	}
	rcs, err := adm.adm.DescribeTopicConfigs(ctx, l.State)
	if err != nil {
		return 0, fmt.Errorf("topics: describe %s: %w", l.State, err)
	}
	rc, err := rcs.On(l.State, nil)
	if err != nil {
		return 0, fmt.Errorf("topics: describe %s: %w", l.State, err)
	}
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			policy = c.MaybeValue()
		}
	}
	if !compactOnly(policy) {
		return 0, fmt.Errorf("topics: %w: %s has cleanup.policy=%q; set it to compact alone (with delete the broker removes "+
			"state older than retention.ms: order history lost, stamps restarted)", ErrNotCompacted, l.State, policy)
	}
	return n, nil
}

// compactOnly reports whether a cleanup.policy keeps every key's latest record for good:
// compact, and not delete beside it.
func compactOnly(policy string) bool {
	var compact bool
	for _, p := range strings.Split(policy, ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			compact = true
		case "delete":
			return false
		}
	}
	return compact
}

// DefaultMaxMessageBytes is the broker's default max.message.bytes.
const DefaultMaxMessageBytes = 1048588

// rekeyedExist checks that the re-keyed inputs exist.
func rekeyedExist(ctx context.Context, adm *Admin, names []string) error {
	if len(names) == 0 {
		return nil
	}
	have, err := adm.partitionCounts(ctx, names...)
	if err != nil {
		return err
	}
	for _, t := range names {
		if _, ok := have[t]; !ok {
			return fmt.Errorf("topics: %w: input topic %s", ErrMissingTopic, t)
		}
	}
	return nil
}

func inputPartitions(ctx context.Context, adm *Admin, input []string) (int32, error) {
	if len(input) == 0 {
		return 0, errors.New("topics: no input topics")
	}
	have, err := adm.partitionCounts(ctx, input...)
	if err != nil {
		return 0, err
	}
	counts := map[int32][]string{}
	for _, t := range input {
		n, ok := have[t]
		if !ok {
			return 0, fmt.Errorf("topics: %w: input topic %s", ErrMissingTopic, t)
		}
		counts[n] = append(counts[n], t)
	}
	if len(counts) > 1 {
		var parts []string
		for n, ts := range counts {
			parts = append(parts, fmt.Sprintf("%d: %s", n, strings.Join(ts, ",")))
		}
		sort.Strings(parts)
		return 0, fmt.Errorf("topics: %w: the inputs read directly (keyed by order id) must share one partition count, got %s",
			ErrPartitionMismatch, strings.Join(parts, "; "))
	}
	for n := range counts {
		return n, nil
	}
	return 0, nil
}
