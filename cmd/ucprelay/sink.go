package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

func (a *app) sinkCmd() *cobra.Command {
	var (
		addr, version, record, prefix, keyEnv, verifyKey string
		latency, outageEvery, outageFor                  time.Duration
		failRate                                         float64
		failStatus                                       int
	)
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Run a local partner endpoint that validates every order webhook it receives",
		Long: `sink plays an agent platform's UCP order webhook on
POST {prefix}/webhooks/partners/{partner_id}/events/order. It validates each body against
the UCP order schema of --ucp-version, checks that an order's freshness stamp never goes
back, can inject failures and latency, and with --record writes every request it
receives as a JSON line (API keys redacted).`,
		Example: `  ucprelay sink --addr 127.0.0.1:8080 --record /tmp/sink.jsonl
  SINK_KEY=secret ucprelay sink --api-key-env SINK_KEY --fail-rate 0.3 --fail-status 503 --latency 20ms
  ucprelay sink --outage-every 2m --outage-for 30s      # the partner goes down for 30 s every 2 minutes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			val, err := ucpschema.New(version)
			if err != nil {
				return err
			}
			cfg := sink.Config{Validator: val, PathPrefix: prefix}
			if keyEnv != "" {
				if cfg.APIKey = os.Getenv(keyEnv); cfg.APIKey == "" {
					return fmt.Errorf("--api-key-env: %s is empty", keyEnv)
				}
			}
			if verifyKey != "" {
				b, err := os.ReadFile(verifyKey)
				if err != nil {
					return fmt.Errorf("--verify-key: %w", err)
				}
				keys, err := sink.ParsePublicKeys(b)
				if err != nil {
					return fmt.Errorf("--verify-key: %w", err)
				}
				cfg.Verifier = &sink.RFC9421Verifier{Keys: keys.EC, EdKeys: keys.Ed, MaxAge: 5 * time.Minute}
				if version != string(ucp.V20260408) { // 2026-01-xx: a detached JWS in Request-Signature
					cfg.Verifier = &sink.JWSVerifier{Keys: keys.EC}
				}
			}
			if record != "" {
				f, err := os.OpenFile(record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					return fmt.Errorf("--record: %w", err)
				}
				defer func() { err = errors.Join(err, f.Close()) }()
				cfg.Record = f
			}
			s, err := sink.New(cfg)
			if err != nil {
				return err
			}
			s.SetLatency(latency)
			if failRate > 0 {
				s.FailRate(failRate, sink.Fault{Status: failStatus})
			}
			if outageEvery > 0 {
				if outageFor <= 0 || outageFor >= outageEvery {
					return errors.New("--outage-for must be positive and shorter than --outage-every")
				}
				go outages(cmd.Context(), s, outageEvery, outageFor, cmd.ErrOrStderr())
			}
			ln, err := (&net.ListenConfig{}).Listen(cmd.Context(), "tcp", addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sink listening on http://%s%s/webhooks/partners/{partner_id}/events/order (UCP %s)\n", ln.Addr(), prefix, val.Version())
			srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-cmd.Context().Done()
				// The command's context is done; shutting down needs a fresh one.
				ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			st := s.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "received %d, accepted %d, invalid %d, stale %d, unauthorized %d, injected %d\n",
				st.Received, st.Accepted, st.Invalid, st.Stale, st.Unauthorized, st.Injected)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "listen address")
	f.StringVar(&version, "ucp-version", "2026-04-08", "UCP version of the schema bodies are checked against")
	f.StringVar(&record, "record", "", "append every request as a JSON line to this file")
	f.StringVar(&prefix, "path-prefix", "", "path prefix before /webhooks/..., e.g. /v1")
	f.StringVar(&keyEnv, "api-key-env", "", "environment variable holding the expected API key (default: any key accepted)")
	f.StringVar(&verifyKey, "verify-key", "", "verify signatures with these public keys (a JWK, a JWK set or a UCP signing_keys object): RFC 9421 for 2026-04-08, the detached JWS of Request-Signature for 2026-01-xx")
	f.DurationVar(&latency, "latency", 0, "delay every answer")
	f.Float64Var(&failRate, "fail-rate", 0, "fraction of requests answered with --fail-status")
	f.IntVar(&failStatus, "fail-status", http.StatusServiceUnavailable, "status of injected failures")
	f.DurationVar(&outageEvery, "outage-every", 0, "start an outage (every request answered 503) this often")
	f.DurationVar(&outageFor, "outage-for", 0, "how long each outage lasts")
	return cmd
}

// outages takes the sink down for length every period until ctx ends.
func outages(ctx context.Context, s *sink.Sink, period, length time.Duration, log io.Writer) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.StartOutage()
		fmt.Fprintf(log, "sink: outage for %s\n", length)
		select {
		case <-ctx.Done():
			return
		case <-time.After(length):
		}
		s.EndOutage()
		fmt.Fprintln(log, "sink: outage over")
	}
}
