package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
)

// The schema registry client follows no redirect: its url can carry credentials
// (user:password@), which a 307 would send to the host it names.
func TestRegistryClientFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	var reached atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = w.Write([]byte(`["subject"]`))
	}))
	defer elsewhere.Close()
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer registry.Close()
	s, err := wireFile(t, "kafka: {brokers: [k:9092], input_topic: orders}\npartners: {p: {base_url: \"https://x\"}}\nschema_registry: {url: \""+registry.URL+"\"}\n")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.registryClient()
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.Subjects(context.Background())
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("want the registry's 307 as the answer, got %v", err)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

// tlsRegistry serves fake over TLS with the certificates of dir (kafkatest.WriteTLS),
// asking every client for a certificate of the same CA.
func tlsRegistry(t *testing.T, dir string, fake *srfake.Registry) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := certPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(fake.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// The registry as a user runs it: mutual TLS and basic auth (the password in a file
// or a variable), or a bearer token; the mapping's type check reads its writer schemas
// through them. A wrong password or no client certificate is an error that names the
// registry's answer and never the secret; credentials over plain http warn.
func TestRegistryTLSAndCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := kafkatest.WriteTLS(dir); err != nil {
		t.Fatal(err)
	}
	const password, token = "reg-pass-7d1f", "reg-token-93ac"
	pwFile, tokFile := filepath.Join(dir, "pw"), filepath.Join(dir, "token")
	for f, v := range map[string]string{pwFile: password + "\n", tokFile: token + "\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	basic := srfake.NewRegistry(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("relay:"+password))))
	bearer := srfake.NewRegistry(srfake.WithAuth("Bearer " + token))
	for _, fake := range []*srfake.Registry{basic, bearer} {
		if _, _, err := fake.RegisterSchema("shop.events-value", sr.Schema{Schema: shipmentSchema(t), Type: sr.TypeAvro}); err != nil {
			t.Fatal(err)
		}
	}
	basicURL, bearerURL := tlsRegistry(t, dir, basic), tlsRegistry(t, dir, bearer)
	samples := filepath.Join(dir, "samples.jsonl")
	if err := os.WriteFile(filepath.Join(dir, "shipment.avsc"), []byte(shipmentSchema(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	sample := `{"schema": "shipment.avsc", "key": "ord_1", "value": {"shipment_id": "s1", "order_id": "ord_1", "dispatched_at": 1788000000000, "carrier": "UPS", "tracking": "1Z9", "lines": [{"sku": "SKU-1", "qty": 2}]}}`
	if err := os.WriteFile(samples, []byte(sample+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtls := "  tls:\n    ca_file: " + filepath.Join(dir, "ca.pem") + "\n    cert_file: " + filepath.Join(dir, "client.pem") + "\n    key_file: " + filepath.Join(dir, "client-key.pem") + "\n"
	config := func(registry string) string {
		return writeConfig(t, "kafka:\n  brokers: [127.0.0.1:9]\n  input_topic: shop.events\npartners:\n  google:\n    base_url: "+nowhere+"\n"+
			"schema_registry:\n"+registry+strings.ReplaceAll(shipmentRule, "%TOPIC%", "shop.events"))
	}
	mappingTest := func(env []string, cfg string) (string, error) {
		t.Helper()
		out, err := run(t, env, "mapping", "test", "--config", cfg, "--file", samples)
		if err != nil {
			out += err.Error()
		}
		for _, secret := range []string{password, token, base64.StdEncoding.EncodeToString([]byte("relay:" + password))} {
			if strings.Contains(out, secret) {
				t.Errorf("the output shows a registry secret:\n%s", out)
			}
		}
		return out, err
	}
	const reached = "types: the rules fit 2 writer schemas" // the sample's schema file and the registry's version
	for name, tc := range map[string]struct {
		env      []string
		registry string
		want     string
	}{
		"basic auth, password file": {nil, "  url: " + basicURL + "\n" + mtls + "  basic_auth: {username: relay, password_file: " + pwFile + "}\n", reached},
		"basic auth, password env":  {[]string{"REG_PW=" + password}, "  url: " + basicURL + "\n" + mtls + "  basic_auth: {username: relay, password_env: REG_PW}\n", reached},
		"bearer token":              {nil, "  url: " + bearerURL + "\n" + mtls + "  bearer_token_file: " + tokFile + "\n", reached},
		"two urls, the first down":  {nil, "  url: https://127.0.0.1:9," + basicURL + "\n" + mtls + "  basic_auth: {username: relay, password_file: " + pwFile + "}\n", reached},
		"wrong password":            {[]string{"REG_PW=wrong-pass"}, "  url: " + basicURL + "\n" + mtls + "  basic_auth: {username: relay, password_env: REG_PW}\n", "User not authorized"},
		"no credential":             {nil, "  url: " + basicURL + "\n" + mtls, "Missing Authorization header"},
		"no client certificate":     {nil, "  url: " + basicURL + "\n  tls: {ca_file: " + filepath.Join(dir, "ca.pem") + "}\n  basic_auth: {username: relay, password_file: " + pwFile + "}\n", "types: the registry's writer schemas are not read"},
		"no CA":                     {nil, "  url: " + basicURL + "\n  basic_auth: {username: relay, password_file: " + pwFile + "}\n", "certificate signed by unknown authority"},
	} {
		out, err := mappingTest(tc.env, config(tc.registry))
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s: %v, want %q in\n%s", name, err, tc.want, out)
		}
	}

	// Credentials over plain http warn in config check; the password stays hidden.
	out, err := run(t, nil, "config", "check", config("  url: http://registry:8081\n  basic_auth: {username: relay, password_file: "+pwFile+"}\n"))
	if err != nil || !strings.Contains(out, "# warning: schema_registry.basic_auth over plain http (http://registry:8081)") ||
		!strings.Contains(out, "schema_registry.basic_auth: [REDACTED] (resolved)") || strings.Contains(out, password) {
		t.Errorf("config check of basic auth over http: %v\n%s", err, out)
	}
	// What the configuration alone can tell is refused, naming the key.
	for want, registry := range map[string]string{
		"schema_registry: set basic_auth or bearer_token_file, not both":                 "  url: " + basicURL + "\n  basic_auth: {username: relay, password_file: " + pwFile + "}\n  bearer_token_file: " + tokFile + "\n",
		"schema_registry.basic_auth: set exactly one of password_file and password_env":  "  url: " + basicURL + "\n  basic_auth: {username: relay}\n",
		"schema_registry.basic_auth.username: required":                                  "  url: " + basicURL + "\n  basic_auth: {password_file: " + pwFile + "}\n",
		"schema_registry.url: required with schema_registry's tls":                       "  bearer_token_file: " + tokFile + "\n",
		"schema_registry.url: \"registry:8081\": want http(s)://":                        "  url: registry:8081\n",
		"schema_registry.tls.ca_file":                                                    "  url: " + basicURL + "\n  tls: {ca_file: " + pwFile + "}\n",
		"schema_registry.bearer_token_file: " + filepath.Join(dir, "none") + " is empty": "",
	} {
		if registry == "" {
			if err := os.WriteFile(filepath.Join(dir, "none"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			registry = "  url: " + basicURL + "\n  bearer_token_file: " + filepath.Join(dir, "none") + "\n"
		}
		if out, err := run(t, nil, "config", "check", config(registry)); err == nil || !strings.Contains(err.Error()+out, want) {
			t.Errorf("want %q, got %v\n%s", want, err, out)
		}
	}
}

// A registry URL's userinfo is sent as basic auth, never in the URL: an unreachable
// registry's error (which reaches logs and /readyz) does not quote the password.
func TestRegistryUserinfoStaysOutOfErrors(t *testing.T) {
	t.Parallel()
	const password = "pass/w0rd-uinfo"
	base := "kafka: {brokers: [k:9092], input_topic: orders}\npartners: {p: {base_url: \"https://x\"}}\n"
	s, err := wireFile(t, base+"schema_registry: {url: \"HTTP://relay:"+strings.ReplaceAll(password, "/", "%2F")+"@127.0.0.1:9\"}\n")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.registryClient()
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.Subjects(context.Background())
	if err == nil || strings.Contains(err.Error(), "pass") || strings.Contains(err.Error(), "relay:") {
		t.Fatalf("an unreachable registry's error: %v", err)
	}
	for _, body := range []string{
		"schema_registry: {url: \"https://a:1@r1,https://b:2@r2\"}\n",
		"schema_registry: {url: \"https://a:1@r1\", bearer_token_file: /dev/null}\n",
	} {
		if _, err := wireFile(t, base+body); err == nil || !strings.Contains(err.Error(), "schema_registry.url") {
			t.Errorf("%s: %v", body, err)
		}
	}
}
