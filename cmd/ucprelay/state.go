package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/ucp"
)

func (a *app) stateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "state", Short: "Inspect, migrate, release and drop orders' state in the compacted state topic"}
	inspect := &cobra.Command{
		Use:   "inspect ORDER_ID",
		Short: "Print an order's stored state (events, delivery marks) and its current snapshot, as JSON",
		Example: `  ucprelay state inspect ord_10452 --config relay.yaml
  ucprelay state inspect ord_10452 --config relay.yaml | jq .snapshot`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
			if err != nil {
				return err
			}
			return a.inspectState(cmd.Context(), cmd, cfg, args[0])
		},
	}
	var force bool
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Rewrite the state topic for the input topic's partition count, after the input grew",
		Long: `After partitions are added to the input topic, keys land in new partitions and the relays
refuse to run. migrate grows the state topic to the input's partition count and moves each
order's state to its new partition in one transaction, then the relays run again.
Stop the relays first (it refuses while the consumer group has members, unless --force).
It is safe to run again: an interrupted run leaves nothing half-moved.`,
		Example: `  kafka-topics.sh --alter --topic orders --partitions 24 --bootstrap-server kafka:9092
  ucprelay state migrate --config relay.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
			if err != nil {
				return err
			}
			return a.migrateState(cmd.Context(), cmd, cfg, force)
		},
	}
	migrate.Flags().BoolVar(&force, "force", false, "migrate even while the consumer group has members")
	release := &cobra.Command{
		Use:   "release ORDER_ID...",
		Short: "Ask the relays to read parked orders' state again and fold their held events onto it",
		Long: `An order whose stored state could not be read is parked: its record is kept as it was and
its later events are held with it (see ` + "`state inspect`" + `). After the cause is fixed (e.g. an
upgrade of ucprelay that reads it), release asks the relay owning each order to read it again:
when it reads, the held events fold onto it and the current snapshot is sent; when it still
does not, the order stays parked and the relay logs why. The relays do the same by themselves
whenever a new event of a parked order arrives.`,
		Example: `  ucprelay state release ord_10452 --config relay.yaml`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
			if err != nil {
				return err
			}
			return a.requestState(cmd.Context(), cmd, cfg, deadletter.RequestRelease, args)
		},
	}
	var yes bool
	drop := &cobra.Command{
		Use:   "drop ORDER_ID...",
		Short: "Remove orders' state (parked or not): say what it drops, then ask the owning relays to drop it",
		Long: `drop removes each order's state record from the state topic (a tombstone written by the relay
