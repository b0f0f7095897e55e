package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// genKey writes a key with `keys generate` and returns its file.
func genKey(t *testing.T, dir, kid string, extra ...string) (file, printed string) {
	t.Helper()
	file = filepath.Join(dir, kid+".pem")
	printed, err := run(t, nil, append([]string{"keys", "generate", "--out", file, "--kid", kid}, extra...)...)
	if err != nil {
		t.Fatalf("keys generate %s: %v\n%s", kid, err, printed)
	}
	return file, printed
}

// rotationConfig is a configuration whose partner google lists the keys old and new
// and signs with signer.
func rotationConfig(oldFile, newFile, signer, extra string) string {
	return fmt.Sprintf(`kafka: {brokers: [k:9092], input_topic: orders}
partners:
  google:
    base_url: https://x
    signing:
      key_id: %s
      keys:
        - {key_id: old, key_file: %s}
        - {key_id: new, key_file: %s}
%s`, signer, oldFile, newFile, extra)
}

// keys generate prints a profile fragment in both forms, keys profile prints every
// configured key (old and new of a rotation, a key two partners share once), and the
// sink's --verify-key reads each of them.
func TestKeysProfileFragments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, asKeys := genKey(t, dir, "a", "--format", "keys")
	_, asSigning := genKey(t, dir, "b", "--alg", "EdDSA", "--format", "signing_keys")
	var k struct{ Keys []webhook.PublicJWK }
	var s struct {
		SigningKeys []webhook.PublicJWK `json:"signing_keys"`
	}
	if json.Unmarshal([]byte(asKeys), &k) != nil || len(k.Keys) != 1 || k.Keys[0].Kid != "a" {
		t.Fatalf("--format keys: %s", asKeys)
	}
	if json.Unmarshal([]byte(asSigning), &s) != nil || len(s.SigningKeys) != 1 || s.SigningKeys[0].Kid != "b" || s.SigningKeys[0].Crv != "Ed25519" {
		t.Fatalf("--format signing_keys: %s", asSigning)
	}
	if out, err := run(t, nil, "keys", "generate", "--out", filepath.Join(dir, "c.pem"), "--kid", "c", "--format", "pem"); err == nil {
		t.Fatalf("--format pem accepted: %s", out)
	}

	oldFile, _ := genKey(t, dir, "old")
	newFile, _ := genKey(t, dir, "new")
	cfg := writeConfig(t, rotationConfig(oldFile, newFile, "old", fmt.Sprintf(`  other:
    base_url: https://y
    signing: {key_file: %s, key_id: old}
`, oldFile)))
	for _, format := range []string{"signing_keys", "keys"} {
		out, err := run(t, nil, "keys", "profile", "--config", cfg, "--format", format)
		if err != nil {
			t.Fatalf("keys profile: %v\n%s", err, out)
		}
		var doc map[string][]webhook.PublicJWK
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got := doc[format]; len(doc) != 1 || len(got) != 2 || got[0].Kid != "old" || got[1].Kid != "new" {
			t.Fatalf("--format %s: %s", format, out)
		}
		keys, err := sink.ParsePublicKeys([]byte(out))
		if err != nil {
			t.Fatalf("sink reads %s: %v", format, err)
		}
		if keys.EC["old"] == nil || keys.EC["new"] == nil || keys.EC["old"].Equal(keys.EC["new"]) {
			t.Fatalf("sink keys %+v", keys)
		}
	}
	if out, err := run(t, nil, "keys", "profile", "--config", cfg, "--partner", "nobody"); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("unknown partner: %v\n%s", err, out)
	}
	if out, err := run(t, nil, "keys", "profile", "--config", cfg, "--format", "jwk"); err == nil {
		t.Fatalf("two keys as one jwk: %s", out)
	}
}

// kidOf is the kid of the key a partner signs with now.
func kidOf(t *testing.T, s *settings, id string) string {
	t.Helper()
	switch sg := s.partners[id].Endpoint.Signer.(*webhook.SwitchSigner).Current().(type) {
	case *webhook.RFC9421Signer:
		return sg.KeyID
	case *webhook.DetachedJWSSigner:
		return sg.KeyID
	default:
		t.Fatalf("signer %T", sg)
		return ""
	}
}

// The reload switches a partner to the key its key_id names now, all or nothing: a key
// file that does not parse, or an invalid configuration, keeps the key that signs; a
// change beyond the signing keys is named as taking effect at restart.
func TestSigningReloadApply(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldFile, _ := genKey(t, dir, "old")
	newFile, _ := genKey(t, dir, "new")
	cfg := writeConfig(t, rotationConfig(oldFile, newFile, "old", ""))
	a := &app{}
	s, err := a.loadConfig(cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	w := a.signingReloader(s, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if got := w.Files(); len(got) != 3 || got[0] != cfg || got[1] != oldFile || got[2] != newFile {
		t.Fatalf("watched files %v", got)
	}
	ctx := context.Background()
	rewrite := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Apply(ctx); err != nil || kidOf(t, s, "google") != "old" {
		t.Fatalf("unchanged reload: %v, kid %s", err, kidOf(t, s, "google"))
	}
	rewrite(rotationConfig(oldFile, newFile, "new", ""))
	if err := w.Apply(ctx); err != nil || kidOf(t, s, "google") != "new" {
		t.Fatalf("switch to new: %v, kid %s", err, kidOf(t, s, "google"))
	}
	// A key that does not parse: nothing switches, the error names the key.
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	rewrite(rotationConfig(oldFile, bad, "old", ""))
	if err := w.Apply(ctx); err == nil || !strings.Contains(err.Error(), "partners.google.signing.keys[1].key_file") || kidOf(t, s, "google") != "new" {
		t.Fatalf("bad key: %v, kid %s", err, kidOf(t, s, "google"))
	}
	rewrite(rotationConfig(oldFile, newFile, "nobody", ""))
	if err := w.Apply(ctx); err == nil || !strings.Contains(err.Error(), "partners.google.signing.key_id") || kidOf(t, s, "google") != "new" {
		t.Fatalf("invalid config: %v, kid %s", err, kidOf(t, s, "google"))
	}
	logs.Reset()
	rewrite(rotationConfig(oldFile, newFile, "old", "log: {level: debug}\n"))
	if err := w.Apply(ctx); err != nil || kidOf(t, s, "google") != "old" {
		t.Fatalf("switch back: %v, kid %s", err, kidOf(t, s, "google"))
	}
	if !strings.Contains(logs.String(), "next restart") || !strings.Contains(logs.String(), "level: debug") {
		t.Fatalf("a change beyond the keys is not named:\n%s", logs.String())
	}
}
