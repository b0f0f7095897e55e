package sink

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Line is one line of the record file (README, "Sink record file"): a public format.
type Line struct {
	Time    string              `json:"time"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   map[string][]string `json:"query"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
	Status  int                 `json:"status"`
	Error   string              `json:"error,omitempty"`
}

// redactValues copies vs, each value redacted when secret.
func redactValues(vs []string, secret bool) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		if secret {
			v = Redacted
		}
		out[i] = v
	}
	return out
}

func (s *Sink) record(at time.Time, r *http.Request, body []byte, status int, why string) {
	if s.cfg.Record == nil && s.cfg.OnRequest == nil {
		return
	}
	// Credentials are redacted: the API key header, and every header or query parameter
	// whose name says it carries one (Authorization, Cookie, *key*, *token*, *secret*).
	q := url.Values{}
	for k, vs := range r.URL.Query() {
		q[k] = redactValues(vs, webhook.SecretName(k))
	}
	h := http.Header{}
	for k, vs := range r.Header {
		h[k] = redactValues(vs, webhook.SecretName(k) || http.CanonicalHeaderKey(s.cfg.APIKeyHeader) == k)
	}
	if r.Host != "" {
		h.Set("Host", r.Host)
	}
	l := Line{
		Time: at.UTC().Format(time.RFC3339Nano), Method: r.Method, Path: r.URL.Path,
		Query: q, Headers: h, Body: string(body), Status: status, Error: why,
	}
	if s.cfg.OnRequest != nil {
		s.cfg.OnRequest(l)
	}
	if s.cfg.Record == nil {
		return
	}
	line, err := json.Marshal(l)
	if err != nil {
		return
	}
	line = append(line, '\n')
	s.recMu.Lock()
	defer s.recMu.Unlock()
	_, _ = s.cfg.Record.Write(line) // one Write per line: a crash loses at most this line
}
