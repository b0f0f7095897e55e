package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url) //nolint:gosec,noctx // the test's own loopback server
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// `ucprelay run` on the real broker: /healthz answers at once, /readyz turns ready with
// the partitions it owns and the breaker states, /metrics exposes the relay's metrics in
// Prometheus format after events flowed (a poison event included), and cancelling the
// context (what SIGTERM does) ends run without error.
func TestRunServesHealthAndMetrics(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 2)
	n, input := tt.names, tt.input
	val, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	snk, err := sink.New(sink.Config{Validator: val})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(snk)
	defer srv.Close()
	cfg := tt.config(t, seeds[0], "  group: "+n.Group()+"\n  transactional_id: "+n.TxnID()+"\n  session_timeout: 9s\n",
		srv.URL, "delivery:\n  attempt_timeout: 3s\ntelemetry:\n  listen: 127.0.0.1:0\n")
	if out, err := run(t, nil, "--config", cfg, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}

	addr := make(chan net.Addr, 1)
	var out syncBuffer
	a := &app{stdout: &out, stderr: &out, onListen: func(x net.Addr) { addr <- x }}
	root := newRootCmdFor(a)
	root.SetArgs([]string{"--config", cfg, "run"})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(runCtx) }()
	var base string
	select {
	case x := <-addr:
		base = "http://" + x.String()
	case err := <-done:
		t.Fatalf("run ended: %v\n%s", err, out.String())
	case <-ctx.Done():
		t.Fatal("run never listened")
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	var health struct {
		Ready      bool              `json:"ready"`
		Partitions []int32           `json:"partitions"`
		Breakers   map[string]string `json:"breakers"`
		Problem    string            `json:"problem"`
	}
	for {
		code, text := get(t, base+"/readyz")
		if err := json.Unmarshal([]byte(text), &health); err != nil {
			t.Fatalf("/readyz %d: %v: %s", code, err, text)
		}
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || health.Ready || health.Problem == "" {
			t.Fatalf("/readyz %d: %s", code, text)
		}
		if ctx.Err() != nil {
			t.Fatalf("never ready: %s\n%s", text, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !health.Ready || len(health.Partitions) != 2 || health.Breakers["google"] != "closed" {
		t.Fatalf("ready health %+v", health)
	}
	// Every owned partition has a lag before any record arrives (seeded at assignment:
	// fetches carry the high watermark only with records).
	for p := range 2 {
		lag := regexp.MustCompile(`ucprelay_consumer_lag\{[^}]*partition="` + strconv.Itoa(p) + `"[^}]*\} 0`)
		for {
			_, metrics := get(t, base+"/metrics")
			if lag.MatchString(metrics) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("/metrics has no lag of partition %d:\n%s\n%s", p, metrics, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	codec, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(input))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var recs []*kgo.Record
	for i, id := range []string{"ord_1", "ord_2", "ord_3"} {
		v, err := codec.EncodeSingleObject(gen.Placed(id, "google", uint64(i), time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: v})
	}
	recs = append(recs, &kgo.Record{Key: []byte("poison"), Value: []byte("not avro")})
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Accepted == 3 }); err != nil {
		t.Fatal(err)
	}
	want := []string{"ucprelay_events_consumed_total", "ucprelay_deliveries_total{", `partner="google"`,
		`ucprelay_delivery_attempts_total{class="2xx"`, "ucprelay_delivery_latency_seconds_bucket", "ucprelay_breaker_state{",
		"ucprelay_delivery_pending", "ucprelay_consumer_lag{", "ucprelay_orphans_held{", "ucprelay_orphans_oldest_age_seconds{", "ucprelay_restore_partitions", `ucprelay_deadletter_records_total{`,
		`stage="decode"`, "go_goroutines", `service_name="ucprelay"`}
	var metrics string
	for {
		_, metrics = get(t, base+"/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(metrics, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("/metrics lacks %s:\n%s\nthe relay's log:\n%s", missing, metrics, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run after its context ended: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Errorf("no clean stop in the log:\n%s", out.String())
	}
	// The state topic's settings are read and logged at start.
	if !regexp.MustCompile(`"msg":"topic settings","topic":"` + regexp.QuoteMeta(tt.state) + `".*"cleanup.policy":"compact","delete.retention.ms":"\d+","max.message.bytes":\d+`).MatchString(out.String()) {
		t.Errorf("no settings of the state topic in the log:\n%s", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running command.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
