package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/ucprelay/ucprelay/internal/buildinfo"
)

// app carries what every subcommand shares.
type app struct {
	stdout, stderr io.Writer
	environ        []string
	configFile     string
	// onListen, when set, learns the telemetry server's address (tests listen on :0).
	onListen func(net.Addr)
	// reloadDemand, when set, stands for SIGHUP in run (tests).
	reloadDemand <-chan struct{}
}

func newRootCmd(stdout, stderr io.Writer, environ []string) *cobra.Command {
	return newRootCmdFor(&app{stdout: stdout, stderr: stderr, environ: environ})
}

func newRootCmdFor(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "ucprelay",
		Short: "Relay order-domain events from Kafka to UCP order webhooks as complete order snapshots",
		Long: `ucprelay consumes a merchant's order-domain events (Avro on Kafka), rebuilds the complete
UCP order entity, and POSTs it to each agent platform's order webhook; what cannot be
processed or delivered goes to a dead-letter topic.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().StringVar(&a.configFile, "config", "", "YAML configuration file (env UCPRELAY_* and flags override it)")
	root.AddCommand(a.versionCmd(), a.runCmd(), a.sinkCmd(), a.demoCmd(), a.topicsCmd(), a.stateCmd(), a.keysCmd(), a.dlqCmd(), a.configCmd(), a.produceCmd(), a.mappingCmd())
	return root
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildinfo.String())
			return err
		},
	}
}

// newLogger returns a JSON slog logger at level.
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
