// Package avrocodec decodes and encodes order-domain events (pkg/orderevents) as Avro,
// with the schemas of package avro as the reader's view.
//
// Each record's framing is detected from its first bytes: the Confluent wire format
// (0x00 + 4-byte big-endian schema id, the writer schema fetched from a
// Confluent-compatible schema registry with franz-go's sr client and cached) or Avro
// single-object encoding (0xC3 0x01 + 8-byte little-endian CRC-64-AVRO fingerprint, the
// writer schema looked up among the known schemas). The datum is decoded with the
// writer's schema and mapped onto Go values by field name, so producers on an older or
// newer compatible schema are read correctly. Failures are [*DecodeError]s that carry a
// stable dead-letter reason.
package avrocodec

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Registry is the part of *sr.Client the codec uses.
type Registry interface {
	SchemaByID(ctx context.Context, id int) (sr.Schema, error)
	RegisterSchema(ctx context.Context, subject string, s sr.Schema, id, version int) (int, error)
}

// Codec decodes and encodes order events. Safe for concurrent use.
type Codec struct {
	reg    Registry
	own    *goavro.Codec // the schema events are stored with: the newest of history
	byFP   map[uint64]*goavro.Codec
	mu     sync.RWMutex
	byID   map[int]*goavro.Codec
	regIDs map[string]int // subject → id of our schema
	// history are the versions of avro.OrderEvent this codec knows; own is the last.
	history []avro.Version
	// direct: events are written by appendEvent (encode.go), which writes what own's
	// goavro codec writes; header is own's single-object header.
	direct bool
	header []byte
}

// Option configures a Codec.
type Option func(*Codec) error

// WithRegistry resolves Confluent schema ids through reg. Default: none, and records in
// the Confluent wire format fail with [ReasonRegistryNotConfigured] (permanent).
func WithRegistry(reg Registry) Option {
	return func(c *Codec) error { c.reg = reg; return nil }
}

// WithKnownSchemas adds writer schemas recognised by fingerprint in single-object
// encoding besides the shipped versions of avro.OrderEvent, e.g. a producer's own
// compatible variant. Default: the shipped versions only.
func WithKnownSchemas(schemas ...string) Option {
	return func(c *Codec) error {
		for _, s := range schemas {
			wc, err := goavro.NewCodec(s)
			if err != nil {
				return fmt.Errorf("avrocodec: known schema: %w", err)
			}
			c.byFP[wc.Rabin] = wc
		}
		return nil
	}
}

// Limits on what one record may make goavro allocate. goavro sizes an array's slice by
// the block count the bytes announce (up to MaxInt32 by default), so a few corrupt bytes
// could make it allocate gigabytes and stall a partition for seconds (found by
// FuzzDecode). No order event has anywhere near 65536 items in one array or a 16 MiB
// string; a record announcing more is corrupt and dead-lettered.
const (
	maxBlockCount = 1 << 16
	maxBlockSize  = 16 << 20
)

func init() {
	goavro.MaxBlockCount = maxBlockCount
	goavro.MaxBlockSize = maxBlockSize
}

// AsVersion makes the codec the one of the relay that shipped version n of
// avro.OrderEvent (avro.History): it stores events with that version and knows only the
// versions up to it, as that relay did. For tests of rolling updates and rollbacks.
// Default: the current version, knowing every version before it.
func AsVersion(n int) Option {
	return func(c *Codec) error {
		h := avro.History()
		if n < 1 || n > len(h) {
			return fmt.Errorf("avrocodec: no version %d of the schema (1..%d)", n, len(h))
		}
		c.history = h[:n]
		return nil
	}
}

// New returns a Codec. It decodes single-object records written with any version of
// avro.OrderEvent ever shipped (avro.History) and stores events with the newest.
func New(opts ...Option) (*Codec, error) {
	c := &Codec{byFP: map[uint64]*goavro.Codec{}, byID: map[int]*goavro.Codec{}, regIDs: map[string]int{}, history: avro.History()}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	for _, v := range c.history {
		wc, err := goavro.NewCodec(v.Schema)
		if err != nil {
			return nil, fmt.Errorf("avrocodec: embedded schema %s: %w", v.File, err)
		}
		c.byFP[wc.Rabin] = wc
		c.own = wc
	}
	c.header, c.direct = soeHeader(c.own), writerAgrees(c.own)
	return c, nil
}

