package webhook

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// Signer signs a request just before it is sent. It sees the final URL (with the API
// key parameter, if the key goes in the query), every header, and the exact body bytes.
type Signer interface {
	Sign(r *http.Request, body []byte) error
}

// ContentDigest returns the RFC 9530 Content-Digest of body: sha-256 over the exact
// bytes, standard padded base64, as a structured field.
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// RFC9421Signer signs UCP 2026-04-08 webhook requests with HTTP Message Signatures
// (RFC 9421) and ES256: it sets Content-Digest, UCP-Agent, Signature-Input and Signature.
// The covered components are the ones UCP requires: "@method", "@authority", "@path",
// "@query" when there is a query string, "ucp-agent" when the header is sent,
// "webhook-id" and "webhook-timestamp" when those headers are set (a delivery's identity:
// a captured body cannot be replayed under another id or time), and "content-digest" and
// "content-type" for a body. No alg parameter is sent (the key's JWK
// names it); an ES256 signature is the raw 64-byte r||s, not DER; an Ed25519 one (EdKey
// set instead of Key) the 64 bytes of RFC 8032 over the signature base.
type RFC9421Signer struct {
	// KeyID is the kid of the key in the merchant's /.well-known/ucp signing_keys.
	KeyID string
	// Key is the P-256 private key (ES256).
	Key *ecdsa.PrivateKey
	// EdKey is the Ed25519 private key (EdDSA), used instead of Key when set.
	EdKey ed25519.PrivateKey
	// Profile is the merchant's profile URL sent in UCP-Agent, e.g.
	// https://shop.example.com/.well-known/ucp. Empty: no UCP-Agent header.
	Profile string
	// Label names the signature in the dictionaries. Default "sig1".
	Label string
	// Now gives the created parameter. Default time.Now.
	Now func() time.Time
	// Rand is the source of the signature's nonce. Default crypto/rand.
	Rand io.Reader
}

// Sign implements [Signer].
func (s *RFC9421Signer) Sign(r *http.Request, body []byte) error {
	switch {
	case len(s.EdKey) == ed25519.PrivateKeySize:
	case s.EdKey != nil:
		return errors.New("webhook: RFC 9421 signing: not an Ed25519 private key")
	case s.Key == nil || s.Key.Curve != elliptic.P256():
		return errors.New("webhook: RFC 9421 signing needs a P-256 key (ES256) or an Ed25519 key (EdDSA)")
	}
	if s.KeyID == "" {
		return errors.New("webhook: RFC 9421 signing needs a key id")
	}
	label := s.Label
	if label == "" {
		label = "sig1"
	}
	components := []string{"@method", "@authority", "@path"}
	if r.URL.RawQuery != "" {
		components = append(components, "@query")
	}
	if s.Profile != "" {
		agent := httpsfv.NewDictionary()
		agent.Add("profile", httpsfv.NewItem(s.Profile))
		v, err := httpsfv.Marshal(agent)
		if err != nil {
			return fmt.Errorf("webhook: UCP-Agent: %w", err)
		}
		r.Header.Set("UCP-Agent", v)
		components = append(components, "ucp-agent")
	}
	for _, h := range []string{"Webhook-Id", "Webhook-Timestamp"} {
		if r.Header.Get(h) != "" {
			components = append(components, strings.ToLower(h))
		}
	}
	if body != nil {
		r.Header.Set("Content-Digest", ContentDigest(body))
		if r.Header.Get("Content-Type") == "" {
			r.Header.Set("Content-Type", "application/json")
		}
		components = append(components, "content-digest", "content-type")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	items := make([]httpsfv.Item, len(components))
	for i, c := range components {
		items[i] = httpsfv.NewItem(c)
	}
	params := httpsfv.NewParams()
	params.Add("created", now().Unix())
	params.Add("keyid", s.KeyID)
	inner := httpsfv.InnerList{Items: items, Params: params}
	sigParams, err := httpsfv.Marshal(httpsfv.List{inner})
	if err != nil {
		return fmt.Errorf("webhook: signature params: %w", err)
	}
	base, err := SignatureBase(r, components, sigParams)
	if err != nil {
		return err
	}
	var sig []byte
	if s.EdKey != nil {
		sig = ed25519.Sign(s.EdKey, []byte(base))
	} else if sig, err = signES256(s.Rand, s.Key, []byte(base)); err != nil {
		return err
	}
	input := httpsfv.NewDictionary()
	input.Add(label, inner)
	inputText, err := httpsfv.Marshal(input)
	if err != nil {
		return fmt.Errorf("webhook: Signature-Input: %w", err)
	}
	out := httpsfv.NewDictionary()
	out.Add(label, httpsfv.NewItem(sig))
	sigText, err := httpsfv.Marshal(out)
	if err != nil {
		return fmt.Errorf("webhook: Signature: %w", err)
	}
	r.Header.Set("Signature-Input", inputText)
	r.Header.Set("Signature", sigText)
	return nil
}

// SignatureBase builds the RFC 9421 signature base of r for the covered components and
// the serialized signature parameters: one `"name": value` line per component, then the
// `"@signature-params"` line, without a trailing newline.
func SignatureBase(r *http.Request, components []string, sigParams string) (string, error) {
	var b strings.Builder
	for _, c := range components {
		v, err := componentValue(r, c)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%q: %s\n", c, v)
	}
	fmt.Fprintf(&b, "%q: %s", "@signature-params", sigParams)
	return b.String(), nil
}

func componentValue(r *http.Request, c string) (string, error) {
	switch c {
	case "@method":
		return strings.ToUpper(r.Method), nil
	case "@authority":
		host := r.Host
		if host == "" {
			host = r.URL.Host
		}
		host = strings.ToLower(host)
		switch {
		case r.URL.Scheme == "https" && strings.HasSuffix(host, ":443"):
			host = strings.TrimSuffix(host, ":443")
		case r.URL.Scheme == "http" && strings.HasSuffix(host, ":80"):
			host = strings.TrimSuffix(host, ":80")
		}
		return host, nil
	case "@path":
		p := r.URL.EscapedPath()
		if p == "" {
			p = "/"
		}
		return p, nil
	case "@query":
		return "?" + r.URL.RawQuery, nil
	}
	if strings.HasPrefix(c, "@") {
		return "", fmt.Errorf("webhook: unsupported derived component %q", c)
	}
	vs := append([]string(nil), r.Header.Values(c)...)
	if len(vs) == 0 {
		return "", fmt.Errorf("webhook: covered header %q is not set", c)
	}
	for i := range vs {
		vs[i] = strings.TrimSpace(vs[i])
	}
	return strings.Join(vs, ", "), nil
}

// signES256 returns the raw r||s ES256 signature of msg, each half left-padded to 32 bytes.
func signES256(rnd io.Reader, key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	sum := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rnd, key, sum[:])
	if err != nil {
		return nil, fmt.Errorf("webhook: ES256: %w", err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// ParseES256PEM reads a P-256 private key from PEM (PKCS #8 "PRIVATE KEY" or SEC 1
// "EC PRIVATE KEY").
func ParseES256PEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("webhook: no PEM block in the signing key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("webhook: signing key PEM block %q: want PRIVATE KEY or EC PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: signing key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("webhook: signing key is not a P-256 EC key (ES256)")
	}
	return ec, nil
}
