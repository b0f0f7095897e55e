package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// wireFile loads and wires a configuration file as run does (the partners' secrets read).
func wireFile(t *testing.T, body string, environ ...string) (*settings, error) {
	t.Helper()
	a := &app{environ: environ}
	return a.loadConfig(writeConfig(t, body), nil, true)
}

// What needs the components or the files a configuration names is refused when it is
// wired, naming the key: the partner URL, the UCP version, a CA without certificates, an
// attempt timeout the session timeout cannot cover (default or not), a secret that
// cannot be read.
func TestWiringNamesTheKey(t *testing.T) {
	t.Parallel()
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const kafka = "kafka: {brokers: [k:9092], input_topic: orders}\n"
	const partner = "partners: {p: {base_url: \"https://x\"}}\n"
	for want, body := range map[string]string{
		"partners.p.base_url":      kafka + `partners: {p: {base_url: "ftp://x"}}`,
		"partners.p.ca_file":       kafka + `partners: {p: {base_url: "https://x", ca_file: "` + notPEM + `"}}`,
		"partners.p.signing":       kafka + `partners: {p: {base_url: "https://x", signing: {key_file: /nonexistent.pem, key_id: k}}}`,
		"partners.p.api_key_file":  kafka + `partners: {p: {base_url: "https://x", api_key_env: NOT_SET}}`,
		"delivery.attempt_timeout": kafka + partner + "delivery: {attempt_timeout: 16s}",
		"kafka.sasl":               partner + "kafka: {brokers: [k:9092], input_topic: orders, sasl: {mechanism: PLAIN, username: u, password_env: MISSING}}",
		"kafka.tls.ca_file":        partner + "kafka: {brokers: [k:9092], input_topic: orders, tls: {ca_file: " + notPEM + "}}",
	} {
		if _, err := wireFile(t, body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", body, err, want)
		}
	}
	// 10s (the sender's default attempt timeout) against a 20s session: refused too.
	if _, err := wireFile(t, "kafka: {brokers: [k:9092], input_topic: orders, session_timeout: 20s}\npartners: {p: {base_url: \"https://x\"}}\n"); err == nil ||
		!strings.Contains(err.Error(), "delivery.attempt_timeout") {
		t.Errorf("default attempt timeout over a third of the session: %v", err)
	}
}

// Secrets come from the file or environment variable the configuration names, never the
// file itself, and are redacted from dead letters; SASL options reach the Kafka client.
func TestWiringSecretsAndKafkaOptions(t *testing.T) {
	t.Parallel()
	s, err := wireFile(t, `
kafka: {brokers: [k:9092], input_topic: orders, sasl: {mechanism: scram-sha-256, username: u, password_env: KP}}
partners: {google: {base_url: "https://x", api_key_env: GOOGLE_KEY}}
`, "GOOGLE_KEY=s3cr3t", "KP=pw")
	if err != nil {
		t.Fatal(err)
	}
	key := s.partners["google"].Endpoint.APIKey
	if key.Reveal() != "s3cr3t" || key.String() == "s3cr3t" {
		t.Errorf("api key %v", key)
	}
	if n := len(s.kafka); n != 3 {
		t.Errorf("%d Kafka options, want seeds, client id and SASL", n)
	}
	rc := s.relayConfig(nil)
	if strings.Join(rc.Secrets, ",") != "pw,s3cr3t" {
		t.Errorf("secrets redacted from dead letters: %q", rc.Secrets)
	}
	// A command that does not deliver (state migrate, dlq replay ...) reads no partner
	// secret: an API key variable that is not set is no error there.
	a := &app{environ: []string{"KP=pw"}}
	s, err = a.loadConfig(writeConfig(t, "kafka: {brokers: [k:9092], input_topic: orders, sasl: {mechanism: PLAIN, username: u, password_env: KP}}\npartners: {google: {base_url: \"https://x\", api_key_env: GOOGLE_KEY, signing: {key_file: /nonexistent.pem, key_id: k}}}\n"), nil, false)
	if err != nil {
		t.Fatalf("without partner secrets: %v", err)
	}
	if ep := s.partners["google"].Endpoint; !ep.APIKey.IsZero() || ep.Signer != nil || len(s.kafka) != 3 {
		t.Errorf("without partner secrets: key set %v, signer %v, %d Kafka options", !ep.APIKey.IsZero(), ep.Signer, len(s.kafka))
	}
	// SASL PLAIN without TLS sends the password in clear: a warning, which config check
	// shows; with TLS, or with SCRAM, none.
	if len(s.warnings) != 1 || !strings.Contains(s.warnings[0], "PLAIN without kafka.tls") {
		t.Errorf("PLAIN without TLS: warnings %q", s.warnings)
	}
	s, err = a.loadConfig(writeConfig(t, "kafka: {brokers: [k:9092], input_topic: orders, sasl: {mechanism: SCRAM-SHA-512, username: u, password_env: KP}}\npartners: {google: {base_url: \"https://x\"}}\n"), nil, false)
	if err != nil || len(s.warnings) != 0 {
		t.Errorf("SCRAM: %v, warnings %q", err, s.warnings)
	}
	out, err := run(t, []string{"KP=pw"}, "config", "check", writeConfig(t, "kafka: {brokers: [k:9092], input_topic: orders, sasl: {mechanism: PLAIN, username: u, password_env: KP}}\npartners: {google: {base_url: \"https://x\"}}\n"))
	if err != nil || !strings.Contains(out, "# warning: kafka.sasl.mechanism PLAIN without kafka.tls") {
		t.Errorf("config check of PLAIN without TLS: %v\n%s", err, out)
	}
}