const (
	confluentMagic = 0x00
	soeMagic0      = 0xC3
	soeMagic1      = 0x01
)

// Decode turns a record value into a validated event.
func (c *Codec) Decode(ctx context.Context, value []byte) (ev orderevents.Event, err error) {
	defer recoverDecode(&err)
	_, native, err := c.native(ctx, value)
	if err != nil {
		return ev, err
	}
	return fromNative(native)
}

// recoverDecode turns a panic while decoding into a dead-letter reason: goavro guards its
// own decoding, but a bug in ours must never take the relay down with one bad record.
// Deferred by every decoding entry point.
func recoverDecode(err *error) {
	if r := recover(); r != nil {
		*err = decodeErr(ReasonCorruptPayload, "panic while decoding: %v", r)
	}
}

// native decodes a record value with its writer's schema into goavro's native form.
func (c *Codec) native(ctx context.Context, value []byte) (*goavro.Codec, any, error) {
	wc, body, err := c.writerCodec(ctx, value)
	if err != nil {
		return nil, nil, err
	}
	native, rest, err := wc.NativeFromBinary(body)
	if err != nil {
		return nil, nil, decodeErr(ReasonCorruptPayload, "%v", err)
	}
	if len(rest) != 0 {
		return nil, nil, decodeErr(ReasonCorruptPayload, "%d bytes after the datum", len(rest))
	}
	return wc, native, nil
}

// Canonical reports whether value is already what [Codec.EncodeSingleObject] would
// store: Avro single-object encoding with the codec's own (current) schema. Such a value
// that [Codec.Decode] accepted can be kept as it is instead of being encoded again.
func (c *Codec) Canonical(value []byte) bool {
	return len(value) >= 10 && value[0] == soeMagic0 && value[1] == soeMagic1 &&
		binary.LittleEndian.Uint64(value[2:10]) == c.own.Rabin
}

func (c *Codec) writerCodec(ctx context.Context, value []byte) (*goavro.Codec, []byte, error) {
	switch {
	case len(value) >= 5 && value[0] == confluentMagic:
		id := int(binary.BigEndian.Uint32(value[1:5]))
		wc, err := c.byRegistryID(ctx, id)
		return wc, value[5:], err
	case len(value) >= 10 && value[0] == soeMagic0 && value[1] == soeMagic1:
		fp := binary.LittleEndian.Uint64(value[2:10])
		c.mu.RLock()
		wc, ok := c.byFP[fp]
		c.mu.RUnlock()
		if !ok {
			return nil, nil, decodeErr(ReasonUnknownFingerprint, "no known schema has fingerprint %016x", fp)
		}
		return wc, value[10:], nil
	}
	n := min(len(value), 4)
	return nil, nil, decodeErr(ReasonUnknownFraming, "value starts with % x: neither Confluent wire format nor Avro single-object encoding", value[:n])
}

func (c *Codec) byRegistryID(ctx context.Context, id int) (*goavro.Codec, error) {
	c.mu.RLock()
	wc, ok := c.byID[id]
	c.mu.RUnlock()
	if ok {
		return wc, nil
	}
	if c.reg == nil {
		return nil, decodeErr(ReasonRegistryNotConfigured, "schema id %d: the value is in the Confluent wire format and no schema_registry.url is configured", id)
	}
	s, err := c.reg.SchemaByID(ctx, id)
	if err != nil {
		return nil, decodeErr(registryReason(err), "schema id %d: %v", id, err)
	}
	if s.Type != sr.TypeAvro {
		return nil, decodeErr(ReasonUnknownSchemaID, "schema id %d is %s, not Avro", id, s.Type)
	}
	wc, err = goavro.NewCodec(s.Schema)
	if err != nil {
		return nil, decodeErr(ReasonUnknownSchemaID, "schema id %d does not parse: %v", id, err)
	}
	c.mu.Lock()
	c.byID[id] = wc
	c.mu.Unlock()
	return wc, nil
}

