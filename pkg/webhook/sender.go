package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultPathTemplate is the UCP order webhook path; {partner_id} is replaced by the
// endpoint's partner id. Google's host adds a version prefix ("/v1" + this).
const DefaultPathTemplate = "/webhooks/partners/{partner_id}/events/order"

// DefaultAPIKeyHeader is the header Google reads the API key from.
const DefaultAPIKeyHeader = "X-Goog-Api-Key"

// Endpoint is one partner's order webhook.
type Endpoint struct {
	// Partner is the partner id that fills {partner_id} in PathTemplate.
	Partner string
	// BaseURL is scheme and authority, optionally with a path prefix, e.g.
	// "https://shoppingdataintegration.googleapis.com/v1".
	BaseURL string
	// PathTemplate is appended to BaseURL. Default [DefaultPathTemplate].
	PathTemplate string
	// APIKey is sent in APIKeyHeader, or in the APIKeyQuery parameter when that is set.
	APIKey Secret
	// APIKeyHeader names the key's header. Default [DefaultAPIKeyHeader].
	APIKeyHeader string
	// APIKeyQuery, when set (Google accepts "key"), sends the key as this query parameter
	// instead of a header.
	APIKeyQuery string
	// Signer, when set, signs each request over its final URL, headers and body bytes.
	Signer Signer
	// Client, when set, carries this endpoint's requests instead of the Sender's shared
	// client: a partner whose certificate a private CA signed gets a transport trusting it.
	Client *http.Client
}

// URL returns the endpoint's URL without credentials: safe to log.
func (e *Endpoint) URL() (*url.URL, error) {
	if e.Partner == "" {
		return nil, errors.New("webhook: endpoint has no partner id")
	}
	base, err := url.Parse(e.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("webhook: base url of partner %q: %w", e.Partner, err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("webhook: base url of partner %q must be http(s)://host[/prefix]", e.Partner)
	}
	if base.User != nil || base.RawQuery != "" {
		return nil, fmt.Errorf("webhook: base url of partner %q must carry no user info or query; configure the key as api_key", e.Partner)
	}
	tmpl := e.PathTemplate
	if tmpl == "" {
		tmpl = DefaultPathTemplate
	}
	if !strings.Contains(tmpl, "{partner_id}") {
		return nil, fmt.Errorf("webhook: path template %q has no {partner_id}", tmpl)
	}
	u := *base
	u.Path = strings.TrimSuffix(base.Path, "/") + strings.ReplaceAll(tmpl, "{partner_id}", e.Partner)
	u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + strings.ReplaceAll(tmpl, "{partner_id}", url.PathEscape(e.Partner))
	return &u, nil
}

// Request is one POST of an order snapshot.
type Request struct {
	// Body is sent exactly as given.
	Body []byte
	// Header holds the snapshot's headers (Webhook-Id, signatures ...). Content-Type
	// defaults to application/json; the API key header is added by [Sender.Send].
	Header http.Header
}

// Response is a partner's 2xx answer.
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Duration is how long the attempt took.
	Duration time.Duration
}

// Sender posts snapshots over one shared, connection-reusing HTTP client.
type Sender struct {
	client         *http.Client
	attemptTimeout time.Duration
}

// SenderOption configures a [Sender].
type SenderOption func(*Sender)

// WithHTTPClient sets the HTTP client. Default: a client with its own transport that keeps
// up to 256 idle connections per host (one per concurrent delivery), HTTP/2 when the
// partner offers it, and system TLS roots. The Sender uses a copy of c that follows no
// redirect ([NoRedirects]); c itself is left as it is.
func WithHTTPClient(c *http.Client) SenderOption { return func(s *Sender) { s.client = c } }

// DefaultAttemptTimeout bounds one attempt unless [WithAttemptTimeout] says otherwise.
const DefaultAttemptTimeout = 10 * time.Second

// WithAttemptTimeout bounds one attempt, from dialling to the end of the answer. Default
// [DefaultAttemptTimeout]; zero keeps the default.
func WithAttemptTimeout(d time.Duration) SenderOption {
	return func(s *Sender) {
		if d != 0 {
			s.attemptTimeout = d
		}
	}
}

// NewTransport returns the default transport: keep-alive with enough idle connections per
// host for many concurrent deliveries to one partner.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = true
	return t
}