// signing.alg picks the signer: EdDSA loads an Ed25519 key into the RFC 9421 signer; an
// Ed25519 key under the default ES256 (or a P-256 one under EdDSA) is refused, naming
// the partner's key_file.
func TestWiringSigningAlg(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ed, es := filepath.Join(dir, "ed.pem"), filepath.Join(dir, "es.pem")
	for _, k := range [][]string{{"EdDSA", ed}, {"ES256", es}} {
		if out, err := run(t, nil, "keys", "generate", "--alg", k[0], "--out", k[1], "--kid", "k"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	cfg := func(file, alg string) string {
		return fmt.Sprintf("kafka: {brokers: [k:9092], input_topic: orders}\npartners: {google: {base_url: \"https://x\", signing: {key_file: %s, key_id: k, alg: %q}}}\n", file, alg)
	}
	s, err := wireFile(t, cfg(ed, "EdDSA"))
	if err != nil {
		t.Fatal(err)
	}
	if sg, ok := s.partners["google"].Endpoint.Signer.(*webhook.SwitchSigner).Current().(*webhook.RFC9421Signer); !ok || sg.EdKey == nil || sg.Key != nil {
		t.Fatalf("signer %#v", s.partners["google"].Endpoint.Signer)
	}
	for _, c := range [][]string{{ed, ""}, {es, "EdDSA"}} {
		if _, err := wireFile(t, cfg(c[0], c[1])); err == nil || !strings.Contains(err.Error(), "google.signing.key_file") {
			t.Errorf("key %s under alg %q: %v", filepath.Base(c[0]), c[1], err)
		}
	}
}

// A partner behind a private CA: with partners.<id>.ca_file the relay trusts that CA for
// that partner; without it the system roots refuse the certificate, a retryable
// transport error.
func TestPartnerCAFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := wireFile(t, `
kafka: {brokers: [k:9092], input_topic: orders}
partners:
  private: {base_url: "`+srv.URL+`", ca_file: "`+ca+`"}
  public: {base_url: "`+srv.URL+`"}
`)
	if err != nil {
		t.Fatal(err)
	}
	for id, wantOK := range map[string]bool{"private": true, "public": false} {
		ep := s.partners[id].Endpoint
		_, err = s.snd.Send(context.Background(), &ep, webhook.Request{Body: []byte("{}")})
		if gotOK := err == nil; gotOK != wantOK {
			t.Errorf("partner %s: send error %v, want success %v", id, err, wantOK)
		}
		if err != nil && (webhook.Classify(err) != webhook.Retryable || !strings.Contains(err.Error(), "certificate")) {
			t.Errorf("partner %s: %v classified %v", id, err, webhook.Classify(err))
		}
	}
}

// The annotated example in docs/ is a valid configuration (with its secret files in
// place), and `config check` shows every key with the value that will run, the
// components' defaults included, and how every secret resolves without its value.
func TestExampleConfigAndConfigCheck(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Point the example's files at real ones: a CA, the secrets, and a signing key that
	// `ucprelay keys generate` writes.
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	files := map[string][]byte{
		"/etc/ucprelay/kafka/ca.pem":               pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		"/var/run/secrets/ucprelay/kafka-password": []byte("kafka-s3cret\n"),
		"/var/run/secrets/ucprelay/google-api-key": []byte("google-k3y-value\n"),
	}
	text := strings.ReplaceAll(string(example), "/var/run/secrets/ucprelay/signing.pem", filepath.Join(dir, "signing.pem"))
	if out, err := run(t, nil, "keys", "generate", "--out", filepath.Join(dir, "signing.pem"), "--kid", "shop-2026-11"); err != nil {
		t.Fatalf("keys generate: %v\n%s", err, out)
	}
	for path, content := range files {
		local := filepath.Join(dir, filepath.Base(path))
		if err := os.WriteFile(local, content, 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, path, local)
	}
	s, err := wireFile(t, text)
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	if s.Kafka.SASL.Mechanism != "SCRAM-SHA-512" || s.Delivery.Breaker.Hold != 10*time.Minute || s.Telemetry.Listen != ":8080" {
		t.Errorf("example parsed as %+v", s.Config)
	}
	out, err := run(t, nil, "config", "check", writeConfig(t, text))
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	for _, want := range []string{"input_topic: orders.events", "partners.google api key: [REDACTED] (16 bytes", "signing key: [REDACTED]",
		"kafka.sasl SCRAM-SHA-512 password: [REDACTED]", "kafka.tls: on"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"kafka-s3cret", "google-k3y-value", "PRIVATE KEY"} {
		if strings.Contains(out, secret) {
			t.Errorf("config check prints a secret (%s)", secret)
		}
	}
}

// config check shows the components' defaults for the keys a file leaves unset, as the
// components state them.
func TestConfigCheckShowsComponentDefaults(t *testing.T) {
	t.Parallel()
	out, err := run(t, nil, "config", "check", writeConfig(t, "kafka: {brokers: [k:9092], input_topic: orders}\npartners: {google: {base_url: \"https://x\"}}\n"))
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	var rc relay.Config // the relay's own defaults
	rc.SetDefaults()
	b := webhook.DefaultBackoff()
	for _, want := range []string{
		"max_attempts: " + strconv.Itoa(rc.MaxAttempts), "max_pending: " + strconv.Itoa(rc.MaxPending), "session_timeout: " + rc.SessionTimeout.String(),
		"hold: " + rc.Breaker.Hold.String(), "open_for: " + rc.Breaker.OpenFor.String(), "max_retry_time: " + rc.MaxRetryTime.String(),
		"attempt_timeout: " + webhook.DefaultAttemptTimeout.String(), "backoff_initial: " + b.Initial.String(), "backoff_max: " + b.Max.String(),
		"partitioner: murmur2", `ucp_version: "2026-04-08"`, "api_key_header: X-Goog-Api-Key", "timestamp_format: unix",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config check lacks %q:\n%s", want, out)
		}
	}
}

