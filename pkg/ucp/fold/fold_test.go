package fold_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/testshared"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

var address = orderevents.Address{
	FirstName: "Alex", LastName: "Rivera", StreetAddress: "500 W 2nd St", ExtendedAddress: "Apt 1204",
	Locality: "Austin", Region: "TX", PostalCode: "78701", Country: "US", PhoneNumber: "+15125550142",
}

// placed8F3KQ2 is the placement of the order in testdata/ucp-examples.
func placed8F3KQ2() orderevents.Event {
	return orderevents.Event{
		ID: "ord_8F3KQ2", OrderID: "ord_8F3KQ2", Source: "shop", PartnerID: "google",
		OccurredAt: time.Date(2026, 9, 15, 14, 3, 12, 0, time.UTC),
		Payload: orderevents.OrderPlaced{
			CheckoutID: "chk_5TZ91A", PermalinkURL: "https://shop.example.com/account/orders/ord_8F3KQ2",
			Label: "#10452", Currency: "USD",
			LineItems: []orderevents.PlacedLine{
				{ID: "li_1", Quantity: 1,
					Item:   orderevents.Item{ID: "SKU-TRS-42-BLU", Title: "Trail Running Shoe - Blue, US 10", Price: 12000, ImageURL: "https://cdn.shop.example.com/img/trs-42-blu.jpg"},
					Totals: []orderevents.Total{{Type: "subtotal", Amount: 12000}, {Type: "tax", Amount: 990}, {Type: "total", Amount: 12990}}},
				{ID: "li_2", Quantity: 2,
					Item:   orderevents.Item{ID: "SKU-MWS-3PK-M", Title: "Merino Wool Running Socks (3-pack), M", Price: 2000, ImageURL: "https://cdn.shop.example.com/img/mws-3pk-m.jpg"},
					Totals: []orderevents.Total{{Type: "subtotal", Amount: 4000}, {Type: "tax", Amount: 330}, {Type: "total", Amount: 4330}}},
			},
			Expectations: []orderevents.Expectation{{
				ID: "exp_1", Lines: []orderevents.LineQuantity{{LineID: "li_1", Quantity: 1}, {LineID: "li_2", Quantity: 2}},
				MethodType: "shipping", Destination: address, Description: "Arrives Thu, Sep 17 - Fri, Sep 18", FulfillableOn: "now",
			}},
			Totals: []orderevents.Total{
				{Type: "subtotal", Amount: 16000, DisplayText: "Subtotal"},
				{Type: "fulfillment", Amount: 800, DisplayText: "Shipping (UPS Ground)"},
				{Type: "tax", Amount: 1320, DisplayText: "Sales tax"},
				{Type: "total", Amount: 18120, DisplayText: "Total"},
			},
		},
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func semanticEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("bodies differ:\n got %s\nwant %s", got, want)
	}
}

func TestGoldenOrderCreated(t *testing.T) {
	t.Parallel()
	s, err := fold.Fold([]orderevents.Event{placed8F3KQ2()})
	if err != nil {
		t.Fatal(err)
	}
	body, err := ucp.Marshal(s.Order, ucp.V20260408, ucp.Envelope{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(testshared.Dir(t, "ucp-examples"), "order-created.json"))
	if err != nil {
		t.Fatal(err)
	}
	semanticEqual(t, body, want)
	if s.WebhookID != "ord_8F3KQ2" || s.Version != 1 || s.PartnerID != "google" {
		t.Fatalf("snapshot meta %+v", s)
	}
}

// Every supported version renders the placed order as a schema-valid body.
func TestPlacedValidInEveryVersion(t *testing.T) {
	t.Parallel()
	s, err := fold.Fold([]orderevents.Event{placed8F3KQ2()})
	if err != nil {
		t.Fatal(err)
	}
	env := fold.NextEnvelope(s, time.Time{}, time.Time{})
	for _, v := range ucp.Supported() {
		val, err := ucpschema.New(string(v))
		if err != nil {
			t.Fatal(err)
		}
		body, err := ucp.Marshal(s.Order, v, env.Body())
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if err := val.Validate(body); err != nil {
			t.Errorf("%s: %v\n%s", v, err, body)
		}
	}
}

func TestDuplicatesAndOrderDoNotMatter(t *testing.T) {
	t.Parallel()
	p := placed8F3KQ2()
	a, err := fold.Fold([]orderevents.Event{p})
	if err != nil {
		t.Fatal(err)
	}
	b, err := fold.Fold([]orderevents.Event{p, p, p})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("duplicates changed the snapshot")
	}
}