// NoRedirects returns a copy of c that follows no redirect: a 3xx comes back to the
// caller as the answer. Every client that carries a secret (an API key, a signature, the
// body of an order, registry credentials) must be one: following a 307 re-sends them to
// another host, and following a 302 turns the POST into a GET whose 200 elsewhere reads
// as the acknowledgement. c is not modified; nil stands for a zero [http.Client].
func NoRedirects(c *http.Client) *http.Client {
	var cp http.Client
	if c != nil {
		cp = *c
	}
	cp.CheckRedirect = refuseRedirect
	return &cp
}

// refuseRedirect is the CheckRedirect of [NoRedirects]: hand back the 3xx itself.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewSender returns a Sender.
func NewSender(opts ...SenderOption) (*Sender, error) {
	s := &Sender{attemptTimeout: DefaultAttemptTimeout}
	for _, o := range opts {
		o(s)
	}
	if s.client == nil {
		s.client = &http.Client{Transport: NewTransport()}
	}
	s.client = NoRedirects(s.client)
	if s.attemptTimeout <= 0 {
		return nil, errors.New("webhook: attempt timeout must be positive")
	}
	return s, nil
}

// AttemptTimeout is the bound of one attempt.
func (s *Sender) AttemptTimeout() time.Duration { return s.attemptTimeout }

// Send makes one attempt to POST req to ep. It returns the 2xx [Response], or an error
// classified by [Classify]: a [*StatusError] for any other answer, a [*TransportError]
// when no answer came. A 3xx is never followed, whatever client carries the request: it
// is a [Permanent] StatusError naming the Location host ([IsRedirect]). Errors never
// contain the API key.
func (s *Sender) Send(ctx context.Context, ep *Endpoint, req Request) (Response, error) {
	u, err := ep.URL()
	if err != nil {
		return Response{}, err
	}
	if ep.APIKeyQuery != "" && !ep.APIKey.IsZero() {
		q := u.Query()
		q.Set(ep.APIKeyQuery, ep.APIKey.Reveal())
		u.RawQuery = q.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, s.attemptTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return Response{}, fmt.Errorf("webhook: build request for partner %q: %w", ep.Partner, err)
	}
	for k, vs := range req.Header {
		hr.Header[k] = vs
	}
	if hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if ep.APIKeyQuery == "" && !ep.APIKey.IsZero() {
		name := ep.APIKeyHeader
		if name == "" {
			name = DefaultAPIKeyHeader
		}
		hr.Header.Set(name, ep.APIKey.Reveal())
	}
	if ep.Signer != nil {
		if err := ep.Signer.Sign(hr, req.Body); err != nil {
			return Response{}, fmt.Errorf("webhook: sign request for partner %q: %w", ep.Partner, err)
		}
	}
	client := s.client
	if ep.Client != nil {
		// A per-endpoint client must not follow redirects either, whoever built it.
		client = NoRedirects(ep.Client)
	}
	start := time.Now()
	resp, err := client.Do(hr)
	if err != nil {
		return Response{}, &TransportError{Op: "post to partner " + ep.Partner, Err: stripURL(err)}
	}
	defer func() { _ = resp.Body.Close() }()
	text, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorText+1))
	// Drain a little more so the connection can be reused; give up on huge answers.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Response{Status: resp.StatusCode, Duration: time.Since(start)}, nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return Response{}, &StatusError{Status: resp.StatusCode, Location: locationHost(resp, ep.APIKey)}
	}
	if rerr != nil && len(text) == 0 {
		text = []byte("(answer body unreadable: " + stripURL(rerr).Error() + ")")
	}
	return Response{}, &StatusError{
		Status:     resp.StatusCode,
		RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Text:       truncate(redactKey(strings.TrimSpace(string(text)), ep.APIKey), maxErrorText),
	}
}

// locationHost returns the host of a redirect's Location, resolved against the request
// URL, or "" when there is none or it does not parse. Only the host: the path and query
// can carry the API key (a partner redirecting http to https repeats ?key=).
func locationHost(resp *http.Response, key Secret) string {
	u, err := resp.Location()
	if err != nil || u.Host == "" {
		return ""
	}
	return truncate(redactKey(u.Host, key), 255)
}

// redactKey removes the API key from a partner's answer: a partner that echoes the
// request (its URL with ?key=, or its headers) in an error must not put the key into
// our logs and dead letters (P7).
func redactKey(text string, key Secret) string {
	if key.IsZero() {
		return text
	}
	for _, form := range []string{key.Reveal(), url.QueryEscape(key.Reveal()), url.PathEscape(key.Reveal())} {
		text = strings.ReplaceAll(text, form, Redacted)
	}
	return text
}

// stripURL removes the request URL, which can carry the API key as a query parameter,
// from net/http's errors while keeping the cause (timeout, reset ...).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var ne net.Error
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			return fmt.Errorf("timeout: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
