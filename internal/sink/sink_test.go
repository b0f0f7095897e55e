package sink_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/testshared"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

const key = "sink-test-key-123"

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newSink(t *testing.T, rec *syncBuf) (*sink.Sink, *httptest.Server) {
	t.Helper()
	v, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sink.Config{Validator: v, APIKey: key, KeepHistory: true}
	if rec != nil {
		cfg.Record = rec
	}
	s, err := sink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func example(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testshared.Dir(t, "ucp-examples"), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, url string, body []byte, hdr map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestSinkAcceptsValidatesAndChecksFreshness(t *testing.T) {
	t.Parallel()
	rec := &syncBuf{}
	s, srv := newSink(t, rec)
	url := srv.URL + "/webhooks/partners/p1/events/order"
	created, shipped := example(t, "order-created.json"), example(t, "partially-shipped.json")
	h := func(id, ts string) map[string]string {
		return map[string]string{"X-Goog-Api-Key": key, "Webhook-Id": id, "Webhook-Timestamp": ts, "Content-Type": "application/json"}
	}
	steps := []struct {
		name string
		url  string
		body []byte
		hdr  map[string]string
		want int
	}{
		{"created", url, created, h("ord_8F3KQ2", "1789480992"), 200},
		{"retry of created", url, created, h("ord_8F3KQ2", "1789480992"), 200},
		{"shipped, RFC 3339 stamp", url, shipped, h("ship_8F3KQ2_1", "2026-09-16T10:20:00Z"), 200},
		{"stale: older stamp", url, created, h("ord_8F3KQ2", "1789480992"), 409},
		{"stale: same stamp, other id", url, shipped, h("other", "2026-09-16T10:20:00Z"), 409},
		{"invalid body", url, []byte(`{"id":"x"}`), h("x", "1789480992"), 400},
		{"no key", url, created, map[string]string{"Webhook-Timestamp": "1"}, 401},
		{"key in query", url + "?key=" + key, example(t, "fully-delivered.json"), map[string]string{"Webhook-Id": "d", "Webhook-Timestamp": "1790262600"}, 200},
		{"wrong path", srv.URL + "/webhooks/partners/p1/events", created, h("x", "1"), 404},
	}
	for _, st := range steps {
		if got := post(t, st.url, st.body, st.hdr); got != st.want {
			t.Errorf("%s: status %d, want %d", st.name, got, st.want)
		}
	}
	got := s.Stats()
	if got.Received != 9 || got.Accepted != 4 || got.Duplicates != 1 || got.Stale != 2 || got.Invalid != 1 || got.Unauthorized != 1 {
		t.Errorf("stats %+v", got)
	}
	if d, ok := s.Latest("ord_8F3KQ2"); !ok || d.WebhookID != "d" {
		t.Errorf("latest %+v", d)
	}
	// The record file: one line per request, key redacted everywhere, body byte-identical.
	sc := bufio.NewScanner(strings.NewReader(rec.String()))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"time", "method", "path", "query", "headers", "body", "status"} {
			if _, ok := line[f]; !ok {
				t.Errorf("line %d lacks %s", n, f)
			}
		}
		if n == 1 && line["body"] != string(created) {
			t.Errorf("body not recorded byte for byte")
		}
	}
	if n != 9 {
		t.Errorf("%d record lines, want 9", n)
	}
	if strings.Contains(rec.String(), key) || !strings.Contains(rec.String(), sink.Redacted) {
		t.Error("API key not redacted in the record file")
	}
}

func TestSinkFaults(t *testing.T) {
	t.Parallel()
	s, srv := newSink(t, nil)
	url := srv.URL + "/webhooks/partners/p1/events/order"
	body := example(t, "order-created.json")
	h := map[string]string{"X-Goog-Api-Key": key, "Webhook-Id": "w", "Webhook-Timestamp": "1789480992"}
	s.Script(sink.Fault{Status: 500}, sink.Fault{Status: 429, RetryAfter: "2"}, sink.Fault{Reset: true})
	for _, want := range []int{500, 429, 0, 200} {
		if got := post(t, url, body, h); got != want {
			t.Errorf("scripted: got %d, want %d", got, want)
		}
	}
	s.StartOutage()
	if got := post(t, url, body, h); got != 503 {
		t.Errorf("outage: got %d", got)
	}
	s.EndOutage()
	if got := post(t, url, body, h); got != 200 {
		t.Errorf("after outage: got %d", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, func(st sink.Stats) bool { return st.Injected == 4 && st.Accepted == 2 }); err != nil {
		t.Fatal(err, s.Stats())
	}
}

// The record file redacts every credential a request carries, whatever its name, and
// keeps what a verifier needs (Signature, Signature-Input, Content-Digest).
func TestSinkRecordRedactsCredentials(t *testing.T) {
	t.Parallel()
	rec := &syncBuf{}
	_, srv := newSink(t, rec)
	secrets := map[string]string{
		"Authorization": "Bearer s3cret-bearer", "Proxy-Authorization": "Basic s3cret-proxy", "Cookie": "session=s3cret-cookie",
		"X-Access-Token": "s3cret-token", "X-Client-Secret": "s3cret-client", "Signature-Key": "s3cret-sigkey",
	}
	hdr := map[string]string{"X-Goog-Api-Key": key, "Webhook-Id": "w1", "Webhook-Timestamp": "1789480992",
		"Signature": "sig1=:c2lnbmF0dXJl:", "Signature-Input": `sig1=("@method");keyid="k1"`}
	for k, v := range secrets {
		hdr[k] = v
	}
	post(t, srv.URL+"/webhooks/partners/p1/events/order?apikey=s3cret-q1&access_token=s3cret-q2&key=s3cret-q3&page=2", example(t, "order-created.json"), hdr)
	var line sink.Line
	if err := json.Unmarshal([]byte(strings.TrimSpace(rec.String())), &line); err != nil {
		t.Fatalf("record %q: %v", rec.String(), err)
	}
	if strings.Contains(rec.String(), "s3cret") || strings.Contains(rec.String(), key) {
		t.Errorf("a credential in the record file:\n%s", rec.String())
	}
	for _, h := range []string{"Authorization", "Cookie", "X-Access-Token", "X-Goog-Api-Key", "Signature-Key"} {
		if got := line.Headers[h]; len(got) != 1 || got[0] != sink.Redacted {
			t.Errorf("header %s recorded as %q", h, got)
		}
	}
	if line.Headers["Signature"][0] != hdr["Signature"] || line.Headers["Signature-Input"][0] != hdr["Signature-Input"] || line.Query["page"][0] != "2" {
		t.Errorf("what a verifier needs was redacted: %+v %+v", line.Headers, line.Query)
	}
}
