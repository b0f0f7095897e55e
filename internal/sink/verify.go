package sink

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// RFC9421Verifier checks UCP 2026-04-08 request signatures as a partner would: the
// Content-Digest matches the body, the signature covers at least @method, @authority,
// @path, webhook-id, webhook-timestamp, content-digest and content-type (and @query when
// there is one), its keyid names a known key, and the signature verifies over the
// signature base: ES256 (raw r||s) for a P-256 key, Ed25519 for an EdDSA one.
type RFC9421Verifier struct {
	// Keys are the merchant's P-256 public keys by kid.
	Keys map[string]*ecdsa.PublicKey
	// EdKeys are the merchant's Ed25519 public keys by kid.
	EdKeys map[string]ed25519.PublicKey
	// MaxAge rejects a signature whose created parameter is older. Zero: no limit.
	MaxAge time.Duration
}

var required = []string{"@method", "@authority", "@path", "webhook-id", "webhook-timestamp", "content-digest", "content-type"}

// Verify implements [Verifier].
func (v *RFC9421Verifier) Verify(r *http.Request, body []byte) error {
	if got := r.Header.Get("Content-Digest"); got != webhook.ContentDigest(body) {
		return fmt.Errorf("digest_mismatch: Content-Digest %q does not match the body", got)
	}
	inputs, err := httpsfv.UnmarshalDictionary(r.Header.Values("Signature-Input"))
	if err != nil {
		return fmt.Errorf("signature_invalid: Signature-Input: %w", err)
	}
	sigs, err := httpsfv.UnmarshalDictionary(r.Header.Values("Signature"))
	if err != nil {
		return fmt.Errorf("signature_invalid: Signature: %w", err)
	}
	names := inputs.Names()
	if len(names) == 0 {
		return errors.New("signature_missing: no Signature-Input")
	}
	label := names[0]
	m, _ := inputs.Get(label)
	inner, ok := m.(httpsfv.InnerList)
	if !ok {
		return errors.New("signature_invalid: Signature-Input member is not an inner list")
	}
	var components []string
	for _, it := range inner.Items {
		s, ok := it.Value.(string)
		if !ok {
			return errors.New("signature_invalid: a covered component is not a string")
		}
		components = append(components, s)
	}
	need := required
	if r.URL.RawQuery != "" {
		need = append(need[:len(need):len(need)], "@query")
	}
	for _, c := range need {
		if !contains(components, c) {
			return fmt.Errorf("signature_invalid: %q is not covered", c)
		}
	}
	kidV, _ := inner.Params.Get("keyid")
	kid, _ := kidV.(string)
	key, ok := v.Keys[kid]
	edKey, isEd := v.EdKeys[kid]
	if !ok && !isEd {
		return fmt.Errorf("key_not_found: keyid %q", kid)
	}
	if v.MaxAge > 0 {
		createdV, _ := inner.Params.Get("created")
		created, _ := createdV.(int64)
		if time.Since(time.Unix(created, 0)) > v.MaxAge {
			return fmt.Errorf("signature_expired: created %d", created)
		}
	}
	params, err := httpsfv.Marshal(httpsfv.List{inner})
	if err != nil {
		return fmt.Errorf("signature_invalid: %w", err)
	}
	base, err := webhook.SignatureBase(r, components, params)
	if err != nil {
		return fmt.Errorf("signature_invalid: %w", err)
	}
	sm, ok := sigs.Get(label)
	if !ok {
		return fmt.Errorf("signature_missing: no Signature %q", label)
	}
	item, ok := sm.(httpsfv.Item)
	raw, isBytes := item.Value.([]byte)
	if !ok || !isBytes || len(raw) != 64 {
		return errors.New("signature_invalid: want a 64-byte signature byte sequence")
	}
	if isEd {
		if !ed25519.Verify(edKey, []byte(base), raw) {
			return errors.New("signature_invalid: Ed25519 signature does not verify")
		}
		return nil
	}
	sum := sha256.Sum256([]byte(base))
	if !ecdsa.Verify(key, sum[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
		return errors.New("signature_invalid: ES256 signature does not verify")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// PublicKeys are a merchant's public signing keys by kid.
type PublicKeys struct {
	EC map[string]*ecdsa.PublicKey  // P-256 (ES256)
	Ed map[string]ed25519.PublicKey // Ed25519 (EdDSA)
}

// ParsePublicKeys reads the merchant's public signing keys: one JWK (as `ucprelay keys
// generate` prints it), a JWK set ({"keys": [...]}, as a newer UCP profile publishes
// them), or a UCP profile's signing_keys object ({"signing_keys": [...]}). Every key needs
// a kid and must be P-256 or Ed25519.
func ParsePublicKeys(data []byte) (PublicKeys, error) {
	out := PublicKeys{EC: map[string]*ecdsa.PublicKey{}, Ed: map[string]ed25519.PublicKey{}}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return PublicKeys{}, fmt.Errorf("sink: public keys: %w", err)
	}
	if sk, ok := probe["signing_keys"]; ok {
		data = []byte(`{"keys":` + string(sk) + `}`)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		return PublicKeys{}, fmt.Errorf("sink: public keys: %w", err)
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, ok := k.KeyID()
		if !ok || kid == "" {
			return PublicKeys{}, fmt.Errorf("sink: public key %d has no kid", i)
		}
		pk, err := jwk.PublicKeyOf(k)
		if err != nil {
			return PublicKeys{}, fmt.Errorf("sink: public key %q: %w", kid, err)
		}
		var ed ed25519.PublicKey
		if jwk.Export(pk, &ed) == nil && len(ed) == ed25519.PublicKeySize {
			out.Ed[kid] = ed
			continue
		}
		var pub ecdsa.PublicKey
		if err := jwk.Export(pk, &pub); err != nil || pub.Curve != elliptic.P256() {
			return PublicKeys{}, fmt.Errorf("sink: public key %q is neither a P-256 EC key nor an Ed25519 one", kid)
		}
		out.EC[kid] = &pub
	}
	if len(out.EC)+len(out.Ed) == 0 {
		return PublicKeys{}, errors.New("sink: no public keys")
	}
	return out, nil
}
