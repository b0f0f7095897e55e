package avrocodec_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

func registry(t *testing.T) *sr.Client {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func sample() orderevents.Event {
	return gen.Placed("ord_1", "google", 7, time.Date(2026, 9, 15, 14, 3, 12, 0, time.UTC))
}

func TestRoundTripBothFramings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := registry(t)
	enc, err := avrocodec.New(avrocodec.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := avrocodec.New(avrocodec.WithRegistry(reg)) // a fresh cache: ids resolved through the registry
	if err != nil {
		t.Fatal(err)
	}
	ev := sample()
	id, err := enc.Register(ctx, avro.Subject("orders"))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := enc.Register(ctx, avro.Subject("orders")); again != id {
		t.Fatalf("register not idempotent: %d then %d", id, again)
	}
	conf, err := enc.EncodeConfluent(id, ev)
	if err != nil {
		t.Fatal(err)
	}
	soe, err := enc.EncodeSingleObject(ev)
	if err != nil {
		t.Fatal(err)
	}
	if conf[0] != 0 || binary.BigEndian.Uint32(conf[1:5]) != uint32(id) || soe[0] != 0xC3 || soe[1] != 0x01 {
		t.Fatalf("framing: % x / % x", conf[:5], soe[:2])
	}
	for name, b := range map[string][]byte{"confluent": conf, "single-object": soe} {
		got, err := dec.Decode(ctx, b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Fatalf("%s: round trip changed the event:\n got %+v\nwant %+v", name, got, ev)
		}
	}
}

// A producer on a newer schema (an extra optional field, an extra payload kind) is read
// by field name; its unknown kind is a typed error, not a crash.
func TestNewerWriterSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := registry(t)
	v2 := newerSchema(t)
	id, err := reg.RegisterSchema(ctx, "orders-value", sr.Schema{Schema: v2, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	w, err := avrocodec.New(avrocodec.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	// Encode with the v2 schema by hand through a codec that knows it.
	ev := sample()
	good, err := encodeWith(v2, id, ev, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.Decode(ctx, good)
	if err != nil {
		t.Fatalf("newer writer: %v", err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Fatalf("newer writer changed the event")
	}
	unknown, err := encodeWith(v2, id, ev, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Decode(ctx, unknown)
	if avrocodec.ReasonOf(err) != avrocodec.ReasonUnknownEventType {
		t.Fatalf("unknown branch: want %s, got %v", avrocodec.ReasonUnknownEventType, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := registry(t)
	c, err := avrocodec.New(avrocodec.WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	noReg, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	soe, _ := c.EncodeSingleObject(sample())
	id, _ := c.Register(ctx, "orders-value")
	conf, _ := c.EncodeConfluent(id, sample())
	bad := sample()
	bad.Payload = orderevents.OrderPlaced{CheckoutID: "c", PermalinkURL: "https://x"}
	invalid, _ := c.EncodeSingleObject(bad)
	unknownFP := append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, soe[10:]...)
	unknownID := append([]byte{0, 0, 0, 0x30, 0x39}, conf[5:]...)
	cases := []struct {
		name      string
		c         *avrocodec.Codec
		in        []byte
		reason    string
		transient bool
	}{
		{"empty", c, nil, avrocodec.ReasonUnknownFraming, false},
		{"json", c, []byte(`{"id":1}`), avrocodec.ReasonUnknownFraming, false},
		{"unknown fingerprint", c, unknownFP, avrocodec.ReasonUnknownFingerprint, false},
		{"unknown schema id", c, unknownID, avrocodec.ReasonUnknownSchemaID, false},
		{"truncated", c, soe[:len(soe)/2], avrocodec.ReasonCorruptPayload, false},
		{"trailing bytes", c, append(append([]byte{}, soe...), 0, 0), avrocodec.ReasonCorruptPayload, false},
		{"invalid event", c, invalid, avrocodec.ReasonInvalidEvent, false},
		{"no registry", noReg, conf, avrocodec.ReasonRegistryNotConfigured, false},
	}
	for _, tc := range cases {
		_, err := tc.c.Decode(ctx, tc.in)
		var de *avrocodec.DecodeError
		if !errors.As(err, &de) || de.Reason() != tc.reason || de.Transient() != tc.transient {
			t.Errorf("%s: want %s (transient %v), got %v", tc.name, tc.reason, tc.transient, err)
		}
	}
	// A registry that cannot be reached is transient: the record must not be dead-lettered.
	deadReg, _ := sr.NewClient(sr.URLs("http://127.0.0.1:1"))
	c2, _ := avrocodec.New(avrocodec.WithRegistry(deadReg))
	if _, err := c2.Decode(ctx, conf); avrocodec.ReasonOf(err) != avrocodec.ReasonRegistryUnavailable {
		t.Errorf("unreachable registry: got %v", err)
	}
}

// A registry's answer is classified by what a retry can change: only the registry's own
// trouble (and credentials an operator rotates) is transient; an id it does not have or a
// request it refuses is permanent, so the record is dead-lettered and nothing waits.
func TestRegistryAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	own, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := own.EncodeConfluent(7, sample())
	cases := []struct {
		status    int
		reason    string
		transient bool
	}{
		{http.StatusNotFound, avrocodec.ReasonUnknownSchemaID, false},
		{http.StatusUnauthorized, avrocodec.ReasonRegistryUnavailable, true},
		{http.StatusForbidden, avrocodec.ReasonRegistryUnavailable, true},
		{http.StatusRequestTimeout, avrocodec.ReasonRegistryUnavailable, true},
		{http.StatusTooManyRequests, avrocodec.ReasonRegistryUnavailable, true},
		{http.StatusInternalServerError, avrocodec.ReasonRegistryUnavailable, true},
		{http.StatusServiceUnavailable, avrocodec.ReasonRegistryUnavailable, true},
		{http.StatusBadRequest, avrocodec.ReasonRegistryRejected, false},
		{http.StatusUnprocessableEntity, avrocodec.ReasonRegistryRejected, false},
	}
	for _, tc := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			w.WriteHeader(tc.status)
			fmt.Fprintf(w, `{"error_code":%d,"message":"answer %d"}`, tc.status*100+1, tc.status)
		}))
		reg, err := sr.NewClient(sr.URLs(srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		c, err := avrocodec.New(avrocodec.WithRegistry(reg))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Decode(ctx, conf)
		srv.Close()
		var de *avrocodec.DecodeError
		if !errors.As(err, &de) || de.Reason() != tc.reason || de.Transient() != tc.transient {
			t.Errorf("registry answers %d: want %s (transient %v), got %v", tc.status, tc.reason, tc.transient, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	c, err := avrocodec.New()
	if err != nil {
		f.Fatal(err)
	}
	soe, _ := c.EncodeSingleObject(sample())
	f.Add(soe)
	f.Add(soe[:20])
	f.Add([]byte{0, 0, 0, 0, 1, 2})
	f.Add([]byte{0xC3, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := c.Decode(context.Background(), b)
		if err == nil {
			if verr := ev.Validate(); verr != nil {
				t.Fatalf("decoded an invalid event: %v", verr)
			}
			return
		}
		if avrocodec.ReasonOf(err) == "" {
			t.Fatalf("untyped error: %v", err)
		}
	})
}

// newerSchema is avro.OrderEvent as a newer producer has it: one more optional field
// and one more payload kind at the end of the union.
func newerSchema(t *testing.T) string {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal([]byte(avro.OrderEvent), &s); err != nil {
		t.Fatal(err)
	}
	fields := s["fields"].([]any)
	for _, f := range fields {
		if f := f.(map[string]any); f["name"] == "payload" {
			f["type"] = append(f["type"].([]any), map[string]any{"type": "record", "name": "GiftWrapped",
				"fields": []any{map[string]any{"name": "note", "type": "string"}}})
		}
	}
	s["fields"] = append(fields, map[string]any{"name": "tenant", "type": []any{"null", "string"}, "default": nil})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A few corrupt bytes announcing an array of 2^30 items made goavro allocate gigabytes
// and take 16 s (FuzzDecode found it): the block count limit now refuses it as corrupt.
func TestDecodeRefusesHugeBlockCounts(t *testing.T) {
	t.Parallel()
	c, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	in := []byte("\xc3\x01.\xe0\x1cl\x14\xe6\xe5\xcb\n00000\n000000\x12000000000\x02\f000000\x00\x00\x00\x00\x00\x00\x00\x00\x8e\x8e\x8ey")
	_, err = c.Decode(context.Background(), in)
	if avrocodec.ReasonOf(err) != avrocodec.ReasonCorruptPayload || !strings.Contains(err.Error(), "exceeds MaxBlockCount") {
		t.Fatalf("got %v, want corrupt_payload from the block count limit", err)
	}
}

// Canonical is true only for what EncodeSingleObject writes: the relay stores such a
// received value as it is; any other framing or schema is decoded and encoded again.
func TestCanonical(t *testing.T) {
	t.Parallel()
	c, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	soe, err := c.EncodeSingleObject(sample())
	if err != nil {
		t.Fatal(err)
	}
	conf, err := c.EncodeConfluent(7, sample())
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte(nil), soe...)
	other[5] ^= 0xff // another schema's fingerprint
	for name, tc := range map[string]struct {
		v    []byte
		want bool
	}{"single-object, own schema": {soe, true}, "confluent": {conf, false}, "other fingerprint": {other, false}, "short": {soe[:9], false}, "empty": {nil, false}} {
		if got := c.Canonical(tc.v); got != tc.want {
			t.Errorf("%s: Canonical %v, want %v", name, got, tc.want)
		}
	}
}

// Every shipped version of the schema decodes with the current codec (a rolling update
// meets events stored by an older relay), and an older relay reads events the current one
// stored once it has learned the newer schema (a rollback: the schema comes from the
// state topic).
func TestEveryShippedVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	placed := gen.Placed("ord_v", "google", 1, at)
	pl := placed.Payload.(orderevents.OrderPlaced)
	pl.Attribution = nil // not in the first versions: their events never carry it
	placed.Payload = pl
	cur, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	h := avro.History()
	for _, v := range h {
		old, err := avrocodec.New(avrocodec.AsVersion(v.N))
		if err != nil {
			t.Fatal(err)
		}
		b, err := old.EncodeSingleObject(placed)
		if err != nil {
			t.Fatalf("%s: encode: %v", v.File, err)
		}
		if fp := binary.LittleEndian.Uint64(b[2:10]); fp != old.Fingerprint() || (v.N < len(h)) == (fp == cur.Fingerprint()) {
			t.Fatalf("%s: stored under fingerprint %x (own %x, current %x)", v.File, fp, old.Fingerprint(), cur.Fingerprint())
		}
		got, err := cur.Decode(ctx, b)
		if err != nil {
			t.Fatalf("%s: the current codec does not decode it: %v", v.File, err)
		}
		if !reflect.DeepEqual(got, placed) {
			t.Errorf("%s: decoded %+v, want %+v", v.File, got, placed)
		}
		if v.N == len(h) {
			continue
		}
		// Back: the older relay meets an event the current one stored.
		b, err = cur.EncodeSingleObject(placed)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.Decode(ctx, b); avrocodec.ReasonOf(err) != avrocodec.ReasonUnknownFingerprint {
			t.Fatalf("%s: an unknown newer schema decoded or failed otherwise: %v", v.File, err)
		}
		if _, err := old.Learn(cur.Schema()); err != nil {
			t.Fatal(err)
		}
		if got, err := old.Decode(ctx, b); err != nil || got.ID != placed.ID {
			t.Errorf("%s: after learning the newer schema: %+v, %v", v.File, got, err)
		}
	}
	if _, err := avrocodec.New(avrocodec.AsVersion(len(h) + 1)); err == nil {
		t.Error("a version that was never shipped is accepted")
	}
}
