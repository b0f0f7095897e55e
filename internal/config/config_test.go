package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ucprelay/ucprelay/internal/config"
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
  legacy:
    base_url: https://legacy
    ucp_version: 2026-01-23
    signing: {key_file: /k.pem, key_id: k1, alg: EdDSA}
  other:
    base_url: https://other
    signing: {key_file: /k.pem, key_id: k1, alg: RS256}
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
	for _, want := range []string{"kafka.brokers", "kafka.input_topic", "partners.google.ucp_version", "delivery.max_attempts", "log.level",
		"kafka.partitioner", "kafka.group_protocol", "partners.google.timestamp_format", "partners.google.signing", "partners.legacy.signing.alg", "partners.other.signing.alg",
		"delivery.max_retry_time", "delivery.breaker.failures_to_trip"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if _, err := config.Load(config.Sources{File: "/nonexistent.yaml"}); err == nil {
		t.Error("missing file accepted")
	}
}

// A key left unset stays unset (its component's default applies, and `config check`
// shows it); the same key set to zero is refused, naming it.
func TestUnsetKeysStayUnsetExplicitZeroRefused(t *testing.T) {
	t.Parallel()
	base := "kafka: {brokers: [k:9092], input_topic: orders}\npartners: {p: {base_url: \"https://x\"}}\n"
	c, err := config.Load(config.Sources{File: write(t, base)})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Delivery
	if d.MaxAttempts != 0 || d.AttemptTimeout != 0 || d.MaxPending != 0 || d.Breaker != (config.Breaker{}) || c.Kafka.SessionTimeout != 0 || c.Kafka.Partitioner != "" {
		t.Errorf("component defaults restated by config: %+v %+v", d, c.Kafka)
	}
	if c.Kafka.Group != "ucprelay" || c.Kafka.StateTopic != "ucprelay.state" || c.Telemetry.Listen != "127.0.0.1:8080" || c.Log.Level != "info" {
		t.Errorf("the command line's own defaults: %+v", c)
	}
	for key, yaml := range map[string]string{
		"delivery.max_attempts":             "delivery: {max_attempts: 0}",
		"delivery.attempt_timeout":          "delivery: {attempt_timeout: 0s}",
		"delivery.max_pending":              "delivery: {max_pending: 0}",
		"delivery.breaker.failures_to_trip": "delivery: {breaker: {failures_to_trip: 0}}",
		"delivery.breaker.hold":             "delivery: {breaker: {hold: -1m}}",
	} {
		_, err := config.Load(config.Sources{File: write(t, base+yaml+"\n")})
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want an error naming %s", yaml, err, key)
		}
	}
	for key, env := range map[string]string{"delivery.max_attempts": "UCPRELAY_DELIVERY__MAX_ATTEMPTS=0", "kafka.session_timeout": "UCPRELAY_KAFKA__SESSION_TIMEOUT=0s"} {
		if _, err := config.Load(config.Sources{File: write(t, base), Environ: []string{env}}); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want an error naming %s", env, err, key)
		}
	}
}

