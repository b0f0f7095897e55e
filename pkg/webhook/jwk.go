package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// PublicJWK is the public half of an ES256 key as the merchant publishes it in its
// /.well-known/ucp (signing_keys, or a keys JWK Set).
type PublicJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"` // EC only
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// PublicJWKOf returns pub, a P-256 key, as the JWK of key id kid.
func PublicJWKOf(pub *ecdsa.PublicKey, kid string) (PublicJWK, error) {
	raw, err := pub.Bytes() // uncompressed point: 0x04 || X || Y
	if err != nil || len(raw) != 65 {
		return PublicJWK{}, errors.New("webhook: not a P-256 public key")
	}
	enc := base64.RawURLEncoding.EncodeToString
	return PublicJWK{Kty: "EC", Crv: "P-256", X: enc(raw[1:33]), Y: enc(raw[33:]), Kid: kid, Use: "sig", Alg: "ES256"}, nil
}

// PublicJWKOfEd25519 returns pub as the OKP JWK (RFC 8037) of key id kid, alg EdDSA.
func PublicJWKOfEd25519(pub ed25519.PublicKey, kid string) (PublicJWK, error) {
	if len(pub) != ed25519.PublicKeySize {
		return PublicJWK{}, errors.New("webhook: not an Ed25519 public key")
	}
	return PublicJWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid, Use: "sig", Alg: "EdDSA"}, nil
}

// ParseEd25519Key reads an Ed25519 private key from PEM (PKCS #8 "PRIVATE KEY", as
// `ucprelay keys generate --alg EdDSA` writes it) or from a JWK ("kty":"OKP",
// "crv":"Ed25519" with "d").
func ParseEd25519Key(data []byte) (ed25519.PrivateKey, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		k, err := jwk.ParseKey(trimmed)
		if err != nil {
			return nil, fmt.Errorf("webhook: signing key JWK: %w", err)
		}
		var key ed25519.PrivateKey
		if err := jwk.Export(k, &key); err != nil || len(key) != ed25519.PrivateKeySize {
			return nil, errors.New("webhook: signing key JWK is not an Ed25519 private key (EdDSA)")
		}
		return key, nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("webhook: no PEM block in the signing key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("webhook: signing key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("webhook: signing key is a %T, not Ed25519 (EdDSA)", k)
	}
	return key, nil
}