// registryReason classifies a registry lookup failure by what a retry can change: a 404
// is an id the registry does not have (permanent), 401/403 (credentials that an operator
// rotates), 408, 429 and 5xx are the registry's own trouble and, like a transport
// error, pass (transient); any other 4xx is a request the registry will refuse again
// (permanent).
func registryReason(err error) string {
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		return ReasonRegistryUnavailable
	}
	switch code := re.StatusCode; {
	case code == http.StatusNotFound:
		return ReasonUnknownSchemaID
	case code == http.StatusUnauthorized, code == http.StatusForbidden, code == http.StatusRequestTimeout,
		code == http.StatusTooManyRequests, code >= 500, code < 400:
		return ReasonRegistryUnavailable
	default:
		return ReasonRegistryRejected
	}
}

// Schema returns the codec's own schema: the one it encodes events with.
func (c *Codec) Schema() string { return c.own.Schema() }

// Fingerprint returns the CRC-64-AVRO fingerprint of the codec's own schema.
func (c *Codec) Fingerprint() uint64 { return c.own.Rabin }

// Learn adds a writer schema recognised by fingerprint in single-object encoding, e.g.
// one a newer relay stored events with (read from the state topic), and returns its
// fingerprint. Safe for concurrent use with Decode.
func (c *Codec) Learn(schema string) (uint64, error) {
	wc, err := goavro.NewCodec(schema)
	if err != nil {
		return 0, fmt.Errorf("avrocodec: learn schema: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byFP[wc.Rabin]; !ok {
		c.byFP[wc.Rabin] = wc
	}
	return wc.Rabin, nil
}

// EncodeSingleObject encodes ev in Avro single-object encoding with the current schema.
func (c *Codec) EncodeSingleObject(ev orderevents.Event) ([]byte, error) {
	if c.direct {
		return appendEvent(append(make([]byte, 0, 256), c.header...), ev)
	}
	n, err := toNative(ev)
	if err != nil {
		return nil, err
	}
	b, err := c.own.SingleFromNative(nil, n)
	if err != nil {
		return nil, fmt.Errorf("avrocodec: encode event %s: %w", ev.ID, err)
	}
	return b, nil
}

// Register registers the current schema under subject (once per subject and codec) and
// returns its schema id.
func (c *Codec) Register(ctx context.Context, subject string) (int, error) {
	c.mu.RLock()
	id, ok := c.regIDs[subject]
	c.mu.RUnlock()
	if ok {
		return id, nil
	}
	if c.reg == nil {
		return 0, errors.New("avrocodec: no schema registry configured")
	}
	id, err := c.reg.RegisterSchema(ctx, subject, sr.Schema{Schema: c.history[len(c.history)-1].Schema, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("avrocodec: register schema under %s: %w", subject, err)
	}
	c.mu.Lock()
	c.regIDs[subject] = id
	c.byID[id] = c.own
	c.mu.Unlock()
	return id, nil
}

// EncodeConfluent encodes ev in the Confluent wire format under schema id (see Register).
func (c *Codec) EncodeConfluent(id int, ev orderevents.Event) ([]byte, error) {
	n, err := toNative(ev)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 5, 256)
	binary.BigEndian.PutUint32(buf[1:5], uint32(id))
	b, err := c.own.BinaryFromNative(buf, n)
	if err != nil {
		return nil, fmt.Errorf("avrocodec: encode event %s: %w", ev.ID, err)
	}
	return b, nil
}

// DecodeJSON reads an event from its Avro JSON encoding (the form [Codec.EncodeJSON]
// writes) and validates it like [Codec.Decode].
func (c *Codec) DecodeJSON(text []byte) (orderevents.Event, error) {
	native, rest, err := c.own.NativeFromTextual(text)
	if err != nil {
		return orderevents.Event{}, decodeErr(ReasonCorruptPayload, "avro json: %v", err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return orderevents.Event{}, decodeErr(ReasonCorruptPayload, "%d bytes after the event", len(rest))
	}
	return fromNative(native)
}

// EncodeJSON writes ev in the Avro JSON encoding of the current schema: a template for
// events described by hand (`ucprelay produce --file`).
func (c *Codec) EncodeJSON(ev orderevents.Event) ([]byte, error) {
	n, err := toNative(ev)
	if err != nil {
		return nil, err
	}
	b, err := c.own.TextualFromNative(nil, n)
	if err != nil {
		return nil, fmt.Errorf("avrocodec: encode event %s as json: %w", ev.ID, err)
	}
	return b, nil
}
