package avrocodec

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// The direct writer is the one the current version uses, and it writes what goavro
// writes: the same bytes for random events of every kind (maps of one entry; a map of
// more is written sorted, goavro's order is Go's random one) and the same event back.
// A codec of an older version writes what that version's goavro codec reads.
func TestDirectWriterWritesWhatGoavroWrites(t *testing.T) {
	t.Parallel()
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !c.direct {
		t.Fatal("the current schema is not written directly: appendEvent no longer matches avro/order_event.avsc (encode.go)")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	for i := range 2000 {
		ev := randomEvent(rng, i)
		direct, err := c.EncodeSingleObject(ev)
		if err != nil {
			t.Fatal(err)
		}
		n, err := toNative(ev)
		if err != nil {
			t.Fatal(err)
		}
		viaGoavro, err := c.own.SingleFromNative(nil, n)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := ev.Payload.(orderevents.OrderPlaced); !ok || len(p.Attribution) <= 1 {
			if string(direct) != string(viaGoavro) {
				t.Fatalf("event %d (%s): the direct bytes differ from goavro's", i, ev.Payload.Kind())
			}
		}
		a, rest, errA := c.own.NativeFromSingle(direct)
		b, _, errB := c.own.NativeFromSingle(viaGoavro)
		if errA != nil || errB != nil || len(rest) != 0 || !reflect.DeepEqual(a, b) {
			t.Fatalf("event %d: direct %+v (%v), goavro %+v (%v)", i, a, errA, b, errB)
		}
		if ev.ID != "" && ev.OrderID != "" {
			_, errA := c.Decode(ctx, direct)
			_, errB := c.Decode(ctx, viaGoavro)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("event %d: direct decodes with %v, goavro's with %v", i, errA, errB)
			}
		}
	}
	for n := 1; n <= len(avro.History()); n++ {
		old, err := New(AsVersion(n))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range encoderSamples() {
			b, err := old.EncodeSingleObject(ev)
			if err != nil && !old.direct {
				continue // a kind that version does not have, as ever
			}
			if err != nil {
				t.Fatalf("version %d: %v", n, err)
			}
			if _, _, err := old.own.NativeFromSingle(b); err != nil {
				t.Fatalf("version %d (direct %v): its own schema does not read what it wrote: %v", n, old.direct, err)
			}
		}
	}
}

func randomEvent(rng *rand.Rand, i int) orderevents.Event {
	s := func() string {
		if rng.IntN(4) == 0 {
			return ""
		}
		return "s" + strconv.Itoa(rng.IntN(1e6)) + string(rune(0x4e00+rng.IntN(100)))
	}
	n := func() int64 { return rng.Int64N(1<<40) - 1<<39 }
	lines := func() []orderevents.LineQuantity {
		var out []orderevents.LineQuantity
		for range rng.IntN(4) {
			out = append(out, orderevents.LineQuantity{LineID: s(), Quantity: n()})
		}
		return out
	}
	totals := func() []orderevents.Total {
		var out []orderevents.Total
		for range rng.IntN(4) {
			out = append(out, orderevents.Total{Type: s(), Amount: n(), DisplayText: s()})
		}
		return out
	}
	expectations := func() []orderevents.Expectation {
		var out []orderevents.Expectation
		for range rng.IntN(3) {
			out = append(out, orderevents.Expectation{ID: s(), Lines: lines(), MethodType: s(), Description: s(), FulfillableOn: s(),
				Destination: orderevents.Address{FullName: s(), FirstName: s(), LastName: s(), StreetAddress: s(), ExtendedAddress: s(),
					Locality: s(), Region: s(), PostalCode: s(), Country: s(), PhoneNumber: s()}})
		}
		return out
	}
	opt := func() *string {
		if rng.IntN(3) == 0 {
			return nil
		}
		v := s()
		return &v
	}
	var p orderevents.Payload
	switch i % 7 {
	case 0:
		o := orderevents.OrderPlaced{CheckoutID: s(), PermalinkURL: s(), Label: s(), Currency: s(), Expectations: expectations(), Totals: totals()}
		for range rng.IntN(4) {
			o.LineItems = append(o.LineItems, orderevents.PlacedLine{ID: s(), ParentID: s(), Quantity: n(), Totals: totals(),
				Item: orderevents.Item{ID: s(), Title: s(), Price: n(), ImageURL: s()}})
		}
		if k := rng.IntN(4); k > 0 {
			o.Attribution = map[string]string{}
			for j := range k {
				o.Attribution["k"+strconv.Itoa(j)] = s()
			}
		}
		p = o
	case 1:
		p = orderevents.FulfillmentRecorded{Type: s(), Lines: lines(), TrackingNumber: s(), TrackingURL: s(), Carrier: s(), Description: s()}
	case 2:
		p = orderevents.ExpectationsChanged{Expectations: expectations()}
	case 3:
		p = orderevents.LinesCanceled{Lines: lines(), Description: s()}
	case 4:
		p = orderevents.OrderCanceled{Description: s()}
	case 5:
		p = orderevents.AdjustmentRecorded{AdjustmentID: s(), Type: s(), Status: s(), Lines: lines(), Totals: totals(), Currency: s(), Description: s()}
	case 6:
		p = orderevents.OrderDetailsChanged{Label: opt(), PermalinkURL: opt()}
	}
	at := time.UnixMilli(rng.Int64N(4e12) - 1e12).UTC()
	return orderevents.Event{ID: s(), OrderID: s(), OccurredAt: at, Source: s(), PartnerID: s(), Payload: p}
}

// BenchmarkEncodeSingleObject: the stored form of a placement, written directly and
// through goavro's native form.
func BenchmarkEncodeSingleObject(b *testing.B) {
	c, err := New()
	if err != nil {
		b.Fatal(err)
	}
	ev := encoderSamples()[0]
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.EncodeSingleObject(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, err := toNative(ev)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.own.SingleFromNative(nil, n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
