package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// signingKey is one of a partner's signing keys, read from its file.
type signingKey struct {
	config.SigningKey
	ec *ecdsa.PrivateKey
	ed ed25519.PrivateKey
}

// loadSigningKeys reads every key of a partner's signing section (key names it in
// errors): all of them, not only the one that signs, so that the next key of a rotation
// is known to parse before it is switched to.
func loadSigningKeys(key string, sg config.Signing) ([]signingKey, error) {
	var out []signingKey
	for i, k := range sg.KeySet() {
		at := key + ".key_file"
		if len(sg.Keys) > 0 {
			at = fmt.Sprintf("%s.keys[%d].key_file", key, i)
		}
		b, err := os.ReadFile(k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", at, err)
		}
		if k.KeyID == "" {
			k.KeyID = sg.KeyID // the single-key form names its kid beside key_file
		}
		if k.Alg == "" {
			k.Alg = config.AlgES256
		}
		sk := signingKey{SigningKey: k}
		switch k.Alg {
		case config.AlgEdDSA:
			if sk.ed, err = webhook.ParseEd25519Key(b); err != nil {
				return nil, fmt.Errorf("config: %s (kid %s, alg EdDSA): %w", at, k.KeyID, err)
			}
		default:
			if sk.ec, err = webhook.ParseES256Key(b); err != nil {
				return nil, fmt.Errorf("config: %s (kid %s, alg ES256): %w", at, k.KeyID, err)
			}
		}
		out = append(out, sk)
	}
	return out, nil
}

// signer is the signer of key k for a partner on version v: RFC 9421 for 2026-04-08,
// a detached JWS in Request-Signature for 2026-01-xx (ES256 only, config.Validate).
func (k signingKey) signer(v ucp.Version, profile string) webhook.Signer {
	switch {
	case k.ed != nil:
		return &webhook.RFC9421Signer{KeyID: k.KeyID, EdKey: k.ed, Profile: profile}
	case v == ucp.V20260408:
		return &webhook.RFC9421Signer{KeyID: k.KeyID, Key: k.ec, Profile: profile}
	default:
		return &webhook.DetachedJWSSigner{KeyID: k.KeyID, Key: k.ec}
	}
}

// public is the key's public JWK, as the merchant's profile publishes it.
func (k signingKey) public() (webhook.PublicJWK, error) {
	if k.ed != nil {
		return webhook.PublicJWKOfEd25519(k.ed.Public().(ed25519.PublicKey), k.KeyID)
	}
	return webhook.PublicJWKOf(&k.ec.PublicKey, k.KeyID)
}

// partnerSigner is the signer of a partner's signing section on version v (nil when
// the partner does not sign), and a note on its keys for `config check` and the log.
func partnerSigner(key string, sg config.Signing, v ucp.Version) (webhook.Signer, string, error) {
	keys, err := loadSigningKeys(key, sg)
	if err != nil || len(keys) == 0 {
		return nil, "", err
	}
	for _, k := range keys {
		if k.KeyID != sg.KeyID {
			continue
		}
		note := fmt.Sprintf("%s signing key: %s (%s, loaded from %s, key id %s)", key, webhook.Redacted, k.Alg, k.KeyFile, k.KeyID)
		if len(keys) > 1 {
			note += fmt.Sprintf("; %d keys loaded", len(keys))
		}
		return k.signer(v, sg.Profile), note, nil
	}
	return nil, "", fmt.Errorf("config: %s.key_id: %q is none of the keys' kids", key, sg.KeyID) // config.Validate refuses it first
}