// Describe renders every key, durations as written and dates as strings.
func TestDescribe(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.Sources{File: write(t, `
kafka: {brokers: [k:9092], input_topic: orders, session_timeout: 30s}
partners: {google: {base_url: "https://x", ucp_version: 2026-01-23}}
`)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := config.Describe(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"session_timeout: 30s", `ucp_version: "2026-01-23"`, "input_topic: orders", "max_attempts: 0", "password_env: \"\""} {
		if !strings.Contains(string(out), want) {
			t.Errorf("description lacks %q:\n%s", want, out)
		}
	}
}

// Several signing keys (a rotation): each with its kid and file, kids distinct, key_id
// naming one of them; the single-key form and keys exclude each other.
func TestSigningKeysValidation(t *testing.T) {
	t.Parallel()
	base := "kafka: {brokers: [k:9092], input_topic: orders}\npartners:\n  google:\n    base_url: https://x\n    signing:\n"
	good := base + "      key_id: new\n      keys:\n        - {key_id: old, key_file: /old.pem}\n        - {key_id: new, key_file: /new.pem, alg: EdDSA}\n"
	c, err := config.Load(config.Sources{File: write(t, good)})
	if err != nil {
		t.Fatal(err)
	}
	if ks := c.Partners["google"].Signing.KeySet(); len(ks) != 2 || ks[1].KeyID != "new" || ks[1].Alg != "EdDSA" {
		t.Fatalf("keys %+v", ks)
	}
	single := base + "      key_id: k1\n      key_file: /k.pem\n"
	if c, err = config.Load(config.Sources{File: write(t, single)}); err != nil {
		t.Fatal(err)
	}
	if ks := c.Partners["google"].Signing.KeySet(); len(ks) != 1 || ks[0] != (config.SigningKey{KeyID: "k1", KeyFile: "/k.pem"}) {
		t.Fatalf("single key %+v", ks)
	}
	for name, tc := range map[string]struct{ yaml, key string }{
		"both forms":      {"      key_id: a\n      key_file: /a.pem\n      keys: [{key_id: a, key_file: /a.pem}]\n", "partners.google.signing: set key_file"},
		"signer unnamed":  {"      keys: [{key_id: a, key_file: /a.pem}]\n", "partners.google.signing.key_id: name the kid"},
		"signer unknown":  {"      key_id: c\n      keys: [{key_id: a, key_file: /a.pem}]\n", `partners.google.signing.key_id: "c" is none`},
		"kid twice":       {"      key_id: a\n      keys: [{key_id: a, key_file: /a.pem}, {key_id: a, key_file: /b.pem}]\n", "partners.google.signing.keys[1].key_id"},
		"no kid":          {"      key_id: a\n      keys: [{key_id: a, key_file: /a.pem}, {key_file: /b.pem}]\n", "partners.google.signing.keys[1].key_id"},
		"no file":         {"      key_id: a\n      keys: [{key_id: a}]\n", "partners.google.signing.keys[0].key_file"},
		"bad alg":         {"      key_id: a\n      keys: [{key_id: a, key_file: /a.pem, alg: RS256}]\n", "partners.google.signing.keys[0].alg"},
		"alg beside keys": {"      key_id: a\n      alg: EdDSA\n      keys: [{key_id: a, key_file: /a.pem}]\n", "partners.google.signing.alg: with keys"},
	} {
		_, err := config.Load(config.Sources{File: write(t, base+tc.yaml)})
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v; want an error naming %s", name, err, tc.key)
		}
	}
	if _, err := config.Load(config.Sources{File: write(t, single+"reload: {interval: -1s}\n")}); err == nil || !strings.Contains(err.Error(), "reload.interval") {
		t.Errorf("negative reload.interval: %v", err)
	}
}

