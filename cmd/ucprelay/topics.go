package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/topics"
)

func (a *app) topicsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topics", Short: "Create and check the topics ucprelay owns"}
	var replication int16
	var dlqPartitions int32
	create := &cobra.Command{
		Use:   "create",
		Short: "Create the dead-letter topic (and the state topic, co-partitioned with the input)",
		Example: `  ucprelay topics create --config relay.yaml
  UCPRELAY_KAFKA__BROKERS=127.0.0.1:9092 UCPRELAY_KAFKA__INPUT_TOPIC=orders ucprelay topics create --replication 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, adm, done, err := a.topicsAdmin(cmd)
			if err != nil {
				return err
			}
			defer done()
			created, err := topics.Create(cmd.Context(), adm, layout(cfg), replication, dlqPartitions)
			for _, c := range created {
				state := "created"
				if c.Existed {
					state = "exists"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-8s %s (%d partitions)\n", state, c.Topic, c.Partitions)
			}
			return err
		},
	}
	create.Flags().Int16Var(&replication, "replication", 3, "replication factor of the new topics")
	create.Flags().Int32Var(&dlqPartitions, "dead-letter-partitions", 0, "partitions of the dead-letter topic (default: as many as the input)")
	a.configFlags(create, toolKeys)
	check := &cobra.Command{
		Use:   "check",
		Short: "Check the layout run requires and show each topic's partitions, replication and retention settings (read only)",
		Long: `check verifies what run checks at start (every topic exists, the inputs and the state topic
share one partition count, the state topic is compacted and only compacted) and prints, for
every topic the configuration names, its partitions, replication factor and the settings
that decide whether state survives and how large a record may be (cleanup.policy,
retention.ms, delete.retention.ms, min.compaction.lag.ms, max.message.bytes,
min.insync.replicas), with a warning where a setting puts data at risk. It writes nothing
and exits non-zero when the layout would stop run.`,
		Example: `  ucprelay topics check --config relay.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, adm, done, err := a.topicsAdmin(cmd)
			if err != nil {
				return err
			}
			defer done()
			l := layout(cfg)
			_, checkErr := topics.Check(cmd.Context(), adm, l)
			names := append(append(slices.Clone(l.Input), l.Rekeyed...), l.State, l.DeadLetter)
			if l.Repartition != "" {
				names = append(names, l.Repartition)
			}
			infos, err := topics.Describe(cmd.Context(), adm, names...)
			if err != nil {
				return errors.Join(checkErr, err)
			}
			w := cmd.OutOrStdout()
			for _, in := range infos {
				fmt.Fprintf(w, "%s: %d partitions, replication %d\n", in.Topic, in.Partitions, in.Replication)
				for _, k := range topics.ShownConfigs() {
					fmt.Fprintf(w, "  %s=%s\n", k, in.Configs[k])
				}
				for _, warn := range in.Warnings {
					fmt.Fprintf(w, "  warning: %s\n", warn)
				}
			}
			if checkErr != nil {
				return checkErr
			}
			fmt.Fprintln(w, "layout ok")
			return nil
		},
	}
	a.configFlags(check, toolKeys)
	cmd.AddCommand(create, check)
	return cmd
}

// topicsAdmin loads the configuration, checks the brokers answer, and returns an admin
// over a client of its own, with the function that closes it.
func (a *app) topicsAdmin(cmd *cobra.Command) (*settings, *topics.Admin, func(), error) {
	cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
	if err != nil {
		return nil, nil, nil, err
	}
	cl, err := kgo.NewClient(cfg.kafka...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	return cfg, topics.NewAdmin(cl), cl.Close, nil
}
