package statestore

import (
	"encoding/binary"
	"fmt"
	"time"
)

// formatNotOurs is the first byte of a not-ours marker ('N'). It lies in the range a
// relay of format 1 or 2 takes for a newer format, so an older relay parks such an order
// (no dead letter, nothing sent) instead of reading it wrong.
const formatNotOurs = 0x4E

// NotOurs marks an order that is not the relay's: its placement named no configured
// partner (or named none, and no default_partner claims the input). Its events are not
// kept and nothing of it is ever sent; the marker only lets its later events be skipped
// (and counted) instead of held as orphans. A few dozen bytes per order.
type NotOurs struct {
	// Partner is the partner the placement named ("" when it named none).
	Partner string `json:"partner_id"`
	// Since is when the order was found not ours.
	Since time.Time `json:"since"`
}

// IsNotOurs reports whether a state record value is a not-ours marker.
func IsNotOurs(value []byte) bool { return len(value) > 0 && value[0] == formatNotOurs }

// Marshal encodes the marker.
func (n NotOurs) Marshal() []byte {
	b := make([]byte, 0, 16+len(n.Partner))
	b = append(b, formatNotOurs)
	b = appendString(b, n.Partner)
	return binary.AppendVarint(b, n.Since.UnixMilli())
}

// UnmarshalNotOurs parses a not-ours marker.
func UnmarshalNotOurs(orderID string, value []byte) (NotOurs, error) {
	if !IsNotOurs(value) {
		return NotOurs{}, fmt.Errorf("order %s: %w: not a not-ours marker", orderID, ErrCorrupt)
	}
	r := reader{b: value[1:]}
	n := NotOurs{Partner: string(r.bytes())}
	ms := r.varint()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if r.err != nil {
		return NotOurs{}, fmt.Errorf("order %s: %w", orderID, r.err)
	}
	n.Since = time.UnixMilli(ms).UTC()
	return n, nil
}
