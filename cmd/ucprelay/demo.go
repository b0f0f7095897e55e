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
		outage   time.Duration
		record   string
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole flow in one process: embedded broker, registry, generator, relay and validating sink",
		Long: `demo needs no setup. It starts an embedded Kafka broker (kfake), an in-process schema
registry and two local partner sinks that validate every body against the UCP schema of
their partner's version (2026-04-08, 2026-01-23), check every snapshot's freshness and
verify every request's signature (RFC 9421, and the detached JWS of 2026-01-xx; ES256 with
a key generated for the run, whose public JWK it prints as a shop publishes it). It streams realistic order lifecycles (placements,
shipments, deliveries, returns, refunds, cancellations) for two partners as Avro (both
framings), with live progress; takes the partner down mid-stream (the breaker opens,
deliveries wait, fetching pauses at the pending bound) and brings it back; dead-letters a
poison record and an order for a partner not onboarded yet, then onboards that partner
and replays the order from the dead-letter topic. It ends with a summary table and exits
non-zero when a check fails or --duration passes.`,
		Example: `  ucprelay demo
  ucprelay demo --orders 100 --outage 10s --duration 2m --record /tmp/sink.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := demo.Options{Orders: orders, Duration: duration, Outage: outage, Out: cmd.OutOrStdout(), Logger: newLogger(a.stderr, logLevel)}
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
	cmd.Flags().IntVar(&orders, "orders", 40, "orders to generate")
	cmd.Flags().DurationVar(&duration, "duration", 90*time.Second, "upper bound of the run: the demo fails if it has not finished by then")
	cmd.Flags().DurationVar(&outage, "outage", 6*time.Second, "how long the partner is down mid-stream")
	cmd.Flags().StringVar(&record, "record", "", "write every request the sink receives to this JSON Lines file")
	cmd.Flags().StringVar(&logLevel, "log-level", "error", "relay log level: debug, info, warn, error")
	return cmd
}
