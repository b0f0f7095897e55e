package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// P7 through every route a secret reaches the configuration: an API key in a file and
// in a variable named like configuration (UCPRELAY_GOOGLE_API_KEY), a SASL password in
// a variable, a registry URL with userinfo and a token in its query (from the file and
// from a flag), an OTLP endpoint with userinfo: `config check` shows none of them, on
// success and when the configuration is refused.
func TestConfigCheckShowsNoSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := []string{"file-api-k3y-1", "env-api-k3y-2", "sasl-passw0rd-3", "registry-passw0rd-4", "registry-t0ken-5", "flag-passw0rd-6", "otlp-t0ken-7"}
	keyFile := filepath.Join(dir, "legacy.key")
	if err := os.WriteFile(keyFile, []byte(secrets[0]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `kafka:
  brokers: [127.0.0.1:9]
  input_topic: orders
  sasl: {mechanism: SCRAM-SHA-512, username: relay, password_env: UCPRELAY_SASL_PASSWORD}
schema_registry:
  url: https://relay:` + secrets[3] + `@registry.example.com,https://registry-2.example.com/?access_token=` + secrets[4] + `
telemetry:
  otlp_endpoint: https://` + secrets[6] + `@otel.example.com:4318
partners:
  google:
    base_url: https://partner.example.com
    api_key_env: UCPRELAY_GOOGLE_API_KEY
  legacy:
    base_url: https://legacy.example.com
    ucp_version: 2026-01-23
    api_key_file: ` + keyFile + `
`
	env := []string{"UCPRELAY_GOOGLE_API_KEY=" + secrets[1], "UCPRELAY_SASL_PASSWORD=" + secrets[2]}
	p := writeConfig(t, cfg)
	check := func(what, out string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows the secret %q:\n%s", what, s, out)
			}
		}
	}
	out, err := run(t, env, "config", "check", p)
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	check("config check", out)
	if !strings.Contains(out, "REDACTED") || !strings.Contains(out, "registry.example.com") {
		t.Errorf("config check output without the redacted URLs:\n%s", out)
	}
	out, err = run(t, env, "config", "check", p, "--schema_registry.url=https://u:"+secrets[5]+"@r.example.com")
	if err != nil {
		t.Fatalf("config check with a flag: %v\n%s", err, out)
	}
	check("config check with a flag", out)
	// Refused (an unknown key beside them): the errors name keys, never values.
	bad := writeConfig(t, cfg+"delivery: {max_atempts: 3}\n")
	out, err = run(t, env, "config", "check", bad)
	if err == nil {
		t.Fatalf("a configuration with an unknown key passed:\n%s", out)
	}
	check("a refused configuration", out+err.Error())
}
