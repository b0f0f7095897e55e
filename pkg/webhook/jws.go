package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"net/http"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// RequestSignatureHeader carries the detached JWS of 2026-01-xx webhook requests.
const RequestSignatureHeader = "Request-Signature"

// DetachedJWSSigner signs UCP 2026-01-23 and 2026-01-11 webhook requests: a detached
// compact JWS (`header..signature`) over the exact body bytes with an unencoded payload
// (RFC 7797: "b64": false, "crit": ["b64"]), ES256 (raw r||s), and the key's kid, in the
// Request-Signature header.
type DetachedJWSSigner struct {
	// KeyID is the kid of the key in the merchant's signing_keys.
	KeyID string
	// Key is the P-256 private key.
	Key *ecdsa.PrivateKey
}

// Sign implements [Signer].
func (s *DetachedJWSSigner) Sign(r *http.Request, body []byte) error {
	if s.Key == nil || s.KeyID == "" {
		return errors.New("webhook: detached JWS signing needs a P-256 key and its key id")
	}
	h := jws.NewHeaders()
	for k, v := range map[string]any{jws.KeyIDKey: s.KeyID, "b64": false, jws.CriticalKey: []string{"b64"}} {
		if err := h.Set(k, v); err != nil {
			return fmt.Errorf("webhook: JWS header %s: %w", k, err)
		}
	}
	out, err := jws.Sign(nil, jws.WithKey(jwa.ES256(), s.Key, jws.WithProtectedHeaders(h)), jws.WithDetachedPayload(body))
	if err != nil {
		return fmt.Errorf("webhook: detached JWS: %w", err)
	}
	r.Header.Set(RequestSignatureHeader, string(out))
	return nil
}

// ParseES256Key reads a P-256 private key from a PEM file's bytes (see [ParseES256PEM])
// or from a JWK (a JSON object with "kty":"EC","crv":"P-256" and "d").
func ParseES256Key(data []byte) (*ecdsa.PrivateKey, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ParseES256PEM(data)
	}
	k, err := jwk.ParseKey(trimmed)
	if err != nil {
		return nil, fmt.Errorf("webhook: signing key JWK: %w", err)
	}
	var key ecdsa.PrivateKey
	if err := jwk.Export(k, &key); err != nil {
		return nil, fmt.Errorf("webhook: signing key JWK is not an EC private key: %w", err)
	}
	if key.Curve != elliptic.P256() {
		return nil, errors.New("webhook: signing key JWK is not P-256 (ES256)")
	}
	return &key, nil
}
