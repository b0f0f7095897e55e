package avrocodec_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/orderevents/ordereventstest"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

var update = flag.Bool("update", false, "rewrite the golden Avro encodings in testdata/")

func allKinds() []orderevents.Event {
	return append(ordereventstest.Lifecycle("ord_golden"), ordereventstest.Canceled("ord_golden2")[1])
}

// Every payload kind survives both framings unchanged.
func TestRoundTripEveryKind(t *testing.T) {
	t.Parallel()
	c, err := avrocodec.New(avrocodec.WithRegistry(registry(t)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Register(context.Background(), "orders-value")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[orderevents.Kind]bool{}
	for _, ev := range allKinds() {
		kinds[ev.Payload.Kind()] = true
		soe, err := c.EncodeSingleObject(ev)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := c.EncodeConfluent(id, ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{soe, conf} {
			got, err := c.Decode(context.Background(), b)
			if err != nil {
				t.Fatalf("%s: %v", ev.ID, err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Fatalf("%s changed:\n got %+v\nwant %+v", ev.ID, got.Payload, ev.Payload)
			}
		}
	}
	if len(kinds) != 7 {
		t.Fatalf("covered %d payload kinds, want 7", len(kinds))
	}
}

// Golden single-object encodings catch schema drift: an accidental change of the
// schema or the mapping changes these bytes. Regenerate with -update after a deliberate,
// compatible change (avro/README.md).
func TestGoldenEncodings(t *testing.T) {
	t.Parallel()
	c, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range allKinds() {
		if p, ok := ev.Payload.(orderevents.OrderPlaced); ok {
			// Avro maps are unordered and Go iterates them at random: one key keeps the bytes stable.
			p.Attribution = map[string]string{"utm_source": "agent"}
			ev.Payload = p
		}
		b, err := c.EncodeSingleObject(ev)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join("testdata", fmt.Sprintf("%02d_%s.avro", i, ev.Payload.Kind()))
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (run go test ./pkg/avrocodec -run Golden -update once)", err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s: encoding drifted from the golden bytes", p)
		}
		got, err := c.Decode(context.Background(), want)
		if err != nil || !reflect.DeepEqual(got, ev) {
			t.Errorf("%s: golden bytes decode to %+v, %v", p, got, err)
		}
	}
}

// BenchmarkDecodeFoldEncode is the hot path of one order update: decode the new event
// (single-object framing), fold the order's four events, render the 2026-04-08 body.
func BenchmarkDecodeFoldEncode(b *testing.B) {
	c, err := avrocodec.New()
	if err != nil {
		b.Fatal(err)
	}
	evs := ordereventstest.Lifecycle("ord_bench")[:4]
	raw := make([][]byte, len(evs))
	for i, ev := range evs {
		if raw[i], err = c.EncodeSingleObject(ev); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		decoded := make([]orderevents.Event, len(raw))
		for j, r := range raw {
			if decoded[j], err = c.Decode(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		s, err := fold.Fold(decoded)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ucp.Marshal(s.Order, ucp.V20260408, ucp.Envelope{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)*b.N)/b.Elapsed().Seconds(), "events/s")
}
