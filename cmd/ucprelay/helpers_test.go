package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
)

// testTopics is one test's layout on the real broker: the input topic, created, and the
// names of the state and dead-letter topics, deleted after the test.
type testTopics struct {
	names             kafkatest.Names
	adm               *kadm.Client
	input, state, dlq string
}

func newTestTopics(t *testing.T, seeds []string, partitions int32) testTopics {
	t.Helper()
	n := kafkatest.NewNames(t)
	tt := testTopics{names: n, adm: kafkatest.Admin(t, seeds), input: n.Topic("orders")}
	kafkatest.CreateTopic(t, tt.adm, tt.input, partitions, nil)
	return tt.variant(t, "")
}

// variant returns the layout with state and dead-letter topics of their own, tagged.
func (tt testTopics) variant(t *testing.T, tag string) testTopics {
	t.Helper()
	tt.state, tt.dlq = tt.names.Topic("state"+tag), tt.names.Topic("dlq"+tag)
	state, dlq, adm := tt.state, tt.dlq, tt.adm
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), state, dlq) })
	return tt
}

// config writes a configuration for the layout reaching the brokers at broker: kafka
// holds extra lines under kafka: (indented), partnerURL is the google partner's base
// URL, rest follows the partners.
func (tt testTopics) config(t *testing.T, broker, kafka, partnerURL, rest string) string {
	t.Helper()
	return writeConfig(t, "kafka:\n  brokers: ["+broker+"]\n  input_topic: "+tt.input+"\n  state_topic: "+tt.state+"\n  dead_letter_topic: "+tt.dlq+"\n"+
		kafka+"partners:\n  google:\n    base_url: "+partnerURL+"\n    allow_insecure_http: "+strconv.FormatBool(strings.HasPrefix(partnerURL, "http://"))+"\n"+rest)
}

// writeConfig writes a configuration file and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// nowhere is a partner URL nothing answers on: for commands that never deliver.
const nowhere = "http://127.0.0.1:9"

// runningCmd is `ucprelay run` started in-process by startRun.
type runningCmd struct {
	// base is the telemetry server's http://host:port.
	base string
	logs *syncBuffer
	stop context.CancelFunc
	done chan error
}

// startRun starts `ucprelay --config cfg run [flags]` with the environment variables
// environ (cfg listens for telemetry on 127.0.0.1:0) and returns once its telemetry
// server listens.
func startRun(ctx context.Context, t *testing.T, cfg string, environ []string, flags ...string) *runningCmd {
	t.Helper()
	addr := make(chan net.Addr, 1)
	rc := &runningCmd{logs: &syncBuffer{}, done: make(chan error, 1)}
	a := &app{stdout: rc.logs, stderr: rc.logs, environ: environ, onListen: func(x net.Addr) { addr <- x }}
	root := newRootCmdFor(a)
	root.SetArgs(append([]string{"--config", cfg, "run"}, flags...))
	runCtx, stop := context.WithCancel(ctx)
	rc.stop = stop
	go func() { rc.done <- root.ExecuteContext(runCtx) }()
	select {
	case x := <-addr:
		rc.base = "http://" + x.String()
	case err := <-rc.done:
		stop()
		t.Fatalf("run ended: %v\n%s", err, rc.logs.String())
	case <-ctx.Done():
		stop()
		t.Fatalf("run never listened:\n%s", rc.logs.String())
	}
	t.Cleanup(stop)
	return rc
}

// waitReady waits until /readyz answers 200.
func (rc *runningCmd) waitReady(ctx context.Context, t *testing.T) {
	t.Helper()
	for {
		if code, _ := get(t, rc.base+"/readyz"); code == http.StatusOK {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("never ready:\n%s", rc.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait stops the command and returns its error.
func (rc *runningCmd) wait() error {
	rc.stop()
	return <-rc.done
}

// placer produces the placements of new google orders (prefix + a count) to a topic,
// one ProduceSync per call, for the tests that run `ucprelay run`. Safe for concurrent
// use.
type placer struct {
	ctx    context.Context
	t      *testing.T
	prefix string
	prod   *kgo.Client
	codec  *avrocodec.Codec
	mu     sync.Mutex
	n      int
}

func newPlacer(ctx context.Context, t *testing.T, seeds []string, topic, prefix string) *placer {
	t.Helper()
	codec, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &placer{ctx: ctx, t: t, prefix: prefix, prod: prod, codec: codec}
}

// produce writes k new placements.
func (p *placer) produce(k int) {
	p.t.Helper()
	p.mu.Lock()
	recs := make([]*kgo.Record, 0, k)
	for range k {
		id := fmt.Sprintf("%s%d", p.prefix, p.n)
		v, err := p.codec.EncodeSingleObject(gen.Placed(id, "google", uint64(p.n), time.Now()))
		if err != nil {
			p.mu.Unlock()
			p.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: v})
		p.n++
	}
	p.mu.Unlock()
	if err := p.prod.ProduceSync(p.ctx, recs...).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// count is how many placements were produced.
func (p *placer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
