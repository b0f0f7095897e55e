package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/internal/topics"
)

// keyScope selects the configuration keys a command has flags for: the ones it uses, so
// that a flag it would ignore (--telemetry.listen on dlq replay) is refused as unknown.
type keyScope func(key string) bool

// runOnly are the keys only `run` (and `config check`, which shows what run would do) uses.
func runOnly(key string) bool {
	for _, p := range []string{"telemetry.", "reload.", "delivery.", "state.", "kafka.transactional_id", "kafka.instance_id", "kafka.session_timeout", "kafka.group_protocol"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

var (
	// everyKey: run and config check.
	everyKey keyScope = func(string) bool { return true }
	// toolKeys: the commands that read or write topics once, without delivering.
	toolKeys keyScope = func(k string) bool { return !runOnly(k) }
	// migrateKeys: state migrate writes in a transaction of its own (the replica's
	// transactional id, which kafka.instance_id can name, + ".migrate").
	migrateKeys keyScope = func(k string) bool {
		return !runOnly(k) || strings.HasPrefix(k, "kafka.transactional_id") || k == "kafka.instance_id"
	}
)

// configFlags adds a flag for every scalar configuration key in scope, named after its
// key (--kafka.brokers sets kafka.brokers) and typed as the key is.
func (a *app) configFlags(cmd *cobra.Command, scope keyScope) {
	f := cmd.Flags()
	for _, k := range config.Keys() {
		if !scope(k.Name) {
			continue
		}
		usage := fmt.Sprintf("%s (%s)", k.Help, k.Env())
		switch k.Type {
		case reflect.TypeFor[time.Duration]():
			f.Duration(k.Name, 0, usage)
		case reflect.TypeFor[[]string]():
			f.StringSlice(k.Name, nil, usage)
		case reflect.TypeFor[bool]():
			f.Bool(k.Name, false, usage)
		case reflect.TypeFor[int]():
			f.Int(k.Name, 0, usage)
		case reflect.TypeFor[uint32]():
			f.Uint32(k.Name, 0, usage)
		default:
			f.String(k.Name, "", usage)
		}
	}
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
			for _, w := range s.warnings {
				out = fmt.Appendf(out, "# warning: %s\n", w)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	a.configFlags(check, everyKey)
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
