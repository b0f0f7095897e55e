package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/internal/topics"
)

// configFlags adds the flags that override configuration keys; a flag is named after its
// key, so --kafka.brokers sets kafka.brokers.
func (a *app) configFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringSlice("kafka.brokers", nil, "seed brokers (kafka.brokers)")
	f.String("kafka.input_topic", "", "order-domain event topic (kafka.input_topic)")
	f.String("kafka.group", "", "consumer group id (kafka.group)")
	f.String("kafka.state_topic", "", "compacted state topic (kafka.state_topic)")
	f.String("kafka.repartition_topic", "", "topic of re-keyed records of mapping topics with rekey: true (kafka.repartition_topic)")
	f.String("kafka.dead_letter_topic", "", "dead-letter topic (kafka.dead_letter_topic)")
	f.String("kafka.transactional_id", "", "this replica's transactional id (kafka.transactional_id)")
	f.String("log.level", "", "debug, info, warn or error (log.level)")
	f.String("telemetry.listen", "", "address of /metrics, /healthz, /readyz, e.g. :8080 (telemetry.listen)")
}

// loadConfig reads --config, UCPRELAY_* and the command's flags, in that order of
// precedence, and builds the settings the components take from it; with partnerSecrets
// it reads the partners' API keys and signing keys too (only the commands that deliver,
// or show how secrets resolve, need them).
func (a *app) loadConfig(file string, flags *pflag.FlagSet, partnerSecrets bool) (*settings, error) {
	src := config.Sources{File: file, Environ: a.environ, Flags: flags}
	cfg, err := config.Load(src)
	if err != nil {
		return nil, err
	}
	s, err := wire(cfg, a.environ, partnerSecrets)
	if err != nil {
		return nil, err
	}
	s.configFile = file
	s.reloadConfig = func() (*config.Config, error) { return config.Load(src) }
	return s, nil
}

// layout is the topic layout the configuration names.
func layout(c *settings) topics.Layout {
	co, rekey, repartition := inputs(c.Config)
	return topics.Layout{Input: append([]string{c.Kafka.InputTopic}, co...), Repartition: repartition, Rekeyed: rekey,
		State: c.Kafka.StateTopic, DeadLetter: c.Kafka.DeadLetterTopic, Partitioner: c.Kafka.Partitioner}
}

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check a configuration"}
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a configuration and print the effective result (file, then UCPRELAY_* env, then flags), secrets redacted",
		Long: `check loads the configuration exactly as run would, reports every invalid key with
its fix, and prints the effective configuration as YAML followed by how each secret
resolves (its source and length, never its value). It exits non-zero when the
configuration is invalid or a secret cannot be read.`,
		Example: `  ucprelay config check relay.yaml
  UCPRELAY_KAFKA__BROKERS=kafka:9092 ucprelay config check relay.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := a.configFile
			if len(args) == 1 {
				file = args[0]
			}
			s, err := a.loadConfig(file, cmd.Flags(), true)
			if err != nil {
				return err
			}
			out, err := config.Describe(s.effective())
			if err != nil {
				return err
			}
			out = append(out, "\n# secrets (values never shown)\n"...)
			for _, r := range s.resolved {
				out = fmt.Appendf(out, "# %s\n", r)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	a.configFlags(check)
	cmd.AddCommand(check)
	return cmd
}

// loadKafkaConfig loads the configuration and checks that the brokers answer with these
// connection settings, so that a wrong address, certificate or password fails at once
// with its cause instead of as a timeout later.
func (a *app) loadKafkaConfig(ctx context.Context, flags *pflag.FlagSet, partnerSecrets bool) (*settings, error) {
	cfg, err := a.loadConfig(a.configFile, flags, partnerSecrets)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(cfg.kafka...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		return nil, fmt.Errorf("kafka: brokers %v do not answer with the configured connection (kafka.tls, kafka.sasl): %w", cfg.Kafka.Brokers, err)
	}
	return cfg, nil
}
