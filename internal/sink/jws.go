package sink

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// JWSVerifier checks UCP 2026-01-xx request signatures as a partner would: the
// Request-Signature header is a detached compact JWS (`header..signature`) over the exact
// body with an unencoded payload (RFC 7797: "b64": false, listed in "crit"), alg ES256,
// a kid naming a known key, and a raw r||s signature that verifies over
// ASCII(BASE64URL(header)) || "." || body. Written from RFC 7515 and 7797, sharing no code
// with the signer.
type JWSVerifier struct {
	// Keys are the merchant's public keys by kid.
	Keys map[string]*ecdsa.PublicKey
}

// Verify implements [Verifier].
func (v *JWSVerifier) Verify(r *http.Request, body []byte) error {
	sig := r.Header.Get(webhook.RequestSignatureHeader)
	if sig == "" {
		return fmt.Errorf("signature_missing: no %s header", webhook.RequestSignatureHeader)
	}
	parts := strings.Split(sig, ".")
	if len(parts) != 3 || parts[1] != "" {
		return errors.New("signature_invalid: not a detached compact JWS (header..signature)")
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("signature_invalid: protected header: %w", err)
	}
	var h struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		B64  *bool    `json:"b64"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(rawHeader, &h); err != nil {
		return fmt.Errorf("signature_invalid: protected header: %w", err)
	}
	switch {
	case h.Alg != "ES256":
		return fmt.Errorf("signature_invalid: alg %q, want ES256", h.Alg)
	case h.B64 == nil || *h.B64 || !slices.Contains(h.Crit, "b64"):
		return errors.New(`signature_invalid: want an unencoded payload ("b64": false, in "crit")`)
	}
	key, ok := v.Keys[h.Kid]
	if !ok {
		return fmt.Errorf("key_not_found: kid %q", h.Kid)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 64 {
		return errors.New("signature_invalid: want a 64-byte r||s signature")
	}
	sum := sha256.Sum256(append([]byte(parts[0]+"."), body...))
	if !ecdsa.Verify(key, sum[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
		return errors.New("signature_invalid: ES256 signature does not verify")
	}
	return nil
}
