package sink_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// FuzzSinkRequest: whatever request arrives (path, API key, freshness stamp, Webhook-Id,
// Content-Digest, Signature-Input, Signature, body), the sink answers it with a status
// of its own, never panics, and accepts only a schema-valid body with a verified
// signature and a parsable stamp.
func FuzzSinkRequest(f *testing.F) {
	v, err := ucpschema.New("2026-04-08")
	if err != nil {
		f.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := example(f, "order-created.json")
	// A correctly signed request, as the seed the fuzzer mutates from.
	r := httptest.NewRequest(http.MethodPost, "http://sink.test/webhooks/partners/google/events/order", bytes.NewReader(good))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Webhook-Id", "wh_1")
	r.Header.Set("Webhook-Timestamp", "1760000000")
	if err := (&webhook.RFC9421Signer{KeyID: "k1", Key: key, Now: func() time.Time { return time.Unix(1760000000, 0) }}).Sign(r, good); err != nil {
		f.Fatal(err)
	}
	f.Add("/webhooks/partners/google/events/order", "k", r.Header.Get("Webhook-Timestamp"), "wh_1",
		r.Header.Get("Content-Digest"), r.Header.Get("Signature-Input"), r.Header.Get("Signature"), good)
	f.Add("/webhooks/partners//events/order", "", "2026-13-45T99:00:00Z", "", "sha-256=:AAAA:", `sig1=("@method";`, "sig1=:%%:", []byte(`{"id":`))
	f.Add("/x", "k", "-1", "w", "", `sig1=();keyid="k1";created=1`, "sig1=::", []byte("null"))
	f.Fuzz(func(t *testing.T, path, apiKey, stamp, id, digest, sigInput, sig string, body []byte) {
		snk, err := sink.New(sink.Config{Validator: v, APIKey: "k",
			Verifier: &sink.RFC9421Verifier{Keys: map[string]*ecdsa.PublicKey{"k1": &key.PublicKey}}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(http.MethodPost, "http://sink.test"+path, bytes.NewReader(body))
		if err != nil {
			return // not a URL net/http would ever deliver
		}
		req.Header.Set("Content-Type", "application/json")
		for name, val := range map[string]string{"X-Goog-Api-Key": apiKey, "Webhook-Timestamp": stamp, "Webhook-Id": id,
			"Content-Digest": digest, "Signature-Input": sigInput, "Signature": sig} {
			if val != "" {
				req.Header[name] = []string{val}
			}
		}
		w := httptest.NewRecorder()
		snk.ServeHTTP(w, req)
		if seed := path == "/webhooks/partners/google/events/order" && bytes.Equal(body, good) && sigInput == r.Header.Get("Signature-Input") &&
			sig == r.Header.Get("Signature") && apiKey == "k" && digest == r.Header.Get("Content-Digest") && stamp == "1760000000" && id == "wh_1"; seed && w.Code != http.StatusOK {
			t.Fatalf("the signed seed request was refused: %d %s", w.Code, w.Body)
		}
		st := snk.Stats()
		switch {
		case w.Code == http.StatusOK && st.Accepted != 1:
			t.Fatalf("200 without an acceptance: %+v", st)
		case w.Code == http.StatusOK && v.Validate(body) != nil:
			t.Fatalf("accepted a schema-invalid body: %q", body)
		case w.Code != http.StatusOK && st.Accepted != 0:
			t.Fatalf("answered %d but counted an acceptance", w.Code)
		case w.Code < 200 || w.Code >= 600:
			t.Fatalf("status %d", w.Code)
		}
	})
}
