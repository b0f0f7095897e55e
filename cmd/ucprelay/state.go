package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/ucp"
)

func (a *app) stateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "state", Short: "Inspect and migrate the compacted state topic"}
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
	a.configFlags(inspect)
	a.configFlags(migrate)
	cmd.AddCommand(inspect, migrate)
	return cmd
}

// ErrGroupActive means relays still run: a migration would race them.
var ErrGroupActive = errors.New("the consumer group has active members")

func (a *app) migrateState(ctx context.Context, cmd *cobra.Command, cfg *settings, force bool) error {
	cl, err := kgo.NewClient(cfg.kafka...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	groups, err := adm.DescribeGroups(ctx, cfg.Kafka.Group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", cfg.Kafka.Group, err)
	}
	if g, ok := groups[cfg.Kafka.Group]; ok && len(g.Members) > 0 && !force {
		return fmt.Errorf("state migrate: %w: %s has %d (state %s); stop the relays first, or pass --force",
			ErrGroupActive, cfg.Kafka.Group, len(g.Members), g.State)
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
