package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/buildinfo"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/internal/telemetry"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
)

func (a *app) runCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Relay order-domain events to the configured partner webhooks",
		Example: `  ucprelay run --config /etc/ucprelay/config.yaml
  UCPRELAY_KAFKA__BROKERS=kafka:9092 ucprelay run --config relay.yaml --log.level debug`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), true)
			if err != nil {
				return err
			}
			return a.run(cmd.Context(), cfg)
		},
	}
	a.configFlags(cmd, everyKey)
	return cmd
}

// run runs the relay with its telemetry and health endpoints until ctx ends (SIGTERM,
// SIGINT): then the relay stops fetching, finishes or abandons in-flight deliveries
// within its grace, commits, and leaves the group; the telemetry is flushed last. The
// error, nil after a clean stop, decides the exit code.
func (a *app) run(ctx context.Context, cfg *settings) error {
	sdk, err := telemetry.Setup(ctx, telemetry.Config{Service: "ucprelay", Version: buildinfo.String(), OTLPEndpoint: cfg.Telemetry.OTLPEndpoint})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = sdk.Shutdown(sctx)
	}()
	r, err := a.buildRelay(ctx, cfg)
	if err != nil {
		return err
	}
	// cur is the relay running now: a fence replaces it (fencing.go).
	var cur atomic.Pointer[relay.Relay]
	var problem atomic.Pointer[string]
	cur.Store(r)
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	srvErr := make(chan error, 1)
	if cfg.Telemetry.Listen != "" {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Telemetry.Listen)
		if err != nil {
			r.Close()
			stopSrv()
			return fmt.Errorf("telemetry.listen: %w", err)
		}
		if a.onListen != nil {
			a.onListen(ln.Addr())
		}
		h := telemetry.Handler(sdk.Metrics, healthOf(func() (bool, any) {
			h := cur.Load().Health()
			if c := problem.Load(); c != nil {
				h.Ready, h.Problem = false, *c
			}
			return h.Ready, h
		}))
		go func() { srvErr <- telemetry.Serve(srvCtx, ln, h) }()
	} else {
		srvErr <- nil
	}
	demand, stopDemands := a.reloadDemands()
	defer stopDemands()
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchErr := make(chan error, 1)
	log := newLogger(a.stderr, cfg.Log.Level)
	id, from := cfg.transactionalIDFrom()
	log.Info("transactional id", "transactional_id", id, "from", from)
	go func() { watchErr <- a.signingReloader(cfg, log, demand).Run(watchCtx) }()
	runErr := a.relayFenced(ctx, cfg, log, &cur, &problem)
	stopWatch()
	stopSrv()
	return errors.Join(runErr, <-srvErr, <-watchErr)
}

// healthOf adapts a function to telemetry.Health.
type healthOf func() (bool, any)

func (h healthOf) Ready() (bool, any) { return h() }

// buildRelay wires a relay from the settings: it checks the topic layout and builds the
// codec (with the schema registry when one is configured).
func (a *app) buildRelay(ctx context.Context, cfg *settings) (*relay.Relay, error) {
	log := newLogger(a.stderr, cfg.Log.Level)
	for _, w := range cfg.warnings {
		log.Warn(w)
	}
	check, err := kgo.NewClient(cfg.kafka...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = topics.Check(cctx, topics.NewAdmin(check), layout(cfg))
	cancel()
	check.Close()
	if err != nil {
		return nil, err
	}
	var codecOpts []avrocodec.Option
	if cfg.SchemaRegistry.URL != "" {
		reg, err := cfg.registryClient()
		if err != nil {
			return nil, fmt.Errorf("schema registry client: %w", err)
		}
		codecOpts = append(codecOpts, avrocodec.WithRegistry(reg))
		if cfg.mapper != nil {
			if err := checkMappingTypes(ctx, log, cfg.mapper, reg); err != nil {
				return nil, err
			}
		}
	}
	codec, err := avrocodec.New(codecOpts...)
	if err != nil {
		return nil, err
	}
	rc := cfg.relayConfig(log)
	if cfg.mapper != nil {
		rc.Mapper = mapping.Records{Mapper: cfg.mapper, Codec: codec}
	}
	return relay.New(rc, cfg.kafka, codec, cfg.snd)
}

// checkMappingTypes type-checks the mapping against the registry's writer schemas of the
// mapped topics. A registry that does not answer leaves the check to each record (a
// registry outage must not keep the relay from starting: its records wait, held).
func checkMappingTypes(ctx context.Context, log *slog.Logger, m *mapping.Mapper, reg mapping.SchemaLister) error {
	cctx, cancel := context.WithTimeout(ctx, 4*registryTimeout)
	defer cancel()
	writers, err := mapping.RegistryWriters(cctx, reg, m.Topics())
	if err != nil {
		log.Warn("the mapping is not type-checked: the schema registry did not answer; its rules are checked on each record", "err", err)
		return nil
	}
	if err := m.Check(writers); err != nil {
		return fmt.Errorf("the mapping does not fit the registry's writer schemas (`ucprelay mapping test` shows the same):\n%w", err)
	}
	log.Info("mapping type-checked against the schema registry", "writer_schemas", len(writers))
	return nil
}