// The mapping's topics become the relay's inputs: kafka.input_topic and the other topics
// keyed by order id read directly, the topics with rekey: true re-keyed through
// kafka.repartition_topic; the input topic cannot be re-keyed, and a re-keyed topic cannot
// be ucprelay's own.
func TestWiringInputsOfTheMapping(t *testing.T) {
	t.Parallel()
	rules := ` rules: [{name: r, kind: OrderCanceled, event: {event_id: "value.id", order_id: "value.id", occurred_at: "timestamp", payload: "{}"}}]`
	const head = "kafka: {brokers: [k:9092], input_topic: orders}\npartners: {p: {base_url: \"https://x\"}}\nmapping:\n"
	s, err := wireFile(t, head+"  - {topic: orders,"+rules+"}\n  - {topic: lines,"+rules+"}\n  - {topic: shipments, rekey: true,"+rules+"}\n")
	if err != nil {
		t.Fatal(err)
	}
	rc := s.relayConfig(nil)
	if strings.Join(rc.CoTopics, ",") != "lines" || strings.Join(rc.RekeyTopics, ",") != "shipments" || rc.RepartitionTopic != "ucprelay.repartition" {
		t.Errorf("inputs %v, re-keyed %v through %q", rc.CoTopics, rc.RekeyTopics, rc.RepartitionTopic)
	}
	if l := layout(s); strings.Join(l.Input, ",") != "orders,lines" || l.Repartition != "ucprelay.repartition" || strings.Join(l.Rekeyed, ",") != "shipments" {
		t.Errorf("layout %+v", l)
	}
	s, err = wireFile(t, head+"  - {topic: orders,"+rules+"}\n")
	if err != nil || s.relayConfig(nil).RepartitionTopic != "" || layout(s).Repartition != "" {
		t.Errorf("without a re-keyed topic no repartition topic is used: %v", err)
	}
	for want, body := range map[string]string{
		"kafka.input_topic is read directly": head + "  - {topic: orders, rekey: true," + rules + "}\n",
		"kafka.repartition_topic":            head + "  - {topic: ucprelay.repartition, rekey: true," + rules + "}\n",
		"state or dead-letter topic":         head + "  - {topic: ucprelay.state," + rules + "}\n",
	} {
		if _, err := wireFile(t, body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}
