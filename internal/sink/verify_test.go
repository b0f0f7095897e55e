package sink_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// The sink verifies RFC 9421 signatures like a partner: a signed request passes; a body
// changed after signing, an unknown key or a missing signature is answered 401.
func TestSinkVerifiesSignatures(t *testing.T) {
	t.Parallel()
	v, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	snk, err := sink.New(sink.Config{Validator: v, Verifier: &sink.RFC9421Verifier{Keys: map[string]*ecdsa.PublicKey{"k1": &key.PublicKey}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(snk)
	defer srv.Close()
	body := example(t, "order-created.json")
	snd, _ := webhook.NewSender()
	send := func(s webhook.Signer, mutate bool) error {
		ep := &webhook.Endpoint{Partner: "google", BaseURL: srv.URL, Signer: s}
		if mutate {
			ep.Signer = mutatingSigner{s}
		}
		h := http.Header{}
		h.Set("Webhook-Id", "ord_8F3KQ2")
		h.Set("Webhook-Timestamp", "1789480992")
		_, err := snd.Send(context.Background(), ep, webhook.Request{Body: body, Header: h})
		return err
	}
	good := &webhook.RFC9421Signer{KeyID: "k1", Key: key, Profile: "https://shop.example.com/.well-known/ucp"}
	if err := send(good, false); err != nil {
		t.Fatalf("signed request: %v", err)
	}
	for name, s := range map[string]webhook.Signer{
		"unknown key": &webhook.RFC9421Signer{KeyID: "k2", Key: other},
		"wrong key":   &webhook.RFC9421Signer{KeyID: "k1", Key: other},
		"unsigned":    nil,
	} {
		if err := send(s, false); webhook.Classify(err) != webhook.Credentials {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := send(good, true); webhook.Classify(err) != webhook.Credentials {
		t.Errorf("body changed after signing: %v", err)
	}
	// The delivery's identity is covered: a captured request replayed under another
	// Webhook-Id or Webhook-Timestamp fails, and so does a signature that leaves them out.
	for name, s := range map[string]webhook.Signer{
		"another Webhook-Id":        hookSigner{good, nil, func(r *http.Request) { r.Header.Set("Webhook-Id", "ord_other") }},
		"another Webhook-Timestamp": hookSigner{good, nil, func(r *http.Request) { r.Header.Set("Webhook-Timestamp", "1789480993") }},
		"identity not covered": hookSigner{good, func(r *http.Request) { r.Header.Del("Webhook-Id"); r.Header.Del("Webhook-Timestamp") },
			func(r *http.Request) {
				r.Header.Set("Webhook-Id", "ord_8F3KQ2")
				r.Header.Set("Webhook-Timestamp", "1789480992")
			}},
	} {
		if err := send(s, false); webhook.Classify(err) != webhook.Credentials {
			t.Errorf("%s: %v", name, err)
		}
	}
	if st := snk.Stats(); st.Accepted != 1 || st.Unauthorized != 7 {
		t.Fatalf("stats %+v", st)
	}
}

// mutatingSigner signs, then changes the digest as a proxy re-serialising the body would.
type mutatingSigner struct{ webhook.Signer }

func (m mutatingSigner) Sign(r *http.Request, body []byte) error {
	if err := m.Signer.Sign(r, body); err != nil {
		return err
	}
	r.Header.Set("Content-Digest", webhook.ContentDigest(bytes.TrimSpace(body)))
	return nil
}

// hookSigner changes the request before and after its signer signs it.
type hookSigner struct {
	webhook.Signer
	before, after func(*http.Request)
}

func (h hookSigner) Sign(r *http.Request, body []byte) error {
	if h.before != nil {
		h.before(r)
	}
	if err := h.Signer.Sign(r, body); err != nil {
		return err
	}
	if h.after != nil {
		h.after(r)
	}
	return nil
}
