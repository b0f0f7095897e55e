package main

import (
	"fmt"

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
  UCPRELAY_KAFKA__BROKERS=127.0.0.1:9092 UCPRELAY_KAFKA__INPUT_TOPICS=orders ucprelay topics create --replication 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(cfg.kafka...)
			if err != nil {
				return fmt.Errorf("kafka client: %w", err)
			}
			defer cl.Close()
			created, err := topics.Create(cmd.Context(), topics.NewAdmin(cl), layout(cfg), replication, dlqPartitions)
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
	cmd.AddCommand(create)
	return cmd
}