func TestFoldErrors(t *testing.T) {
	t.Parallel()
	p := placed8F3KQ2()
	other := p
	other.ID = "ord_8F3KQ2-again"
	foreign := p
	foreign.ID, foreign.OrderID = "x", "ord_other"
	badLine := placed8F3KQ2()
	pl := badLine.Payload.(orderevents.OrderPlaced)
	pl.Expectations = []orderevents.Expectation{{ID: "e", MethodType: "shipping", Lines: []orderevents.LineQuantity{{LineID: "li_9", Quantity: 1}}}}
	badLine.Payload = pl
	invalid := p
	invalid.OccurredAt = time.Time{}
	cases := []struct {
		name   string
		evs    []orderevents.Event
		err    error
		reason string
	}{
		{"none", nil, fold.ErrNotPlaced, "orphan"},
		{"placed twice", []orderevents.Event{p, other}, fold.ErrDuplicatePlacement, "duplicate_placement"},
		{"mixed orders", []orderevents.Event{p, foreign}, fold.ErrMixedOrders, "mixed_orders"},
		{"unknown line", []orderevents.Event{badLine}, fold.ErrUnknownLine, "unknown_line"},
		{"invalid", []orderevents.Event{invalid}, fold.ErrInvalid, "invalid_event"},
	}
	for _, c := range cases {
		_, err := fold.Fold(c.evs)
		var fe *fold.Error
		if !errors.Is(err, c.err) || !errors.As(err, &fe) || fe.Reason() != c.reason {
			t.Errorf("%s: want %v (%s), got %v", c.name, c.err, c.reason, err)
		}
	}
}

func TestStampStrictlyIncreases(t *testing.T) {
	t.Parallel()
	s := &fold.Snapshot{Newest: time.Date(2026, 9, 15, 14, 3, 12, 500e6, time.UTC), WebhookID: "w"}
	first := fold.NextEnvelope(s, time.Time{}, time.Time{})
	if want := time.Date(2026, 9, 15, 14, 3, 12, 0, time.UTC); !first.Stamp.Equal(want) {
		t.Fatalf("first stamp %s, want %s", first.Stamp, want)
	}
	// A late event (older occurred time) still gets a newer stamp.
	again := fold.NextEnvelope(s, first.Stamp, time.Time{})
	if !again.Stamp.After(first.Stamp) || again.Stamp.Sub(first.Stamp) != time.Second {
		t.Fatalf("second stamp %s after %s", again.Stamp, first.Stamp)
	}
	later := &fold.Snapshot{Newest: first.Stamp.Add(time.Hour)}
	if got := fold.NextEnvelope(later, again.Stamp, time.Time{}); !got.Stamp.Equal(later.Newest) {
		t.Fatalf("newer event: stamp %s, want %s", got.Stamp, later.Newest)
	}
}

// A future-dated event (a producer's clock ahead) is stamped at the clock, and the
// stamps after it stay near the clock instead of following it into the future.
func TestStampClippedToNow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 9, 15, 14, 3, 12, 700e6, time.UTC)
	future := &fold.Snapshot{Newest: now.Add(4 * 365 * 24 * time.Hour)}
	first := fold.NextEnvelope(future, time.Time{}, now)
	if want := now.Truncate(time.Second); !first.Stamp.Equal(want) {
		t.Fatalf("future event stamped %s, want the clock %s", first.Stamp, want)
	}
	next := fold.NextEnvelope(future, first.Stamp, now.Add(time.Minute))
	if want := now.Add(time.Minute).Truncate(time.Second); !next.Stamp.Equal(want) {
		t.Fatalf("next stamp %s, want %s", next.Stamp, want)
	}
	// Within one second the stamp still increases, ahead of the clock by the sends made.
	third := fold.NextEnvelope(future, next.Stamp, now.Add(time.Minute))
	if !third.Stamp.Equal(next.Stamp.Add(time.Second)) {
		t.Fatalf("third stamp %s after %s", third.Stamp, next.Stamp)
	}
	// An event in the past is stamped at its own time, as before.
	past := &fold.Snapshot{Newest: now.Add(-time.Hour)}
	if got := fold.NextEnvelope(past, time.Time{}, now); !got.Stamp.Equal(past.Newest.Truncate(time.Second)) {
		t.Fatalf("past event stamped %s", got.Stamp)
	}
}
