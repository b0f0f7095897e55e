package avrocodec

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/orderevents/ordereventstest"
)

// olderSchema is avro.OrderEvent as an older producer has it: without the optional
// partner_id and attribution fields added since.
func olderSchema(t *testing.T) string {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal([]byte(avro.OrderEvent), &s); err != nil {
		t.Fatal(err)
	}
	var keep []any
	for _, f := range s["fields"].([]any) {
		f := f.(map[string]any)
		switch f["name"] {
		case "partner_id":
			continue
		case "payload":
			placed := f["type"].([]any)[0].(map[string]any)
			var pf []any
			for _, x := range placed["fields"].([]any) {
				if x.(map[string]any)["name"] != "attribution" {
					pf = append(pf, x)
				}
			}
			placed["fields"] = pf
		}
		keep = append(keep, f)
	}
	s["fields"] = keep
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Data from an older producer (fewer optional fields) decodes with the defaults, in
// single-object framing once its schema is known.
func TestOlderWriterSchema(t *testing.T) {
	t.Parallel()
	old := olderSchema(t)
	oc, err := goavro.NewCodec(old)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(WithKnownSchemas(old))
	if err != nil {
		t.Fatal(err)
	}
	ev := ordereventstest.Lifecycle("ord_old")[0]
	n, err := toNative(ev)
	if err != nil {
		t.Fatal(err)
	}
	delete(n, "partner_id")
	delete(n["payload"].(map[string]any)["dev.ucprelay.order.v1.OrderPlaced"].(map[string]any), "attribution")
	b, err := oc.SingleFromNative(nil, n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Payload.(orderevents.OrderPlaced)
	if got.PartnerID != "" || p.Attribution != nil || got.ID != ev.ID || len(p.LineItems) != 2 {
		t.Fatalf("older writer decoded to %+v", got)
	}
	// Without its schema among the known ones, the fingerprint is unknown: dead-letter, not guess.
	plain, _ := New()
	if _, err := plain.Decode(context.Background(), b); ReasonOf(err) != ReasonUnknownFingerprint {
		t.Fatalf("unknown older schema: %v", err)
	}
}
