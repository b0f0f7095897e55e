package webhook_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/testshared"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// The Content-Digest values testdata/ucp-examples/README.md lists for its files.
func TestContentDigestOfExamples(t *testing.T) {
	t.Parallel()
	dir := testshared.Dir(t, "ucp-examples")
	for file, want := range map[string]string{
		"order-created.json":       "sha-256=:tpXtAUWpJjO62pu9P7hJYNNZyND1jGr9Hve6/YzJGeQ=:",
		"partially-shipped.json":   "sha-256=:ePIzu4BJ8+e8Ikr1zW2eQJler048CiurXvm5XF1da2w=:",
		"fully-delivered.json":     "sha-256=:Y8SETj4BJH//D6wRa9EdNIi8Gb3srqMCSmptT2ekVq0=:",
		"partially-cancelled.json": "sha-256=:vjSXwFosQBvQ2r2uR+2SCe0S14QsbZj+blGPdkx+De8=:",
		"fully-cancelled.json":     "sha-256=:nKXyiFALrndMxv/ctjdbClxHqQfABJf1pJ3Rmm8qdWs=:",
		"refunded-returned.json":   "sha-256=:96ou/RvqJRou2rPWiSKG9nVEvyyD6DP8Qs60wztOJwk=:",
	} {
		body, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if got := webhook.ContentDigest(body); got != want {
			t.Errorf("%s: %s, want %s", file, got, want)
		}
	}
}

// The signature base the README of the examples shows for order-created.json.
const readmeBase = `"@method": POST
"@authority": shoppingdataintegration.googleapis.com
"@path": /v1/webhooks/partners/PARTNER_ID/events/order
"ucp-agent": profile="https://shop.example.com/.well-known/ucp"
"content-digest": sha-256=:tpXtAUWpJjO62pu9P7hJYNNZyND1jGr9Hve6/YzJGeQ=:
"content-type": application/json
"@signature-params": ("@method" "@authority" "@path" "ucp-agent" "content-digest" "content-type");created=1789480992;keyid="shop-2026-09"`

// verifyRFC9421 is a verifier written from RFC 9421 and RFC 9530 for the test, sharing no
// code with the signer: it parses Signature-Input and Signature by hand, checks the
// Content-Digest against the body, rebuilds the signature base and verifies the raw r||s
// ES256 signature (pub a *ecdsa.PublicKey) or the Ed25519 one (an ed25519.PublicKey). It
// returns the base it verified.
func verifyRFC9421(r *http.Request, body []byte, pub crypto.PublicKey) (string, error) {
	sum := sha256.Sum256(body)
	if got, want := r.Header.Get("Content-Digest"), "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":"; got != want {
		return "", fmt.Errorf("content-digest %q, body hashes to %q", got, want)
	}
	m := regexp.MustCompile(`^sig1=\(([^)]*)\)(;.*)$`).FindStringSubmatch(r.Header.Get("Signature-Input"))
	if m == nil {
		return "", fmt.Errorf("signature-input %q", r.Header.Get("Signature-Input"))
	}
	var lines []string
	for _, q := range strings.Fields(m[1]) {
		name := strings.Trim(q, `"`)
		var v string
		switch name {
		case "@method":
			v = r.Method
		case "@authority":
			v = strings.ToLower(r.URL.Host)
		case "@path":
			v = r.URL.EscapedPath()
		case "@query":
			v = "?" + r.URL.RawQuery
		default:
			v = strings.TrimSpace(r.Header.Get(name))
		}
		lines = append(lines, fmt.Sprintf(`"%s": %s`, name, v))
	}
	lines = append(lines, `"@signature-params": (`+m[1]+`)`+m[2])
	base := strings.Join(lines, "\n")
	sm := regexp.MustCompile(`^sig1=:([A-Za-z0-9+/=]+):$`).FindStringSubmatch(r.Header.Get("Signature"))
	if sm == nil {
		return "", fmt.Errorf("signature %q", r.Header.Get("Signature"))
	}
	raw, err := base64.StdEncoding.DecodeString(sm[1])
	if err != nil {
		return "", fmt.Errorf("signature base64: %w", err)
	}
	if len(raw) != 64 {
		return "", fmt.Errorf("signature is %d bytes, want 64", len(raw))
	}
	if ed, ok := pub.(ed25519.PublicKey); ok {
		if !ed25519.Verify(ed, []byte(base), raw) {
			return base, fmt.Errorf("Ed25519 signature does not verify over\n%s", base)
		}
		return base, nil
	}
	h := sha256.Sum256([]byte(base))
	if !ecdsa.Verify(pub.(*ecdsa.PublicKey), h[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
		return base, fmt.Errorf("signature does not verify over\n%s", base)
	}
	return base, nil
}