// Strict keys: a key the configuration does not know, in the file (at any level, in
// lists too) or in a UCPRELAY_* variable, is refused with the nearest known key, beside
// the other errors; variables that hold a secret the configuration names, and those
// Kubernetes injects for services, are not configuration.
func TestUnknownKeysRefused(t *testing.T) {
	t.Parallel()
	const kafka, partners = "kafka: {brokers: [k:9092], input_topic: orders}\n", "partners: {google: {base_url: \"https://x\"}}\n"
	const base = kafka + partners
	for _, tc := range []struct{ yaml, want string }{
		{kafka + `partners: {google: {base_url: "https://x", ucp_versoin: 2026-01-11}}`, "partners.google.ucp_versoin: unknown key (did you mean partners.google.ucp_version?)"}, //nolint:misspell // the misspelling is the case
		{partners + "kafka: {brokers: [k:9092], input_topic: orders, grup: g}", "kafka.grup: unknown key (did you mean kafka.group?)"},
		{base + "delivery: {max_atempts: 3}", "delivery.max_atempts: unknown key (did you mean delivery.max_attempts?)"},
		{base + "deliveyr: {max_attempts: 3}", "deliveyr: unknown key (did you mean delivery?)"},
		{base + "totally_unrelated: 1", "totally_unrelated: unknown key"},
		{base + "mapping: [{topic: t, rules: [{name: r, mach: x, kind: placed}]}]", "mapping[0].rules[0].mach: unknown key (did you mean mapping[0].rules[0].match?)"},
		{kafka + `partners: {google: {base_url: "https://x", signing: {keys: [{kid: a}]}}}`, "partners.google.signing.keys[0].kid: unknown key"},
	} {
		_, err := config.Load(config.Sources{File: write(t, tc.yaml+"\n")})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// brokerz: the misspelling is named beside the missing key it explains.
	_, err := config.Load(config.Sources{File: write(t, "kafka: {brokerz: [k:9092], input_topic: orders}\n")})
	if err == nil || !strings.Contains(err.Error(), "kafka.brokerz: unknown key (did you mean kafka.brokers?)") || !strings.Contains(err.Error(), "kafka.brokers: required") {
		t.Errorf("brokerz: %v", err)
	}

	p := write(t, base)
	_, err = config.Load(config.Sources{File: p, Environ: []string{"UCPRELAY_KAFKA__GRUOP=g"}})
	if err == nil || !strings.Contains(err.Error(), "UCPRELAY_KAFKA__GRUOP: unknown variable") || !strings.Contains(err.Error(), "did you mean UCPRELAY_KAFKA__GROUP?") {
		t.Errorf("misspelt variable: %v", err)
	}
	// Not configuration: the variables named by *_env keys (in the file or the
	// environment) and Kubernetes' service links.
	withSecrets := write(t, "kafka: {brokers: [k:9092], input_topic: orders, sasl: {mechanism: PLAIN, username: u, password_env: UCPRELAY_SASL_PASSWORD}}\n"+
		"partners: {google: {base_url: \"https://x\", api_key_env: UCPRELAY_GOOGLE_API_KEY}}\n")
	c, err := config.Load(config.Sources{File: withSecrets, Environ: []string{
		"UCPRELAY_GOOGLE_API_KEY=secret-1", "UCPRELAY_SASL_PASSWORD=secret-2",
		"UCPRELAY_PARTNERS__LEGACY__BASE_URL=https://y", "UCPRELAY_PARTNERS__LEGACY__API_KEY_ENV=UCPRELAY_LEGACY_KEY", "UCPRELAY_LEGACY_KEY=secret-3",
		"UCPRELAY_SERVICE_HOST=10.0.0.1", "UCPRELAY_SERVICE_PORT=8080", "UCPRELAY_SERVICE_PORT_METRICS=8080", "UCPRELAY_PORT=tcp://10.0.0.1:8080",
		"UCPRELAY_PORT_8080_TCP=tcp://10.0.0.1:8080", "UCPRELAY_PORT_8080_TCP_PROTO=tcp", "UCPRELAY_PORT_8080_TCP_PORT=8080", "UCPRELAY_PORT_8080_TCP_ADDR=10.0.0.1",
		"UCPRELAY_SINK_SERVICE_HOST=10.0.0.2",
	}})
	if err != nil {
		t.Fatalf("secrets and service links read as configuration: %v", err)
	}
	if c.Partners["legacy"].APIKeyEnv != "UCPRELAY_LEGACY_KEY" {
		t.Errorf("partners from the environment: %+v", c.Partners)
	}
	// A command's own flags are not keys.
	fs := flags(t)
	fs.String("config", "", "")
	fs.Bool("dry-run", false, "")
	if err := fs.Parse([]string{"--config=x.yaml", "--dry-run"}); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(config.Sources{File: p, Flags: fs}); err != nil {
		t.Errorf("a command's own flags: %v", err)
	}
}

// A partner reached over plain http gets no API key or signature unless the
// configuration says it is a local test sink.
func TestInsecureHTTPPartnerRefused(t *testing.T) {
	t.Parallel()
	const kafka = "kafka: {brokers: [k:9092], input_topic: orders}\n"
	for yaml, ok := range map[string]bool{
		`partners: {p: {base_url: "http://127.0.0.1:8080", api_key_env: K}}`:                            false,
		`partners: {p: {base_url: "HTTP://sink:8080", api_key_file: /k}}`:                               false,
		`partners: {p: {base_url: "http://sink:8080", signing: {key_file: /k.pem, key_id: k}}}`:         false,
		`partners: {p: {base_url: "http://127.0.0.1:8080", api_key_env: K, allow_insecure_http: true}}`: true,
		`partners: {p: {base_url: "http://127.0.0.1:8080"}}`:                                            true,
		`partners: {p: {base_url: "https://partner.example.com", api_key_env: K}}`:                      true,
	} {
		_, err := config.Load(config.Sources{File: write(t, kafka+yaml+"\n")})
		if ok && err != nil {
			t.Errorf("%s: %v", yaml, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "partners.p.allow_insecure_http: true")) {
			t.Errorf("%s: %v, want a refusal naming allow_insecure_http", yaml, err)
		}
	}
}
