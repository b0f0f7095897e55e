package ucp

import (
	"errors"
	"fmt"
	"strings"
)

// Version is a UCP protocol version.
type Version string

// Supported versions.
const (
	V20260111 Version = "2026-01-11"
	V20260123 Version = "2026-01-23"
	V20260408 Version = "2026-04-08"
)

// DefaultVersion is the version of a partner's bodies when its configuration names none:
// the newest supported.
const DefaultVersion = V20260408

// alias20260101 is the version the seed documents show; it is 2026-01-11's schema.
const alias20260101 = "2026-01-01"

// ErrUnsupportedVersion means a version string names no supported UCP version.
var ErrUnsupportedVersion = errors.New("ucp: unsupported version")

// ParseVersion returns the Version named by s. "2026-01-01", the version the seed
// documents show, is 2026-01-11.
func ParseVersion(s string) (Version, error) {
	switch v := Version(strings.TrimSpace(s)); v {
	case V20260111, V20260123, V20260408:
		return v, nil
	case alias20260101:
		return V20260111, nil
	}
	return "", fmt.Errorf("%w %q (supported: %s, %s, %s; %s is read as %s)", ErrUnsupportedVersion, s, V20260408, V20260123, V20260111, alias20260101, V20260111)
}

// Supported lists the supported versions, newest first.
func Supported() []Version { return []Version{V20260408, V20260123, V20260111} }

// legacy reports whether v is a 2026-01-xx version: capabilities as an array, webhook
// envelope fields in the body, unsigned money, no currency, label or removed status.
func (v Version) legacy() bool { return v == V20260111 || v == V20260123 }
