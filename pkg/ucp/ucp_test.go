package ucp_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/pkg/ucp"
)

func TestLineStatusLiteralRule(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v    ucp.Version
		q    ucp.Quantity
		want ucp.LineStatus
	}{
		{ucp.V20260408, ucp.Quantity{Total: 2, Fulfilled: 0}, ucp.StatusProcessing},
		{ucp.V20260408, ucp.Quantity{Total: 2, Fulfilled: 1}, ucp.StatusPartial},
		{ucp.V20260408, ucp.Quantity{Total: 2, Fulfilled: 2}, ucp.StatusFulfilled},
		{ucp.V20260408, ucp.Quantity{Total: 0, Fulfilled: 0}, ucp.StatusRemoved},
		{ucp.V20260408, ucp.Quantity{Total: 0, Fulfilled: 1}, ucp.StatusRemoved},
		{ucp.V20260408, ucp.Quantity{Total: 1, Fulfilled: 2}, ucp.StatusPartial}, // 2 shipped, 1 returned
		{ucp.V20260111, ucp.Quantity{Total: 0, Fulfilled: 0}, ucp.StatusFulfilled},
		{ucp.V20260123, ucp.Quantity{Total: 0, Fulfilled: 1}, ucp.StatusPartial},
		{ucp.V20260111, ucp.Quantity{Total: 3, Fulfilled: 0}, ucp.StatusProcessing},
		{ucp.V20260123, ucp.Quantity{Total: 3, Fulfilled: 3}, ucp.StatusFulfilled},
	}
	for _, c := range cases {
		if got := ucp.LineStatusOf(c.v, c.q); got != c.want {
			t.Errorf("%s %+v: got %s, want %s", c.v, c.q, got, c.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	if v, err := ucp.ParseVersion("2026-01-01"); err != nil || v != ucp.V20260111 {
		t.Fatalf("alias: %s %v", v, err)
	}
	if _, err := ucp.ParseVersion("2027-01-01"); !errors.Is(err, ucp.ErrUnsupportedVersion) {
		t.Fatalf("unknown: %v", err)
	}
}

func order() *ucp.Order {
	return &ucp.Order{
		ID: "o1", CheckoutID: "c1", PermalinkURL: "https://shop.example.com/o/1?a=1&b=2", Currency: "USD",
		LineItems: []ucp.LineItem{{ID: "l1", Item: ucp.Item{ID: "i", Title: "T", Price: 0},
			Quantity: ucp.Quantity{Original: 1, HasOriginal: true, Total: 1, Fulfilled: 0},
			Totals:   []ucp.Total{{Type: "subtotal", Amount: 0}}}},
		Totals: []ucp.Total{{Type: "subtotal", Amount: 1000}, {Type: "discount", Amount: -100}, {Type: "total", Amount: 900}},
	}
}

func TestMarshalSignsZerosAndNoNulls(t *testing.T) {
	t.Parallel()
	env := ucp.Envelope{EventID: "e1", CreatedTime: time.Date(2026, 9, 15, 1, 2, 3, 0, time.UTC)}
	b, err := ucp.Marshal(order(), ucp.V20260408, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"amount":-100`, `"fulfilled":0`, `"price":0`, `"amount":0`, `"events":[]`, `"adjustments":[]`, `?a=1&b=2`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("04-08 body lacks %s: %s", want, b)
		}
	}
	if bytes.Contains(b, []byte("null")) || bytes.Contains(b, []byte("created_time")) {
		t.Errorf("04-08 body has null or envelope fields: %s", b)
	}
	legacy, err := ucp.Marshal(order(), ucp.V20260111, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"amount":100`, `"event_id":"e1"`, `"created_time":"2026-09-15T01:02:03Z"`, `"capabilities":[{"name":"dev.ucp.shopping.order","version":"2026-01-11"}]`} {
		if !bytes.Contains(legacy, []byte(want)) {
			t.Errorf("01-11 body lacks %s: %s", want, legacy)
		}
	}
	if bytes.Contains(legacy, []byte(`"currency"`)) || bytes.Contains(legacy, []byte(`"original"`)) {
		t.Errorf("01-11 body has 04-08 fields: %s", legacy)
	}
}

func TestMarshalRefusesWhatAVersionCannotSay(t *testing.T) {
	t.Parallel()
	o := order()
	o.Totals = append(o.Totals, ucp.Total{Type: "gift_wrap", Amount: 300, DisplayText: "Gift wrap"})
	if _, err := ucp.Marshal(o, ucp.V20260408, ucp.Envelope{}); err != nil {
		t.Fatalf("04-08 has open total types: %v", err)
	}
	env := ucp.Envelope{EventID: "e", CreatedTime: time.Now()}
	if _, err := ucp.Marshal(o, ucp.V20260123, env); !errors.Is(err, ucp.ErrNotExpressible) || !strings.Contains(err.Error(), "gift_wrap") {
		t.Fatalf("custom type in 01-23: %v", err)
	}
	if _, err := ucp.Marshal(order(), ucp.V20260123, ucp.Envelope{}); !errors.Is(err, ucp.ErrMissingEnvelope) {
		t.Fatalf("01-23 without envelope: %v", err)
	}
	if _, err := ucp.Marshal(order(), "2030-01-01", ucp.Envelope{}); !errors.Is(err, ucp.ErrUnsupportedVersion) {
		t.Fatalf("unknown version: %v", err)
	}
}
