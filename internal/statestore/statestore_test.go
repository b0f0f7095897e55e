package statestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/statestore"
)

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	r := &statestore.Record{
		OrderID: "o1", Partner: "google", Version: 3,
		Acked:   statestore.Delivery{Version: 2, Stamp: time.Unix(1789480992, 0).UTC(), WebhookID: "ord_1"},
		Pending: statestore.Delivery{Version: 3, Stamp: time.Unix(1789554000, 0).UTC(), WebhookID: "ship_1", Digest: statestore.BodyDigest([]byte("{}"))},
		Events:  [][]byte{{0xC3, 0x01, 1, 2}, {0xC3, 0x01, 3}, {}},
	}
	b := r.Marshal()
	got, err := statestore.Unmarshal("o1", b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	h, err := statestore.ParseHeader(b)
	if err != nil || h.Version != 3 || h.Pending.WebhookID != "ship_1" || h.Partner != "google" {
		t.Fatalf("header %+v %v", h, err)
	}
	for _, bad := range [][]byte{nil, {0x7f}, b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if _, err := statestore.Unmarshal("o1", bad); !errors.Is(err, statestore.ErrCorrupt) {
			t.Errorf("corrupt %x: %v", bad, err)
		}
	}
}

// An orphan's record keeps since when its events wait for the placement, beside the
// other flags; a placed order's record has none (and stays format 1 without digests).
func TestRecordHeldSince(t *testing.T) {
	t.Parallel()
	since := time.UnixMilli(1789480992123).UTC()
	r := &statestore.Record{OrderID: "o1", Version: 1, HeldSince: since, Deferred: true, Events: [][]byte{{0xC3, 0x01, 1}}}
	b := r.Marshal()
	got, err := statestore.Unmarshal("o1", b)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if h, err := statestore.ParseHeader(b); err != nil || !h.HeldSince.Equal(since) || !h.Deferred {
		t.Fatalf("header %+v %v", h, err)
	}
	if got := statestore.HeldSince(b); !got.Equal(since) {
		t.Errorf("HeldSince %v", got)
	}
	placed := (&statestore.Record{OrderID: "o1", Partner: "google", Version: 1, Events: [][]byte{{1}}}).Marshal()
	if got := statestore.HeldSince(placed); !got.IsZero() || placed[0] != 0x01 {
		t.Errorf("a placed order: held since %v, format %d", got, placed[0])
	}
	for _, v := range [][]byte{nil, {0x02}, b[:8]} {
		if got := statestore.HeldSince(v); !got.IsZero() {
			t.Errorf("HeldSince(%x) = %v", v, got)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add((&statestore.Record{Version: 1, HeldSince: time.UnixMilli(5), Events: [][]byte{{1}}}).Marshal())
	f.Add((&statestore.Record{Partner: "p", Version: 1, Events: [][]byte{{1}}}).Marshal())
	f.Add((&statestore.Record{Partner: "p", Version: 1, Deferred: true, Acked: statestore.Delivery{Version: 1, Digest: statestore.BodyDigest(nil)}, Events: [][]byte{{1}}}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := statestore.Unmarshal("k", b)
		if err != nil {
			return
		}
		if again := r.Marshal(); !bytes.Equal(again, b) {
			t.Fatalf("re-marshal differs")
		}
	})
}

func TestRestoreRealKafka(t *testing.T) {
	t.Parallel()
	testRestore(t, kafkatest.Brokers(t))
}

func TestRestoreKfake(t *testing.T) {
	t.Parallel()
	testRestore(t, kafkatest.Fake(t, 1).ListenAddrs())
}

// Restore keeps each order's latest committed record, drops tombstoned orders, ignores
// aborted transactions, reaches an end that is a transaction marker, and lists the
// orders with a pending delivery.
func testRestore(t *testing.T, seeds []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := kafkatest.NewNames(t)
	topic := n.Topic("state")
	kafkatest.CreateTopic(t, kafkatest.Admin(t, seeds), topic, 2, map[string]*string{"cleanup.policy": ptr("compact")})

	txn, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID(n.TxnID()), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	rec := func(id string, version int64, pending bool) *kgo.Record {
		r := &statestore.Record{OrderID: id, Partner: "google", Version: version, Acked: statestore.Delivery{Version: version}, Events: [][]byte{[]byte(id)}}
		if pending {
			r.Acked.Version = version - 1
			r.Pending = statestore.Delivery{Version: version, WebhookID: id + "-w", Stamp: time.Unix(1789480992, 0)}
		}
		return &kgo.Record{Key: []byte(id), Value: r.Marshal(), Partition: 1}
	}
	commit := func(abort bool, rs ...*kgo.Record) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(!abort)); err != nil {
			t.Fatal(err)
		}
	}
	const orders = 300
	var first []*kgo.Record
	for i := range orders {
		first = append(first, rec(fmt.Sprintf("o%03d", i), 1, false))
	}
	commit(false, first...)
	commit(false, rec("o001", 2, true), rec("o002", 2, false), &kgo.Record{Key: []byte("o003"), Partition: 1})
	commit(true, rec("o004", 9, true), &kgo.Record{Key: []byte("o005"), Partition: 1}) // aborted: invisible
	// One unreadable order never fails the partition: a corrupt record, one of a newer
	// format, a parked one; system records (schemas, unknown ones) are never orders.
	parked := (&statestore.Parked{Reason: "state_unreadable", Error: "x", Since: time.UnixMilli(1789480992123).UTC(),
		Original: []byte{0x7e}, Held: []statestore.HeldEvent{{ID: "e1", Value: []byte("v1")}}}).Marshal()
	commit(false,
		&kgo.Record{Key: []byte("x006"), Value: []byte{0x7e, 1, 2}, Partition: 1},
		&kgo.Record{Key: []byte("x007"), Value: []byte{0x03, 1, 2}, Partition: 1},
		&kgo.Record{Key: []byte("x008"), Value: parked, Partition: 1},
		statestore.SchemaRecord(topic, 1, 42, `{"type":"string"}`),
		&kgo.Record{Key: []byte("\x00ucprelay.future"), Value: []byte("?"), Partition: 1})
	const extra = 3 // orders x006..x008

	var progressed int64
	p, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(seeds...)}, topic, 1, func(next, end int64) { progressed = next })
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Orders) != orders-1+extra || p.Records != orders+3+5 || progressed < p.EndOffset {
		t.Fatalf("restored %d orders from %d records (progress %d of %d)", len(p.Orders), p.Records, progressed, p.EndOffset)
	}
	if _, ok := p.Orders["o003"]; ok {
		t.Fatal("tombstoned order restored")
	}
	if !errors.Is(p.Unreadable["x006"], statestore.ErrCorrupt) || !errors.Is(p.Unreadable["x007"], statestore.ErrNewerFormat) || len(p.Unreadable) != 2 {
		t.Fatalf("unreadable %v", p.Unreadable)
	}
	if !reflect.DeepEqual(p.Parked, []string{"x008"}) || !reflect.DeepEqual(p.Schemas, []string{`{"type":"string"}`}) {
		t.Fatalf("parked %v, schemas %v", p.Parked, p.Schemas)
	}
	if pk, err := statestore.UnmarshalParked("x008", p.Orders["x008"]); err != nil || !reflect.DeepEqual(pk.Marshal(), parked) || !pk.Holds("e1") || pk.Since.UnixMilli() != 1789480992123 {
		t.Fatalf("parked record: %+v %v", pk, err)
	}
	for id, want := range map[string]int64{"o001": 2, "o002": 2, "o004": 1, "o005": 1} {
		h, err := statestore.ParseHeader(p.Orders[id])
		if err != nil || h.Version != want {
			t.Errorf("%s: version %d (%v), want %d", id, h.Version, err, want)
		}
	}
	sort.Strings(p.Pending)
	if !reflect.DeepEqual(p.Pending, []string{"o001"}) {
		t.Fatalf("pending %v", p.Pending)
	}
	empty, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(seeds...)}, topic, 0, nil)
	if err != nil || len(empty.Orders) != 0 {
		t.Fatalf("empty partition: %+v %v", empty, err)
	}

	// A transaction left open keeps the partition from its end: a bounded restore says so.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, rec("o009", 1, false)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = statestore.RestoreBounded(ctx, []kgo.Opt{kgo.SeedBrokers(seeds...)}, topic, 1, 300*time.Millisecond, nil)
	if !errors.Is(err, statestore.ErrUnstable) || time.Since(start) > 20*time.Second {
		t.Fatalf("restore with an open transaction: %v after %s", err, time.Since(start))
	}
	if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

