package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ucprelay/ucprelay/internal/demo"
)

func (a *app) demoCmd() *cobra.Command {
	var (
		orders   int
		duration time.Duration
		record   string
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole flow in one process: embedded broker, registry, generator, relay and validating sink",
		Long: `demo needs no setup. It starts an embedded Kafka broker (kfake), an in-process schema
registry and a local partner sink that validates every body against the UCP schema;
it publishes order placements as Avro (both framings) and one poison record, relays
them, prints what is sent and received, and exits with a summary. It exits non-zero
when a check fails.`,
		Example: `  ucprelay demo
  ucprelay demo --orders 50 --duration 45s --record /tmp/sink.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := demo.Options{Orders: orders, Duration: duration, Out: cmd.OutOrStdout(), Logger: newLogger(a.stderr, logLevel)}
			if record != "" {
				f, err := os.Create(record)
				if err != nil {
					return fmt.Errorf("--record: %w", err)
				}
				opts.Record = f
				_, err = demo.Run(cmd.Context(), opts)
				return errors.Join(err, f.Close())
			}
			_, err := demo.Run(cmd.Context(), opts)
			return err
		},
	}
	cmd.Flags().IntVar(&orders, "orders", 12, "orders to generate")
	cmd.Flags().DurationVar(&duration, "duration", 60*time.Second, "upper bound of the run")
	cmd.Flags().StringVar(&record, "record", "", "write every request the sink receives to this JSON Lines file")
	cmd.Flags().StringVar(&logLevel, "log-level", "error", "relay log level: debug, info, warn, error")
	return cmd
}