func newES256Key(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestRFC9421SignatureOfTheExample(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(filepath.Join(testshared.Dir(t, "ucp-examples"), "order-created.json"))
	if err != nil {
		t.Fatal(err)
	}
	key, pemKey := newES256Key(t)
	parsed, err := webhook.ParseES256PEM(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &webhook.RFC9421Signer{KeyID: "shop-2026-09", Key: parsed, Profile: "https://shop.example.com/.well-known/ucp",
		Now: func() time.Time { return time.Unix(1789480992, 0) }}
	r, _ := http.NewRequest(http.MethodPost, "https://shoppingdataintegration.googleapis.com/v1/webhooks/partners/PARTNER_ID/events/order", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if err := s.Sign(r, body); err != nil {
		t.Fatal(err)
	}
	base, err := verifyRFC9421(r, body, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if base != readmeBase {
		t.Fatalf("signature base\n%s\nwant\n%s", base, readmeBase)
	}
	// The verifier can fail: one changed body byte breaks the digest, another key the signature.
	if _, err := verifyRFC9421(r, append(bytes.Clone(body[:len(body)-1]), ' '), &key.PublicKey); err == nil {
		t.Fatal("a changed body verified")
	}
	other, _ := newES256Key(t)
	if _, err := verifyRFC9421(r, body, &other.PublicKey); err == nil {
		t.Fatal("another key verified")
	}
}

// A delivery's identity is signed: with Webhook-Id and Webhook-Timestamp set, both are
// covered (an independent verifier checks the base), so a captured request replayed
// under another id or time no longer verifies.
func TestRFC9421CoversTheDeliveryIdentity(t *testing.T) {
	t.Parallel()
	key, _ := newES256Key(t)
	body := []byte(`{"id":"ord_1"}`)
	s := &webhook.RFC9421Signer{KeyID: "k1", Key: key, Now: func() time.Time { return time.Unix(1789480992, 0) }}
	r, _ := http.NewRequest(http.MethodPost, "https://partner.example/webhooks/partners/p/events/order", bytes.NewReader(body))
	r.Header.Set("Webhook-Id", "ord_1")
	r.Header.Set("Webhook-Timestamp", "1789480992")
	if err := s.Sign(r, body); err != nil {
		t.Fatal(err)
	}
	base, err := verifyRFC9421(r, body, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(base, "\n\"webhook-id\": ord_1\n\"webhook-timestamp\": 1789480992\n") ||
		!strings.Contains(r.Header.Get("Signature-Input"), `"webhook-id" "webhook-timestamp"`) {
		t.Fatalf("identity not covered:\n%s\n%s", base, r.Header.Get("Signature-Input"))
	}
	for h, v := range map[string]string{"Webhook-Id": "ord_2", "Webhook-Timestamp": "1789480993"} {
		replayed := r.Clone(context.Background())
		replayed.Header.Set(h, v)
		if _, err := verifyRFC9421(replayed, body, &key.PublicKey); err == nil {
			t.Errorf("replayed under another %s: verified", h)
		}
	}
}

// EdDSA: an Ed25519 key signs the same signature base, verified by the independent
// verifier with the public key, and not with another.
func TestRFC9421Ed25519(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	body := []byte(`{"id":"ord_1"}`)
	r, _ := http.NewRequest(http.MethodPost, "https://partner.example/webhooks/partners/p/events/order", bytes.NewReader(body))
	r.Header.Set("Webhook-Id", "ord_1")
	r.Header.Set("Webhook-Timestamp", "1789480992")
	if err := (&webhook.RFC9421Signer{KeyID: "ed1", EdKey: priv, Profile: "https://shop.example.com/.well-known/ucp"}).Sign(r, body); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyRFC9421(r, body, pub); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyRFC9421(r, body, otherPub); err == nil {
		t.Fatal("another Ed25519 key verified")
	}
	if err := (&webhook.RFC9421Signer{KeyID: "ed1", EdKey: priv[:10]}).Sign(r, body); err == nil {
		t.Fatal("a truncated Ed25519 key signed")
	}
}

// The sender signs the exact bytes it sends, after the API key went into the query, and
// covers @query then.
func TestSenderSignsWhatItSends(t *testing.T) {
	t.Parallel()
	key, _ := newES256Key(t)
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(r.Body)
		r.URL.Host = r.Host
		_, err := verifyRFC9421(r, body.Bytes(), &key.PublicKey)
		if err == nil && !strings.Contains(r.Header.Get("Signature-Input"), `"@query"`) {
			err = fmt.Errorf("query not covered: %s", r.Header.Get("Signature-Input"))
		}
		got <- err
	}))
	defer srv.Close()
	snd, err := webhook.NewSender()
	if err != nil {
		t.Fatal(err)
	}
	ep := &webhook.Endpoint{Partner: "google", BaseURL: srv.URL, APIKey: webhook.NewSecret("k3y"), APIKeyQuery: "key",
		Signer: &webhook.RFC9421Signer{KeyID: "k1", Key: key, Profile: "https://shop.example.com/.well-known/ucp"}}
	if _, err := snd.Send(context.Background(), ep, webhook.Request{Body: []byte(`{"id":"ord_1"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestParseES256PEMRejectsOtherKeys(t *testing.T) {
	t.Parallel()
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k384)
	if _, err := webhook.ParseES256PEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err == nil {
		t.Fatal("a P-384 key was accepted for ES256")
	}
	if _, err := webhook.ParseES256PEM([]byte("not pem")); err == nil {
		t.Fatal("garbage accepted")
	}
}
