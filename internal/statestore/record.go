// Package statestore keeps ucprelay's only durable state: one record per order in a
// compacted topic co-partitioned with the input (key = order id). A record holds the
// order's events (as canonical Avro single-object bytes, so any replica decodes them
// without a schema registry), the snapshot version, and the delivery marks: the version
// and stamp the partner acknowledged, and the envelope of a snapshot committed but not
// yet acknowledged (pending), which is resent after a restore, each with the digest of
// the body sent under it.
//
// Restore reads a state partition from the beginning to its end offset (read_committed)
// and keeps each order's latest record as raw bytes; only the small header is parsed, so
// restore runs at the speed of consumption and the events are decoded only when the
// order changes again.
package statestore

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// formatV1 is the first byte of every order's state record value: the record format is
// versioned. A newer format takes the next number; a relay that meets a format above its
// own parks the order (ErrNewerFormat) instead of reading it wrong (park.go).
const formatV1 = 0x01

// formatV2 is format 1 with a flags uvarint after the pending delivery (and, with
// flagDigests, the deliveries' body digests after it), written only when a flag is set (so a relay reading format 1 only parks just those orders after a
// rollback); flags 0 in format 2 is not canonical and refused as corrupt.
const formatV2 = 0x02

// flagDeferred: the order's newest snapshot waits for the clock (Record.Deferred).
const flagDeferred = 1 << 0

// flagDigests: the flags are followed by the body digests of the acknowledged and the
// pending delivery (Delivery.Digest), each as length-prefixed bytes.
const flagDigests = 1 << 1

// flagHeldSince: the flags (and digests) are followed by the time, in unix milliseconds,
// since which the order's events wait for its placement (Record.HeldSince).
const flagHeldSince = 1 << 2

// knownFlags are the flags this relay reads; a record with another is of a newer format.
const knownFlags = flagDeferred | flagDigests | flagHeldSince

// ErrCorrupt means a state record value cannot be parsed.
var ErrCorrupt = errors.New("statestore: corrupt state record")

// Delivery marks one snapshot sent (or to be sent) to the order's partner.
type Delivery struct {
	// Version is the snapshot version (the number of distinct events folded).
	Version int64
	// Stamp is the freshness stamp the partner saw (Webhook-Timestamp / created_time).
	Stamp time.Time
	// WebhookID is the snapshot's Webhook-Id.
	WebhookID string
	// Digest is the digest of the body sent under WebhookID (BodyDigest; nil in records
	// written before digests were kept): a resend whose body renders otherwise, after
	// the partner's version or the rendering changed, gets a new Webhook-Id (P10).
	Digest []byte
}

// DigestSize is the length of a body digest.
const DigestSize = 16

// BodyDigest is the digest a Delivery keeps of a body: SHA-256 truncated to DigestSize.
func BodyDigest(body []byte) []byte {
	sum := sha256.Sum256(body)
	return sum[:DigestSize]
}

// IsZero reports whether no snapshot is marked.
func (d Delivery) IsZero() bool { return d.Version == 0 }

// Record is the state of one order.
type Record struct {
	// OrderID is the key.
	OrderID string
	// Partner is the partner the order's snapshots go to.
	Partner string
	// Version is the number of distinct events held.
	Version int64
	// Acked is the newest snapshot the partner acknowledged.
	Acked Delivery
	// Pending is a snapshot committed but not yet acknowledged; resent after a restore.
	Pending Delivery
	// Deferred: the order has events newer than its pending or acknowledged snapshot
	// whose snapshot is not rendered yet, because its stamp would have run more than
	// the allowed skew ahead of the clock; it is rendered when the clock allows.
	Deferred bool
	// HeldSince is when the order's first event was stored without a placement: its
	// events wait for the placement since then, and expire as orphans after
	// state.orphan_after. Zero for a placed order.
	HeldSince time.Time
	// Events are the order's events as canonical Avro single-object bytes.
	Events [][]byte
}

// Header is the part of a record restore parses: everything but the events.
type Header struct {
	Partner   string
	Version   int64
	Acked     Delivery
	Pending   Delivery
	Deferred  bool
	HeldSince time.Time
}

