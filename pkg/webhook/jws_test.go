package webhook_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// verifyDetachedJWS is written from RFC 7515 and RFC 7797 for the test: the value is
// BASE64URL(header) ".." BASE64URL(signature); the header says ES256, the kid, b64=false
// with b64 critical; the signing input is BASE64URL(header) "." and the raw body bytes.
func verifyDetachedJWS(value string, body []byte, pub *ecdsa.PublicKey, kid string) error {
	parts := strings.Split(value, ".")
	if len(parts) != 3 || parts[1] != "" {
		return fmt.Errorf("not a detached compact JWS: %q", value)
	}
	hj, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var h struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		B64  *bool    `json:"b64"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(hj, &h); err != nil {
		return fmt.Errorf("header json: %w", err)
	}
	if h.Alg != "ES256" || h.Kid != kid || h.B64 == nil || *h.B64 || len(h.Crit) != 1 || h.Crit[0] != "b64" {
		return fmt.Errorf("header %s", hj)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	if len(sig) != 64 {
		return fmt.Errorf("signature is %d bytes, want raw r||s", len(sig))
	}
	sum := sha256.Sum256(append([]byte(parts[0]+"."), body...))
	if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return fmt.Errorf("signature does not verify")
	}
	return nil
}

func TestDetachedJWSOverTheExactBody(t *testing.T) {
	t.Parallel()
	key, _ := newES256Key(t)
	body := []byte(`{"id":"ord_1","created_time":"2026-09-15T14:03:12Z","event_id":"evt_1"}` + "\n")
	r, _ := http.NewRequest(http.MethodPost, "https://partner.example/webhooks/partners/p/events/order", bytes.NewReader(body))
	s := &webhook.DetachedJWSSigner{KeyID: "shop-2026-09", Key: key}
	if err := s.Sign(r, body); err != nil {
		t.Fatal(err)
	}
	v := r.Header.Get(webhook.RequestSignatureHeader)
	if err := verifyDetachedJWS(v, body, &key.PublicKey, "shop-2026-09"); err != nil {
		t.Fatal(err)
	}
	if err := verifyDetachedJWS(v, body[:len(body)-1], &key.PublicKey, "shop-2026-09"); err == nil {
		t.Fatal("a different body verified")
	}
	other, _ := newES256Key(t)
	if err := verifyDetachedJWS(v, body, &other.PublicKey, "shop-2026-09"); err == nil {
		t.Fatal("another key verified")
	}
}

// A JWK private key file loads to the same key as its PEM.
func TestParseES256KeyFromJWK(t *testing.T) {
	t.Parallel()
	key, pemKey := newES256Key(t)
	point, _ := key.PublicKey.Bytes()
	d, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	jwkText := fmt.Sprintf(`{"kty":"EC","crv":"P-256","x":%q,"y":%q,"d":%q,"kid":"k1"}`, enc(point[1:33]), enc(point[33:]), enc(d))
	fromJWK, err := webhook.ParseES256Key([]byte(jwkText))
	if err != nil {
		t.Fatal(err)
	}
	fromPEM, err := webhook.ParseES256Key(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	if !fromJWK.Equal(fromPEM) {
		t.Fatal("the JWK and the PEM give different keys")
	}
	if _, err := webhook.ParseES256Key([]byte(`{"kty":"oct","k":"c2VjcmV0"}`)); err == nil {
		t.Fatal("a symmetric JWK was accepted")
	}
}
