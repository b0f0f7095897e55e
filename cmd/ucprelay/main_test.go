package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut, env)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String() + errOut.String(), err
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	out, err := run(t, nil, "version")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("version: %q %v", out, err)
	}
	for _, sub := range []string{"run", "sink", "demo", "topics", "version"} {
		out, err := run(t, nil, "--help")
		if err != nil || !strings.Contains(out, sub) {
			t.Fatalf("help lacks %s: %v\n%s", sub, err, out)
		}
	}
	// Every command that does something has --help with examples.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.Name() != "version" && c.Name() != "help" && c.Name() != "completion" && c.Example == "" {
			t.Errorf("%q has no examples in --help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(io.Discard, io.Discard, nil))
	out, err = run(t, nil, "dlq", "replay", "--help")
	if err != nil || !strings.Contains(out, "Examples:") {
		t.Fatalf("dlq replay --help has no examples: %v\n%s", err, out)
	}
}

func TestRunRejectsBadConfigNamingTheKey(t *testing.T) {
	t.Parallel()
	_, err := run(t, []string{"UCPRELAY_KAFKA__BROKERS=127.0.0.1:1"}, "run")
	if err == nil {
		t.Fatal("run without input topics or partners started")
	}
	for _, key := range []string{"kafka.input_topic", "partners"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

// topics create makes the dead-letter topic on the real broker, topics check shows the
// layout and its settings, and run then refuses a layout whose input topic is missing.
func TestTopicsCreateAndRunChecksLayout(t *testing.T) {
	t.Parallel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 2)
	n, state, dlq := tt.names, tt.state, tt.dlq
	cfg := tt.config(t, seeds[0], "", nowhere, "")
	out, err := run(t, nil, "--config", cfg, "topics", "create", "--replication", "1")
	if err != nil || !strings.Contains(out, "created  "+dlq+" (2 partitions)") || !strings.Contains(out, "created  "+state+" (2 partitions)") {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	out, err = run(t, nil, "--config", cfg, "topics", "create", "--replication", "1")
	if err != nil || !strings.Contains(out, "exists") {
		t.Fatalf("topics create again: %v\n%s", err, out)
	}
	// topics check: the layout is one run accepts; the state topic's settings are shown.
	out, err = run(t, nil, "--config", cfg, "topics", "check")
	if err != nil || !strings.Contains(out, "layout ok") || !strings.Contains(out, state+": 2 partitions, replication 1") ||
		!strings.Contains(out, "cleanup.policy=compact\n") || !strings.Contains(out, "max.message.bytes=") || !strings.Contains(out, "delete.retention.ms=") {
		t.Fatalf("topics check: %v\n%s", err, out)
	}
	out, err = run(t, []string{"UCPRELAY_KAFKA__STATE_TOPIC=" + n.Topic("missing-state")}, "--config", cfg, "topics", "check")
	if err == nil || !strings.Contains(err.Error(), "missing-state") {
		t.Fatalf("topics check of a missing state topic: %v\n%s", err, out)
	}
	_, err = run(t, []string{"UCPRELAY_KAFKA__INPUT_TOPIC=" + n.Topic("missing")}, "--config", cfg, "run")
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("run on a missing input topic: %v", err)
	}
}

// keys generate writes a PEM the signer loads, and prints the matching public JWK; it
// never overwrites a key.
func TestKeysGenerate(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "sign.pem")
	printed, err := run(t, nil, "keys", "generate", "--out", out, "--kid", "shop-2026-11")
	if err != nil {
		t.Fatalf("%v\n%s", err, printed)
	}
	var jwk struct{ Kty, Crv, X, Y, Kid, Alg string }
	if err := json.Unmarshal([]byte(printed), &jwk); err != nil {
		t.Fatalf("%v\n%s", err, printed)
	}
	pemBytes, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	key, err := webhook.ParseES256PEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := base64.RawURLEncoding.DecodeString(jwk.X)
	y, _ := base64.RawURLEncoding.DecodeString(jwk.Y)
	point, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if jwk.Kty != "EC" || jwk.Crv != "P-256" || jwk.Alg != "ES256" || jwk.Kid != "shop-2026-11" ||
		!bytes.Equal(append(append([]byte{4}, x...), y...), point) {
		t.Fatalf("JWK does not match the key: %s", printed)
	}
	// The printed JWK, as the partner (or `ucprelay sink --verify-key`) reads it, verifies
	// what the key signs; inside a signing_keys object too.
	for _, doc := range []string{printed, `{"signing_keys":[` + printed + `]}`} {
		keys, err := sink.ParsePublicKeys([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"id":"ord_1"}`)
		r := httptest.NewRequest(http.MethodPost, "https://partner.example/webhooks/partners/p/events/order", bytes.NewReader(body))
		r.Header.Set("Webhook-Id", "ord_1")
		r.Header.Set("Webhook-Timestamp", "1789480992")
		if err := (&webhook.RFC9421Signer{KeyID: "shop-2026-11", Key: key}).Sign(r, body); err != nil {
			t.Fatal(err)
		}
		if err := (&sink.RFC9421Verifier{Keys: keys.EC}).Verify(r, body); err != nil {
			t.Fatalf("the published key does not verify: %v", err)
		}
	}
	if _, err := run(t, nil, "keys", "generate", "--out", out, "--kid", "again"); err == nil {
		t.Fatal("an existing key was overwritten")
	}
}

// keys generate --alg EdDSA writes an Ed25519 PEM the signer loads and prints its OKP
// JWK, which the sink reads and verifies the key's RFC 9421 signatures with.
func TestKeysGenerateEdDSA(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "sign-ed.pem")
	printed, err := run(t, nil, "keys", "generate", "--alg", "EdDSA", "--out", out, "--kid", "shop-ed")
	if err != nil {
		t.Fatalf("%v\n%s", err, printed)
	}
	var jwk struct{ Kty, Crv, X, Y, Kid, Alg string }
	if err := json.Unmarshal([]byte(printed), &jwk); err != nil || jwk.Kty != "OKP" || jwk.Crv != "Ed25519" || jwk.Alg != "EdDSA" || jwk.Y != "" || jwk.Kid != "shop-ed" {
		t.Fatalf("JWK %+v (%v)\n%s", jwk, err, printed)
	}
	pemBytes, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	key, err := webhook.ParseEd25519Key(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := webhook.ParseES256Key(pemBytes); err == nil {
		t.Fatal("an Ed25519 key read as ES256")
	}
	keys, err := sink.ParsePublicKeys([]byte(`{"keys":[` + printed + `]}`))
	if err != nil || len(keys.Ed) != 1 {
		t.Fatalf("keys %+v: %v", keys, err)
	}
	body := []byte(`{"id":"ord_1"}`)
	r := httptest.NewRequest(http.MethodPost, "https://partner.example/webhooks/partners/p/events/order", bytes.NewReader(body))
	r.Header.Set("Webhook-Id", "ord_1")
	r.Header.Set("Webhook-Timestamp", "1789480992")
	if err := (&webhook.RFC9421Signer{KeyID: "shop-ed", EdKey: key}).Sign(r, body); err != nil {
		t.Fatal(err)
	}
	v := &sink.RFC9421Verifier{Keys: keys.EC, EdKeys: keys.Ed}
	if err := v.Verify(r, body); err != nil {
		t.Fatalf("the published Ed25519 key does not verify: %v", err)
	}
	if err := v.Verify(r, append(bytes.Clone(body), ' ')); err == nil {
		t.Fatal("a changed body verified")
	}
	if _, err := run(t, nil, "keys", "generate", "--alg", "RS256", "--out", out+".2", "--kid", "x"); err == nil {
		t.Fatal("an unknown --alg accepted")
	}
}

// config check prints the effective configuration, the environment overriding the file,
// and refuses an invalid one naming the key.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "kafka:\n  brokers: [k:9092]\n  input_topic: orders\npartners:\n  google:\n    base_url: https://x\n    ucp_version: 2026-01-23\n    api_key_env: GK\n")
	out, err := run(t, []string{"UCPRELAY_KAFKA__GROUP=from-env", "GK=the-key-value"}, "config", "check", cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"group: from-env", "ucp_version: \"2026-01-23\"", "api key: [REDACTED] (13 bytes, from api_key_env GK)"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "the-key-value") {
		t.Error("config check printed the API key")
	}
	if _, err := run(t, []string{"UCPRELAY_DELIVERY__MAX_ATTEMPTS=0"}, "config", "check", cfg); err == nil || !strings.Contains(err.Error(), "delivery.max_attempts") {
		t.Errorf("invalid config: %v", err)
	}
}
