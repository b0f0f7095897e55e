package webhook

import (
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
)

// PublicJWK is the public half of an ES256 key as the merchant publishes it in its
// /.well-known/ucp (signing_keys, or a keys JWK Set).
type PublicJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
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
