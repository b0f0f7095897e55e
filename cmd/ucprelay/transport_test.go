package main

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

// Every command that talks to Kafka, over the real broker's SCRAM-SHA-512 (SASL) and
// mutual-TLS listeners: topics create and check, produce (Confluent framing through a
// registry that wants basic auth), run (the group and its transactions: snapshots
// delivered, a failed delivery and a poison record dead-lettered), dlq inspect and
// replay, and state migrate. The secrets come by every route: the SASL password from a
// variable named like configuration (UCPRELAY_KAFKA_PASSWORD), the partner's API key
// from a file, the registry's password as URL userinfo in a flag. None appears in any
// command's output or error, run's log, /metrics, or a dead letter.
func TestTransportsAndSecretsEndToEndRealKafka(t *testing.T) {
	t.Parallel()
	plain := kafkatest.Brokers(t)
	saslSeeds := kafkatest.SASLBrokers(t)
	tlsSeeds, tlsDir := kafkatest.TLSBrokers(t)
	for name, transport := range map[string]struct {
		seed, lines string
		env         []string
	}{
		"sasl": {saslSeeds[0], "  sasl:\n    mechanism: SCRAM-SHA-512\n    username: " + kafkatest.SASLUser + "\n    password_env: UCPRELAY_KAFKA_PASSWORD\n",
			[]string{"UCPRELAY_KAFKA_PASSWORD=" + kafkatest.SASLPassword}},
		"tls": {tlsSeeds[0], "  tls:\n    enabled: true\n    ca_file: " + filepath.Join(tlsDir, "ca.pem") + "\n    cert_file: " +
			filepath.Join(tlsDir, "client.pem") + "\n    key_file: " + filepath.Join(tlsDir, "client-key.pem") + "\n", nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			const apiKey, regPassword = "partner-api-k3y-e2e", "registry-passw0rd-e2e"
			secrets := []string{apiKey, regPassword, kafkatest.SASLPassword, base64.StdEncoding.EncodeToString([]byte("relay:" + regPassword))}
			noSecret := func(what, text string) {
				t.Helper()
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s shows the secret %q:\n%s", what, s, text)
					}
				}
			}
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "api-key")
			if err := os.WriteFile(keyFile, []byte(apiKey+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			reg := srfake.New(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("relay:"+regPassword))))
			defer reg.Close()
			registryFlag := "--schema_registry.url=" + strings.Replace(reg.URL(), "http://", "http://relay:"+regPassword+"@", 1)
			val, err := ucpschema.New("2026-04-08")
			if err != nil {
				t.Fatal(err)
			}
			snk, err := sink.New(sink.Config{Validator: val, APIKey: apiKey})
			if err != nil {
				t.Fatal(err)
			}
			snk.Script(sink.Fault{Status: http.StatusBadRequest}) // the first delivery fails for good
			srv := httptest.NewServer(snk)
			defer srv.Close()

			tt := newTestTopics(t, plain, 2)
			cfg := tt.config(t, transport.seed, "  group: "+tt.names.Group()+"\n  transactional_id: "+tt.names.TxnID()+"\n  session_timeout: 9s\n"+transport.lines,
				srv.URL, "    api_key_file: "+keyFile+"\ndelivery:\n  attempt_timeout: 3s\ntelemetry:\n  listen: 127.0.0.1:0\n")
			env := transport.env
			command := func(args ...string) string {
				t.Helper()
				out, err := run(t, env, append([]string{"--config", cfg}, args...)...)
				if err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
				}
				noSecret(strings.Join(args, " "), out)
				return out
			}
			command("topics", "create", "--replication", "1")
			if out := command("topics", "check"); !strings.Contains(out, tt.state) {
				t.Errorf("topics check names no state topic:\n%s", out)
			}
			relay := startRun(ctx, t, cfg, env, registryFlag)
			relay.waitReady(ctx, t)
			if out := command("produce", "--sample", "3", "--seed", "11", "--partner", "google", "--framing", "confluent", registryFlag); !strings.Contains(out, "produced") {
				t.Fatalf("produce: %s", out)
			}
			// A poison record: the Confluent framing of a schema id the registry does not have.
			prod, err := kgo.NewClient(kgo.SeedBrokers(plain...), kgo.DefaultProduceTopic(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte("ord_poison"), Value: []byte{0, 0, 0, 3, 0xe7, 2, 4}}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			// Three orders: one dead-lettered on its 400, two delivered (their later
			// snapshots included); the poison dead-lettered.
			dlq := readTopic(ctx, t, plain, tt.dlq, 2)
			for snk.Orders() < 2 {
				if ctx.Err() != nil {
					t.Fatalf("%d orders delivered\n%s", snk.Orders(), relay.logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			reasons := ""
			for _, r := range dlq {
				text := string(r.Value)
				for _, h := range r.Headers {
					text += "\n" + h.Key + ": " + string(h.Value)
					if h.Key == "ucprelay.reason" {
						reasons += string(h.Value) + " "
					}
				}
				noSecret("a dead letter", text)
			}
			if !strings.Contains(reasons, "unknown_schema_id") || !strings.Contains(reasons, "http_rejected") {
				t.Errorf("dead-letter reasons %q", reasons)
			}
			_, metrics := get(t, relay.base+"/metrics")
			noSecret("/metrics", metrics)
			if !strings.Contains(metrics, "ucprelay_deliveries_total") {
				t.Errorf("/metrics without deliveries:\n%s", metrics)
			}
			if err := relay.wait(); err != nil {
				t.Fatalf("run: %v\n%s", err, relay.logs.String())
			}
			noSecret("run's log", relay.logs.String())
			if out := command("dlq", "inspect", registryFlag); !strings.Contains(out, "unknown_schema_id") {
				t.Errorf("dlq inspect:\n%s", out)
			}
			if out := command("dlq", "replay", "--reason", "unknown_schema_id", registryFlag); !strings.Contains(out, "replayed 1") {
				t.Errorf("dlq replay:\n%s", out)
			}
			for {
				out, err := run(t, env, "--config", cfg, "state", "migrate")
				noSecret("state migrate", out)
				if err == nil {
					if !strings.Contains(out, "migrated") {
						t.Errorf("state migrate:\n%s", out)
					}
					break
				}
				if !errors.Is(err, ErrGroupActive) || ctx.Err() != nil {
					t.Fatalf("state migrate: %v\n%s", err, out)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// readTopic reads topic from its start until it has n records.
func readTopic(ctx context.Context, t *testing.T, seeds []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records on %s", len(out), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}
