package config_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

const file = `
kafka:
  brokers: [file-1:9092]
  group: from-file
  input_topic: orders
partners:
  google:
    base_url: https://shoppingdataintegration.googleapis.com/v1
    api_key_env: GOOGLE_KEY
delivery:
  max_attempts: 4
  attempt_timeout: 3s
`

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("kafka.group", "flag-default", "")
	fs.StringSlice("kafka.brokers", nil, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	t.Parallel()
	p := write(t, file)
	// File only; an unset flag's default does not override the file.
	c, err := config.Load(config.Sources{File: p, Flags: flags(t)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Group != "from-file" || c.Kafka.Brokers[0] != "file-1:9092" || c.Delivery.MaxAttempts != 4 || c.Delivery.AttemptTimeout != 3*time.Second {
		t.Fatalf("file: %+v", c)
	}
	if c.Kafka.DeadLetterTopic != "ucprelay.dlq" || c.Kafka.ClientID != "ucprelay" {
		t.Fatalf("defaults lost: %+v", c.Kafka)
	}
	// Env over file.
	env := []string{"UCPRELAY_KAFKA__GROUP=from-env", "UCPRELAY_KAFKA__BROKERS=e1:9092,e2:9092", "OTHER=x"}
	c, err = config.Load(config.Sources{File: p, Environ: env, Flags: flags(t)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Group != "from-env" || strings.Join(c.Kafka.Brokers, ",") != "e1:9092,e2:9092" {
		t.Fatalf("env: %+v", c.Kafka)
	}
	// Flags over env.
	c, err = config.Load(config.Sources{File: p, Environ: env, Flags: flags(t, "--kafka.group=from-flag", "--kafka.brokers=f1:9092")})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Group != "from-flag" || strings.Join(c.Kafka.Brokers, ",") != "f1:9092" {
		t.Fatalf("flags: %+v", c.Kafka)
	}
	// Secrets come from the environment variable the file names, never the file.
	key, err := c.APIKey("google", []string{"GOOGLE_KEY=s3cr3t"})
	if err != nil || key.Reveal() != "s3cr3t" || key.String() == "s3cr3t" {
		t.Fatalf("api key: %v %v", key, err)
	}
	if _, err := c.APIKey("google", nil); err == nil || !strings.Contains(err.Error(), "GOOGLE_KEY") {
		t.Fatalf("missing key env: %v", err)
	}
}

func TestValidationNamesKeyAndFix(t *testing.T) {
	t.Parallel()
	p := write(t, `
kafka:
  input_topic: ""
  session_timeout: 6s
  partitioner: random
  group_protocol: eager
partners:
  google:
    base_url: "ftp://x"
    ucp_version: "2025-01-01"
    timestamp_format: iso
    ca_file: /nonexistent-ca.pem
    signing:
      key_file: /k.pem
delivery:
  max_attempts: 0
  attempt_timeout: 5s
  max_retry_time: -1s
  breaker:
    failures_to_trip: 0
log:
  level: loud
`)
	_, err := config.Load(config.Sources{File: p})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"kafka.brokers", "kafka.input_topic", "partners.google.base_url", "partners.google.ucp_version", "delivery.max_attempts", "log.level",
		"delivery.attempt_timeout", "kafka.partitioner", "kafka.group_protocol",
		"partners.google.timestamp_format", "partners.google.signing", "partners.google.ca_file",
		"delivery.max_retry_time", "delivery.breaker"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if _, err := config.Load(config.Sources{File: "/nonexistent.yaml"}); err == nil {
		t.Error("missing file accepted")
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
	c, err := config.Load(config.Sources{File: write(t, `
kafka: {brokers: [k:9092], input_topic: orders}
partners:
  private: {base_url: "`+srv.URL+`", ca_file: "`+ca+`"}
  public: {base_url: "`+srv.URL+`"}
`)})
	if err != nil {
		t.Fatal(err)
	}
	snd, err := webhook.NewSender()
	if err != nil {
		t.Fatal(err)
	}
	for id, wantOK := range map[string]bool{"private": true, "public": false} {
		ep, err := c.Endpoint(id)
		if err != nil {
			t.Fatal(err)
		}
		if ep.Client, err = c.HTTPClient(id); err != nil {
			t.Fatal(err)
		}
		_, err = snd.Send(context.Background(), &ep, webhook.Request{Body: []byte("{}")})
		if gotOK := err == nil; gotOK != wantOK {
			t.Errorf("partner %s: send error %v, want success %v", id, err, wantOK)
		}
		if err != nil && (webhook.Classify(err) != webhook.Retryable || !strings.Contains(err.Error(), "certificate")) {
			t.Errorf("partner %s: %v classified %v", id, err, webhook.Classify(err))
		}
	}
	notPEM := write(t, "not a certificate")
	_, err = config.Load(config.Sources{File: write(t, `
kafka: {brokers: [k:9092], input_topic: orders}
partners: {p: {base_url: "https://x", ca_file: "`+notPEM+`"}}
`)})
	if err == nil || !strings.Contains(err.Error(), "partners.p.ca_file") {
		t.Errorf("a ca_file without certificates: %v", err)
	}
}

// The annotated example in docs/ is a valid configuration (with its secret files in
// place), and `config check` shows how every secret resolves without its value.
func TestExampleConfigAndEffective(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Point the example's files at real ones: a CA, the secrets and a signing key.
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	files := map[string][]byte{
		"/etc/ucprelay/kafka/ca.pem":               pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		"/var/run/secrets/ucprelay/kafka-password": []byte("kafka-s3cret\n"),
		"/var/run/secrets/ucprelay/google-api-key": []byte("google-k3y-value\n"),
		"/var/run/secrets/ucprelay/signing.pem":    testSigningPEM(t),
	}
	text := string(example)
	for path, content := range files {
		local := filepath.Join(dir, filepath.Base(path))
		if err := os.WriteFile(local, content, 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, path, local)
	}
	p := write(t, text)
	c, err := config.Load(config.Sources{File: p})
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	if c.Kafka.SASL.Mechanism != "SCRAM-SHA-512" || c.Delivery.Breaker.Hold != 10*time.Minute || c.Telemetry.Listen != ":8080" {
		t.Errorf("example parsed as %+v", c)
	}
	out, err := config.Effective(config.Sources{File: p})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"input_topic: orders.events", "partners.google api key: [REDACTED] (16 bytes", "signing key: [REDACTED]",
		"kafka.sasl SCRAM-SHA-512 password: [REDACTED]", "kafka.tls: on"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"kafka-s3cret", "google-k3y-value", "PRIVATE KEY"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("config check prints a secret (%s)", secret)
		}
	}
}

// SASL needs a username and a password source outside the file; TLS a whole key pair.
func TestKafkaSecurityValidation(t *testing.T) {
	t.Parallel()
	_, err := config.Load(config.Sources{File: write(t, `
kafka:
  brokers: [k:9092]
  input_topic: orders
  sasl: {mechanism: GSSAPI}
  tls: {cert_file: /c.pem}
partners: {p: {base_url: "https://x"}}
`)})
	for _, want := range []string{"kafka.sasl.mechanism", "kafka.tls"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	_, err = config.Load(config.Sources{File: write(t, `
kafka:
  brokers: [k:9092]
  input_topic: orders
  sasl: {mechanism: PLAIN, password_env: KP}
partners: {p: {base_url: "https://x"}}
`)})
	for _, want := range []string{"kafka.sasl.username"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	c, err := config.Load(config.Sources{Environ: []string{"KP=pw"}, File: write(t, `
kafka:
  brokers: [k:9092]
  input_topic: orders
  sasl: {mechanism: scram-sha-256, username: u, password_env: KP}
partners: {p: {base_url: "https://x"}}
`)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.KafkaOpts()); n != 3 {
		t.Errorf("%d Kafka options, want seeds, client id and SASL", n)
	}
	_, err = config.Load(config.Sources{File: write(t, `
kafka:
  brokers: [k:9092]
  input_topic: orders
  sasl: {mechanism: PLAIN, username: u, password_env: MISSING}
partners: {p: {base_url: "https://x"}}
`)})
	if err == nil || !strings.Contains(err.Error(), "MISSING is not set") {
		t.Errorf("a missing password variable: %v", err)
	}
}

func testSigningPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
