package sink

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"
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

func (s *Sink) record(at time.Time, r *http.Request, body []byte, status int, why string) {
	if s.cfg.Record == nil && s.cfg.OnRequest == nil {
		return
	}
	q := url.Values{}
	for k, vs := range r.URL.Query() {
		q[k] = append([]string(nil), vs...)
	}
	if _, ok := q["key"]; ok {
		q["key"] = []string{Redacted}
	}
	h := http.Header{}
	for k, vs := range r.Header {
		h[k] = append([]string(nil), vs...)
	}
	if h.Get(s.cfg.APIKeyHeader) != "" {
		h.Set(s.cfg.APIKeyHeader, Redacted)
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
