package config

import (
	"fmt"

	"github.com/ucprelay/ucprelay/pkg/ucp"
)

// validateSigning checks a partner's signing keys: one key_file with its key_id, or keys
// with distinct kids and key_id naming the one that signs.
func validateSigning(bad func(key, format string, args ...any), key string, p Partner) {
	sg := p.Signing
	if sg.KeyFile != "" && len(sg.Keys) > 0 {
		bad(key, "set key_file (one key) or keys (several), not both")
		return
	}
	if len(sg.Keys) > 0 && sg.Alg != "" {
		bad(key+".alg", "with keys, set alg on each key")
	}
	if len(sg.Keys) == 0 && sg.KeyFile == "" && sg.KeyID == "" {
		checkAlg(bad, key+".alg", p, sg.Alg)
		return
	}
	if sg.KeyID == "" {
		bad(key+".key_id", "name the kid of the key that signs")
	}
	if len(sg.Keys) == 0 {
		if sg.KeyFile == "" {
			bad(key, "set both key_file and key_id")
		}
		checkAlg(bad, key+".alg", p, sg.Alg)
		return
	}
	seen := map[string]bool{}
	for i, k := range sg.Keys {
		at := fmt.Sprintf("%s.keys[%d]", key, i)
		switch {
		case k.KeyID == "":
			bad(at+".key_id", "every key needs its kid")
		case seen[k.KeyID]:
			bad(at+".key_id", "kid %q is listed twice", k.KeyID)
		}
		seen[k.KeyID] = true
		if k.KeyFile == "" {
			bad(at+".key_file", "every key needs its file")
		}
		checkAlg(bad, at+".alg", p, k.Alg)
	}
	if sg.KeyID != "" && !seen[sg.KeyID] {
		bad(key+".key_id", "%q is none of the keys' kids", sg.KeyID)
	}
}

// checkAlg checks a signing algorithm against the partner's version.
func checkAlg(bad func(key, format string, args ...any), key string, p Partner, alg string) {
	switch alg {
	case "", AlgES256:
	case AlgEdDSA:
		if p.UCPVersion != "" && p.UCPVersion != string(ucp.V20260408) {
			bad(key, "EdDSA signs 2026-04-08 requests (RFC 9421) only; %s takes a detached JWS with ES256", p.UCPVersion)
		}
	default:
		bad(key, "%q: want ES256 or EdDSA", alg)
	}
}
