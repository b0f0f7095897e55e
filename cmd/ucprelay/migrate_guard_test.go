package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
)

// The state migrate guard with a relay running on each group protocol, on the real
// broker: while the relay is a member (classic, or KIP-848's consumer protocol, which the
// classic describe does not see) migrate refuses and names the protocol; after the relay
// stops it runs.
func TestStateMigrateRefusesWhileRelaysRunRealKafka(t *testing.T) {
	t.Parallel()
	seeds := kafkatest.Brokers(t)
	for _, protocol := range []string{"classic", "consumer"} {
		t.Run(protocol, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			tt := newTestTopics(t, seeds, 2)
			cfg := tt.config(t, seeds[0], "  group: "+tt.names.Group()+"\n  transactional_id: "+tt.names.TxnID()+"\n  group_protocol: "+protocol+"\n",
				nowhere, "telemetry:\n  listen: 127.0.0.1:0\n")
			if out, err := run(t, nil, "--config", cfg, "topics", "create", "--replication", "1"); err != nil {
				t.Fatalf("topics create: %v\n%s", err, out)
			}
			relay := startRun(ctx, t, cfg, nil)
			relay.waitReady(ctx, t)
			out, err := run(t, nil, "--config", cfg, "state", "migrate")
			if !errors.Is(err, ErrGroupActive) || !strings.Contains(err.Error(), protocol+" protocol") {
				t.Fatalf("migrate beside a running relay on the %s protocol: %v\n%s", protocol, err, out)
			}
			if err := relay.wait(); err != nil {
				t.Fatalf("run: %v\n%s", err, relay.logs.String())
			}
			// A stopped consumer-protocol member leaves at once; a classic one with the
			// LeaveGroup the client sends on close.
			for {
				out, err = run(t, nil, "--config", cfg, "state", "migrate")
				if err == nil {
					break
				}
				if !errors.Is(err, ErrGroupActive) || ctx.Err() != nil {
					t.Fatalf("migrate after the relay stopped: %v\n%s", err, out)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if !strings.Contains(out, "migrated") {
				t.Errorf("migrate output: %s", out)
			}
		})
	}
}
