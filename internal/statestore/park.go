package statestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// formatParked is the first byte of a parked order's record ('P'). Format bytes from
// formatV1+1 up to it are reserved for newer versions of the order record.
const formatParked = 0x50

// ErrNewerFormat means a state record was written by a newer ucprelay, in a format this
// one does not read: its order is parked, never dead-lettered or overwritten, until a
// relay that reads it (the newer version, after a rollback is undone) takes it over.
var ErrNewerFormat = errors.New("statestore: state record written by a newer ucprelay")

// Parked is the record of an order whose stored state could not be read: the record
// kept byte for byte, why it could not be read, and the events that arrived since (in
// canonical form, in arrival order). The events are held, never folded onto an empty
// state: that would send a partial order with reset stamps. A relay that can read the
// original again (after an upgrade, or `ucprelay state release`) folds the held events
// onto it; `ucprelay state drop` removes the order.
type Parked struct {
	// Reason is the dead-letter reason that names the problem (state_unreadable).
	Reason string
	// Error says what could not be read.
	Error string
	// Since is when the order was parked.
	Since time.Time
	// Original is the state record value that could not be read, unchanged.
	Original []byte
	// Held are the events received since, as id and canonical bytes.
	Held []HeldEvent
}

// HeldEvent is an event a parked order holds.
type HeldEvent struct {
	ID    string
	Value []byte
}

// IsParked reports whether a state record value is a parked order's.
func IsParked(value []byte) bool { return len(value) > 0 && value[0] == formatParked }

// Holds reports whether the parked order already holds an event.
func (p *Parked) Holds(id string) bool {
	for _, h := range p.Held {
		if h.ID == id {
			return true
		}
	}
	return false
}

// Marshal encodes the parked record value.
func (p *Parked) Marshal() []byte {
	n := 32 + len(p.Reason) + len(p.Error) + len(p.Original)
	for _, h := range p.Held {
		n += 2*binary.MaxVarintLen64 + len(h.ID) + len(h.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, formatParked)
	b = appendString(b, p.Reason)
	b = appendString(b, p.Error)
	b = binary.AppendVarint(b, p.Since.UnixMilli())
	b = appendBytes(b, p.Original)
	b = binary.AppendUvarint(b, uint64(len(p.Held)))
	for _, h := range p.Held {
		b = appendString(b, h.ID)
		b = appendBytes(b, h.Value)
	}
	return b
}

// UnmarshalParked parses a parked record value. The fields alias value.
func UnmarshalParked(orderID string, value []byte) (*Parked, error) {
	if !IsParked(value) {
		return nil, fmt.Errorf("order %s: %w: not a parked record", orderID, ErrCorrupt)
	}
	r := reader{b: value[1:]}
	p := &Parked{Reason: string(r.bytes()), Error: string(r.bytes())}
	if ms := r.varint(); r.err == nil {
		p.Since = time.UnixMilli(ms).UTC()
	}
	p.Original = r.bytes()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: %d held events in %d bytes", ErrCorrupt, n, len(r.b))
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		p.Held = append(p.Held, HeldEvent{ID: string(r.bytes()), Value: r.bytes()})
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("order %s: parked record: %w", orderID, r.err)
	}
	return p, nil
}
