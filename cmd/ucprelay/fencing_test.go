package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

// The fence count: the limit within the window is a collision; older fences fall out.
func TestFencesWithinTheWindow(t *testing.T) {
	t.Parallel()
	var f fences
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	if f.add(t0) || f.add(t0.Add(fenceWindow-time.Second)) {
		t.Fatal("a collision before the limit")
	}
	if !f.add(t0.Add(fenceWindow - time.Millisecond)) {
		t.Fatal("the limit within the window is no collision")
	}
	var g fences
	g.add(t0)
	g.add(t0.Add(time.Minute))
	if g.add(t0.Add(fenceWindow)) {
		t.Fatal("a fence older than the window counted")
	}
}

// The default transactional id survives a restart of the replica: it comes from
// kafka.instance_id when set, else the host name; kafka.transactional_id wins.
func TestTransactionalIDIsStablePerReplica(t *testing.T) {
	t.Parallel()
	const base = "kafka: {brokers: [k:9092], input_topic: orders%s}\npartners: {p: {base_url: \"https://x\"}}\n"
	for extra, want := range map[string]string{
		", instance_id: ucprelay-2":                         "ucprelay-ucprelay-2",
		", instance_id: pod-1, transactional_id_prefix: t-": "t-pod-1",
		", instance_id: pod-1, transactional_id: mine":      "mine",
	} {
		s, err := wireFile(t, fmt.Sprintf(base, extra))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.transactionalID(); got != want {
			t.Errorf("%s: transactional id %q, want %q", extra, got, want)
		}
	}
	s, err := wireFile(t, fmt.Sprintf(base, ""))
	if err != nil {
		t.Fatal(err)
	}
	if id, from := s.transactionalIDFrom(); !strings.HasPrefix(id, "ucprelay-") || from != "kafka.transactional_id_prefix + host name" {
		t.Errorf("default transactional id %q from %s", id, from)
	}
	if again, _ := s.transactionalIDFrom(); again != s.transactionalID() {
		t.Errorf("the default changed between calls: %q, %q", again, s.transactionalID())
	}
}

// Two live processes given one transactional id, on the real broker: each start fences
// the other, a fenced relay starts again, and the third fence within the window is a
// collision: that process stops relaying and names the cause on /readyz and in its log,
// while the other delivers every order alone.
func TestTransactionalIDCollisionReportedRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 2)
	val, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	snk, err := sink.New(sink.Config{Validator: val, KeepHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(snk)
	defer srv.Close()
	cfg := tt.config(t, seeds[0], "  group: "+tt.names.Group()+"\n  transactional_id: "+tt.names.TxnID()+"\n  session_timeout: 9s\n",
		srv.URL, "delivery:\n  attempt_timeout: 3s\ntelemetry:\n  listen: 127.0.0.1:0\n")
	if out, err := run(t, nil, "--config", cfg, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	placements := newPlacer(ctx, t, seeds, tt.input, "ord_")
	produce := placements.produce

	a := startRun(ctx, t, cfg, nil)
	a.waitReady(ctx, t)
	produce(5)
	b := startRun(ctx, t, cfg, nil)
	// Fences happen when a producer writes: traffic until one of them gives up.
	var collided, survivor *runningCmd
	for collided == nil {
		produce(1)
		for _, rc := range []*runningCmd{a, b} {
			select {
			case err := <-rc.done:
				t.Fatalf("a run ended: %v\nA:\n%s\nB:\n%s", err, a.logs.String(), b.logs.String())
			default:
			}
			if _, body := get(t, rc.base+"/readyz"); strings.Contains(body, "transactional id collision") {
				collided = rc
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no collision reported:\nA:\n%s\nB:\n%s", a.logs.String(), b.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	survivor = a
	if collided == a {
		survivor = b
	}
	_, body := get(t, collided.base+"/readyz")
	if !strings.Contains(body, "fenced 3 times within 10m0s") || !strings.Contains(body, tt.names.TxnID()) ||
		!strings.Contains(body, "give each replica its own kafka.instance_id or kafka.transactional_id") {
		t.Errorf("the collision's /readyz names no cause: %s", body)
	}
	if !strings.Contains(collided.logs.String(), "transactional id collision: relaying stopped") {
		t.Errorf("no collision in the log:\n%s", collided.logs.String())
	}
	// The survivor relays every order, the ones produced during the fencing included.
	produce(5)
	survivor.waitReady(ctx, t)
	for snk.Orders() < placements.count() {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d orders delivered\nsurvivor:\n%s", snk.Orders(), placements.count(), survivor.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := collided.wait(); !errors.Is(err, ErrTransactionalIDCollision) {
		t.Errorf("the collided run ended with %v", err)
	}
	if err := survivor.wait(); err != nil {
		t.Errorf("the survivor ended with %v\n%s", err, survivor.logs.String())
	}
	if s := snk.Stats(); s.Invalid != 0 || s.Stale != 0 {
		t.Errorf("sink stats %+v", s)
	}
}
