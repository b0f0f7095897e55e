package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	f.String("kafka.dead_letter_topic", "", "dead-letter topic (kafka.dead_letter_topic)")
	f.String("kafka.transactional_id", "", "this replica's transactional id (kafka.transactional_id)")
	f.String("log.level", "", "debug, info, warn or error (log.level)")
}

// loadConfig reads --config, UCPRELAY_* and the command's flags, in that order of precedence.
func (a *app) loadConfig(flags *pflag.FlagSet) (*config.Config, error) {
	return config.Load(config.Sources{File: a.configFile, Environ: a.environ, Flags: flags})
}

// layout is the topic layout the configuration names.
func layout(c *config.Config) topics.Layout {
	return topics.Layout{Input: []string{c.Kafka.InputTopic}, State: c.Kafka.StateTopic, DeadLetter: c.Kafka.DeadLetterTopic, Partitioner: c.Kafka.Partitioner}
}