// Marshal encodes the record value.
func (r *Record) Marshal() []byte {
	n := 64 + len(r.Partner) + len(r.Acked.WebhookID) + len(r.Pending.WebhookID) + len(r.Acked.Digest) + len(r.Pending.Digest)
	for _, e := range r.Events {
		n += binary.MaxVarintLen64 + len(e)
	}
	b := make([]byte, 0, n)
	var flags uint64
	if r.Deferred {
		flags |= flagDeferred
	}
	if r.Acked.Digest != nil || r.Pending.Digest != nil {
		flags |= flagDigests
	}
	if !r.HeldSince.IsZero() {
		flags |= flagHeldSince
	}
	format := byte(formatV1)
	if flags != 0 {
		format = formatV2
	}
	b = append(b, format)
	b = appendString(b, r.Partner)
	b = binary.AppendUvarint(b, uint64(r.Version))
	b = appendDelivery(b, r.Acked)
	b = appendDelivery(b, r.Pending)
	if flags != 0 {
		b = binary.AppendUvarint(b, flags)
	}
	if flags&flagDigests != 0 {
		b = appendBytes(b, r.Acked.Digest)
		b = appendBytes(b, r.Pending.Digest)
	}
	if flags&flagHeldSince != 0 {
		b = binary.AppendVarint(b, r.HeldSince.UnixMilli())
	}
	b = binary.AppendUvarint(b, uint64(len(r.Events)))
	for _, e := range r.Events {
		b = appendBytes(b, e)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendDelivery(b []byte, d Delivery) []byte {
	b = binary.AppendUvarint(b, uint64(d.Version))
	var secs int64
	if !d.Stamp.IsZero() {
		secs = d.Stamp.Unix()
	}
	b = binary.AppendVarint(b, secs)
	return appendString(b, d.WebhookID)
}

// reader parses a record value; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		r.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// uvarintLen is the length of v's canonical encoding: a longer one is corrupt, so that a
// record's bytes and its value are one to one.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: length %d past the end", ErrCorrupt, n)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) delivery() Delivery {
	d := Delivery{Version: int64(r.uvarint())}
	if secs := r.varint(); secs != 0 {
		d.Stamp = time.Unix(secs, 0).UTC()
	}
	d.WebhookID = string(r.bytes())
	return d
}

// digest reads a delivery's body digest: empty (none) or DigestSize bytes, aliasing the
// value as the events do.
func (r *reader) digest() []byte {
	b := r.bytes()
	switch {
	case r.err != nil || len(b) == 0:
		return nil
	case len(b) != DigestSize:
		r.err = fmt.Errorf("%w: a %d-byte body digest", ErrCorrupt, len(b))
		return nil
	}
	return b
}

func (r *reader) header() Header {
	switch {
	case len(r.b) == 0:
		r.err = fmt.Errorf("%w: empty", ErrCorrupt)
		return Header{}
	case r.b[0] > formatV2 && r.b[0] < formatParked:
		r.err = fmt.Errorf("%w (format %d; this one reads formats up to %d)", ErrNewerFormat, r.b[0], formatV2)
		return Header{}
	case r.b[0] != formatV1 && r.b[0] != formatV2:
		r.err = fmt.Errorf("%w: unknown format %#02x", ErrCorrupt, r.b[0])
		return Header{}
	}
	format := r.b[0]
	r.b = r.b[1:]
	h := Header{Partner: string(r.bytes()), Version: int64(r.uvarint())}
	h.Acked = r.delivery()
	h.Pending = r.delivery()
	if format == formatV2 {
		switch flags := r.uvarint(); {
		case r.err != nil:
		case flags == 0:
			r.err = fmt.Errorf("%w: format 2 without flags", ErrCorrupt)
		case flags&^knownFlags != 0:
			r.err = fmt.Errorf("%w (flags %#x; this one knows %#x)", ErrNewerFormat, flags, knownFlags)
		default:
			h.Deferred = flags&flagDeferred != 0
			if flags&flagDigests != 0 {
				h.Acked.Digest, h.Pending.Digest = r.digest(), r.digest()
				if r.err == nil && h.Acked.Digest == nil && h.Pending.Digest == nil {
					r.err = fmt.Errorf("%w: the digests flag without a digest", ErrCorrupt)
				}
			}
			if flags&flagHeldSince != 0 {
				h.HeldSince = time.UnixMilli(r.varint()).UTC()
			}
		}
	}
	return h
}

// HeldSince is the HeldSince of a state record value: zero for a placed order, a
// tombstone, a marker or a value that does not parse.
func HeldSince(value []byte) time.Time {
	if len(value) == 0 || value[0] != formatV2 {
		return time.Time{} // only format 2 has flags
	}
	h, err := ParseHeader(value)
	if err != nil {
		return time.Time{}
	}
	return h.HeldSince
}

// ParseHeader parses everything but the events.
func ParseHeader(value []byte) (Header, error) {
	r := reader{b: value}
	h := r.header()
	return h, r.err
}

// Unmarshal parses a whole record value. The events and digests alias value.
func Unmarshal(orderID string, value []byte) (*Record, error) {
	r := reader{b: value}
	h := r.header()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: %d events in %d bytes", ErrCorrupt, n, len(r.b))
	}
	rec := &Record{OrderID: orderID, Partner: h.Partner, Version: h.Version, Acked: h.Acked, Pending: h.Pending, Deferred: h.Deferred, HeldSince: h.HeldSince}
	for i := uint64(0); i < n && r.err == nil; i++ {
		rec.Events = append(rec.Events, r.bytes())
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("order %s: %w", orderID, r.err)
	}
	return rec, nil
}