that owns the order, in its transaction): its stored events, delivery marks and, for a parked
order, the events held with it. The partner keeps what it has; a later event of the order starts
it anew. drop first prints what each order holds, and writes nothing without --yes.`,
		Example: `  ucprelay state drop ord_10452 --config relay.yaml          # shows what it would drop
  ucprelay state drop ord_10452 --config relay.yaml --yes`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := a.describeDrop(cmd.Context(), cmd, cfg, id); err != nil {
					return err
				}
			}
			if !yes {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "nothing written: pass --yes to drop")
				return err
			}
			return a.requestState(cmd.Context(), cmd, cfg, deadletter.RequestDrop, args)
		},
	}
	drop.Flags().BoolVar(&yes, "yes", false, "write the drop requests (without it, only show what would be dropped)")
	a.configFlags(migrate, migrateKeys)
	for _, c := range []*cobra.Command{inspect, release, drop} {
		a.configFlags(c, toolKeys)
	}
	cmd.AddCommand(inspect, migrate, release, drop)
	return cmd
}

// describeDrop prints what dropping an order removes.
func (a *app) describeDrop(ctx context.Context, cmd *cobra.Command, cfg *settings, orderID string) error {
	codec, err := avrocodec.New()
	if err != nil {
		return err
	}
	part, err := keys.New(cfg.Kafka.Partitioner)
	if err != nil {
		return err
	}
	version := func(string) (ucp.Version, error) { return ucp.DefaultVersion, nil }
	in, err := statestore.Inspect(ctx, cfg.kafka, cfg.Kafka.StateTopic, part, orderID, codec,
		statestore.Partners{Default: cfg.DefaultPartner, Version: version})
	out := cmd.OutOrStdout()
	switch {
	case errors.Is(err, statestore.ErrNoState):
		_, err = fmt.Fprintf(out, "drop %s: no state stored (nothing to drop)\n", orderID)
		return err
	case err != nil:
		return fmt.Errorf("state drop: %w", err)
	}
	what := fmt.Sprintf("%d stored events, partner %q", len(in.Events), in.Partner)
	if in.Unreadable != "" {
		what = "a state record that cannot be read (" + in.Unreadable + ")"
	}
	if in.Parked != nil {
		what += fmt.Sprintf("; parked since %s (%s) with %d held events %v", in.Parked.Since.Format(time.RFC3339), in.Parked.Reason,
			len(in.Parked.HeldEvents), in.Parked.HeldEvents)
	}
	_, err = fmt.Fprintf(out, "drop %s (%s/%d): %s\n", orderID, in.Topic, in.Partition, what)
	return err
}

// requestState writes a release or drop request for each order to the input topic, in
// the order's partition, for the relay that owns it.
func (a *app) requestState(ctx context.Context, cmd *cobra.Command, cfg *settings, kind deadletter.ReplayKind, ids []string) error {
	part, err := keys.New(cfg.Kafka.Partitioner)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, cfg.kafka...), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(ctx, cfg.Kafka.InputTopic)
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", cfg.Kafka.InputTopic, err)
	}
	td, ok := md.Topics[cfg.Kafka.InputTopic]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return fmt.Errorf("state %s: input topic %s does not exist", kind, cfg.Kafka.InputTopic)
	}
	n := int32(len(td.Partitions))
	var recs []*kgo.Record
	for _, id := range ids {
		recs = append(recs, &kgo.Record{Topic: cfg.Kafka.InputTopic, Partition: part.Partition([]byte(id), n), Key: []byte(id),
			Value:   deadletter.EncodeReference(deadletter.Reference{OrderID: id}),
			Headers: []kgo.RecordHeader{{Key: deadletter.HeaderReplayKind, Value: []byte(kind)}}})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("state %s: write requests to %s: %w", kind, cfg.Kafka.InputTopic, err)
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s requested for %d orders; the owning relays log the outcome\n", kind, len(ids))
	return err
}

// ErrGroupActive means relays still run: a migration would race them.
var ErrGroupActive = errors.New("the consumer group has active members")

// groupIdle returns nil when the consumer group has no members under either protocol:
// the classic one (DescribeGroups) and the consumer one of KIP-848
// (ConsumerGroupDescribe), which the classic describe does not see. A group that does
// not exist under a protocol has no members there, and neither has a protocol no broker
// knows; any other describe error fails, so an unreadable group never passes as idle.
func groupIdle(ctx context.Context, adm *kadm.Client, group string) error {
	classic, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s (classic protocol): %w", group, err)
	}
	if g, ok := classic[group]; ok {
		if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
			return fmt.Errorf("describe group %s (classic protocol): %w", group, g.Err)
		}
		if g.Err == nil && len(g.Members) > 0 {
			return fmt.Errorf("%w: %s has %d on the classic protocol (state %s); stop the relays first, or pass --force",
				ErrGroupActive, group, len(g.Members), g.State)
		}
	}
	// A cluster no broker of which knows ConsumerGroupDescribe (Kafka before 3.7) has
	// no consumer protocol: no member can be there.
	versions, err := adm.ApiVersions(ctx)
	if err != nil {
		return fmt.Errorf("describe group %s (consumer protocol): api versions: %w", group, err)
	}
	supported := false
	for _, v := range versions {
		if v.Err != nil {
			return fmt.Errorf("describe group %s (consumer protocol): api versions of broker %d: %w", group, v.NodeID, v.Err)
		}
		if _, ok := v.KeyMaxVersion(kmsg.ConsumerGroupDescribe.Int16()); ok {
			supported = true
		}
	}
	if !supported {
		return nil
	}
	consumer, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("describe group %s (consumer protocol): %w", group, err)
	}
	if g, ok := consumer[group]; ok {
		if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
			return fmt.Errorf("describe group %s (consumer protocol): %w", group, g.Err)
		}
		if g.Err == nil && len(g.Members) > 0 {
			return fmt.Errorf("%w: %s has %d on the consumer protocol (state %s); stop the relays first, or pass --force",
				ErrGroupActive, group, len(g.Members), g.State)
		}
	}
	return nil
}

func (a *app) migrateState(ctx context.Context, cmd *cobra.Command, cfg *settings, force bool) error {
	cl, err := kgo.NewClient(cfg.kafka...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if !force {
		if err := groupIdle(ctx, adm, cfg.Kafka.Group); err != nil {
			return fmt.Errorf("state migrate: %w", err)
		}
	}
	md, err := adm.Metadata(ctx, cfg.Kafka.InputTopic)
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", cfg.Kafka.InputTopic, err)
	}
	td, ok := md.Topics[cfg.Kafka.InputTopic]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return fmt.Errorf("state migrate: input topic %s does not exist", cfg.Kafka.InputTopic)
	}
	part, err := keys.New(cfg.Kafka.Partitioner)
	if err != nil {
		return err
	}
	out := cmd.ErrOrStderr()
	rep, err := statestore.Migrate(ctx, cfg.kafka, statestore.MigrateOptions{
		Topic: cfg.Kafka.StateTopic, Partitions: int32(len(td.Partitions)), Partitioner: part,
		TransactionalID: cfg.transactionalID() + ".migrate",
		Progress:        func(format string, args ...any) { fmt.Fprintf(out, "migrate: "+format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	from := "no layout"
	if rep.From > 0 {
		from = fmt.Sprintf("%d partitions", rep.From)
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "migrated %s from %s to %d partitions: %d orders, %d moved, %d superseded copies dropped, in %s\n",
		cfg.Kafka.StateTopic, from, rep.To, rep.Orders, rep.Moved, rep.Superseded, rep.Took.Round(time.Millisecond))
	return err
}

func (a *app) inspectState(ctx context.Context, cmd *cobra.Command, cfg *settings, orderID string) error {
	part, err := keys.New(cfg.Kafka.Partitioner)
	if err != nil {
		return err
	}
	codec, err := avrocodec.New()
	if err != nil {
		return err
	}
	// Shown in the partner's version; the default version when the partner is gone.
	version := func(partner string) (ucp.Version, error) {
		if p, ok := cfg.partners[partner]; ok {
			return p.Version, nil
		}
		return ucp.DefaultVersion, nil
	}
	in, err := statestore.Inspect(ctx, cfg.kafka, cfg.Kafka.StateTopic, part, orderID, codec,
		statestore.Partners{Default: cfg.DefaultPartner, Version: version})
	if err != nil {
		return fmt.Errorf("state inspect: %w", err)
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(in)
}
