package webhook

import (
	"log/slog"
	"strings"
)

// Redacted is what a [Secret] prints as everywhere.
const Redacted = "[REDACTED]"

// Secret holds a credential such as an API key. It formats, marshals and logs as
// [Redacted], so it cannot leak through fmt, encoding/json or slog by accident (P7);
// [Secret.Reveal] is the one way to read it, used only where the value goes on the wire.
type Secret struct{ v string }

// NewSecret wraps a credential.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the credential. Call it only to put the value on the wire.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether no credential is set.
func (s Secret) IsZero() bool { return s.v == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, so %#v does not print it either.
func (s Secret) GoString() string { return Redacted }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// SecretName reports whether a header or query parameter of this name carries a
// credential, by its name alone: Authorization, Proxy-Authorization, Cookie and
// Set-Cookie, and every name that contains key, token, secret, password or passwd
// (case-insensitive; "Signature-Key" does, "Signature" and "Signature-Input" do not).
// Records and descriptions show such values as [Redacted].
func SecretName(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, w := range []string{"key", "token", "secret", "password", "passwd"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