// Format bytes between this version's and the parked record's are a newer ucprelay's.
func TestRecordFormats(t *testing.T) {
	for v, want := range map[byte]error{0x03: statestore.ErrNewerFormat, 0x4f: statestore.ErrNewerFormat, 0x00: statestore.ErrCorrupt, 0x99: statestore.ErrCorrupt} {
		if _, err := statestore.ParseHeader([]byte{v, 0, 0}); !errors.Is(err, want) {
			t.Errorf("format %#x: %v, want %v", v, err, want)
		}
	}
	// Format 2 is format 1 with flags, written only when one is set.
	rec := &statestore.Record{OrderID: "o", Partner: "google", Version: 3, Events: [][]byte{{1}, {2}, {3}}}
	v1 := rec.Marshal()
	rec.Deferred = true
	v2 := rec.Marshal()
	if v1[0] != 0x01 || v2[0] != 0x02 || len(v2) != len(v1)+1 {
		t.Fatalf("formats %#x (%d bytes) and %#x (%d bytes)", v1[0], len(v1), v2[0], len(v2))
	}
	if got, err := statestore.Unmarshal("o", v2); err != nil || !got.Deferred || len(got.Events) != 3 {
		t.Fatalf("deferred record: %+v, %v", got, err)
	}
	if h, err := statestore.ParseHeader(v1); err != nil || h.Deferred {
		t.Fatalf("format 1 header: %+v, %v", h, err)
	}
	flags := len(v1) - 7 // after the pending delivery, before the event count (1 byte) and 3 events (2 bytes each)
	for b, want := range map[byte]error{0x00: statestore.ErrCorrupt, 0x08: statestore.ErrNewerFormat, 0x40: statestore.ErrNewerFormat} {
		bad := append([]byte(nil), v2...)
		bad[flags] = b
		if _, err := statestore.ParseHeader(bad); !errors.Is(err, want) {
			t.Errorf("flags %#x: %v, want %v", b, err, want)
		}
	}
	// With digests, the flags are followed by the acknowledged and the pending body
	// digest: none or DigestSize bytes each.
	rec.Deferred = false
	rec.Pending = statestore.Delivery{Version: 3, WebhookID: "w", Digest: statestore.BodyDigest([]byte("body"))}
	vd := rec.Marshal()
	got, err := statestore.Unmarshal("o", vd)
	if err != nil || vd[0] != 0x02 || got.Deferred || got.Acked.Digest != nil || !bytes.Equal(got.Pending.Digest, rec.Pending.Digest) {
		t.Fatalf("record with digests (format %#x): %+v, %v", vd[0], got, err)
	}
	if h, err := statestore.ParseHeader(vd); err != nil || !bytes.Equal(h.Pending.Digest, rec.Pending.Digest) {
		t.Fatalf("header with digests: %+v, %v", h, err)
	}
	short := (&statestore.Record{OrderID: "o", Partner: "google", Version: 3, Pending: statestore.Delivery{Version: 3, Digest: []byte{1, 2, 3}}}).Marshal()
	if _, err := statestore.ParseHeader(short); !errors.Is(err, statestore.ErrCorrupt) {
		t.Errorf("a 3-byte digest: %v, want corrupt", err)
	}
	if _, err := statestore.UnmarshalParked("o", []byte{0x50, 5}); !errors.Is(err, statestore.ErrCorrupt) {
		t.Errorf("truncated parked record: %v", err)
	}
	if statestore.IsParked((&statestore.Record{OrderID: "o"}).Marshal()) {
		t.Error("an order record reads as parked")
	}
}

func ptr(s string) *string { return &s }
