package sink_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// The sink's detached-JWS verifier accepts what the 2026-01-xx signer signs, and refuses
// a changed body, another key, an unknown kid and a missing signature.
func TestJWSVerifier(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v := &sink.JWSVerifier{Keys: map[string]*ecdsa.PublicKey{"k1": &key.PublicKey}}
	body := []byte(`{"id":"ord_1","event_id":"evt_1"}`)
	signed := func(s webhook.Signer) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "http://partner/webhooks/partners/p/events/order", bytes.NewReader(body))
		if s != nil {
			if err := s.Sign(r, body); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	if err := v.Verify(signed(&webhook.DetachedJWSSigner{KeyID: "k1", Key: key}), body); err != nil {
		t.Fatalf("signed request: %v", err)
	}
	for name, c := range map[string]struct {
		r    *http.Request
		body []byte
	}{
		"changed body":  {signed(&webhook.DetachedJWSSigner{KeyID: "k1", Key: key}), append(bytes.Clone(body), ' ')},
		"other key":     {signed(&webhook.DetachedJWSSigner{KeyID: "k1", Key: other}), body},
		"unknown kid":   {signed(&webhook.DetachedJWSSigner{KeyID: "k2", Key: key}), body},
		"not signed":    {signed(nil), body},
		"RFC 9421 only": {signed(&webhook.RFC9421Signer{KeyID: "k1", Key: key}), body},
	} {
		if err := v.Verify(c.r, c.body); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}
