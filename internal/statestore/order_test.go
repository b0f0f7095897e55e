package statestore_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/orderevents/ordereventstest"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// stored returns the state record value of an order holding evs, with the given marks.
func stored(t *testing.T, c *avrocodec.Codec, evs []orderevents.Event, partner string, acked, pending statestore.Delivery) []byte {
	t.Helper()
	rec := &statestore.Record{OrderID: evs[0].OrderID, Partner: partner, Version: int64(len(evs)), Acked: acked, Pending: pending}
	for _, ev := range evs {
		raw, err := c.EncodeSingleObject(ev)
		if err != nil {
			t.Fatal(err)
		}
		rec.Events = append(rec.Events, raw)
	}
	return rec.Marshal()
}

var partners = statestore.Partners{Default: "google", Version: func(p string) (ucp.Version, error) {
	switch p {
	case "google":
		return ucp.V20260408, nil
	case "legacy":
		return ucp.V20260123, nil
	}
	return "", errors.New("not configured")
}}

// The stored-order view: the record's events decoded, the snapshot folded, the envelope
// chosen by rule, the body rendered in the partner's version.
func TestOrderViewEnvelopeRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	evs := ordereventstest.Lifecycle("ord_view")
	n := int64(len(evs))
	stamp := ordereventstest.Placed.Add(30 * 24 * time.Hour).Truncate(time.Second)
	acked := statestore.Delivery{Version: n - 1, Stamp: stamp.Add(-time.Hour), WebhookID: "wh-acked"}
	pending := statestore.Delivery{Version: n, Stamp: stamp, WebhookID: "wh-pending"}

	o, err := statestore.OpenOrder(ctx, c, "ord_view", stored(t, c, evs, "google", acked, pending))
	if err != nil {
		t.Fatal(err)
	}
	if !o.Placed || len(o.Events) != len(evs) || o.Events[0].ID != evs[0].ID || !reflect.DeepEqual(o.Record.Pending, pending) {
		t.Fatalf("opened order: placed %v, %d events, pending %+v", o.Placed, len(o.Events), o.Record.Pending)
	}
	if got := o.Record.LastStamp(); !got.Equal(stamp) {
		t.Errorf("last stamp %v, want the pending one %v", got, stamp)
	}

	resend, err := o.Render(nil, nil, statestore.ResendEnvelope, partners, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if resend.Envelope.WebhookID != "wh-pending" || !resend.Envelope.Stamp.Equal(stamp) || resend.Partner != "google" || resend.Version != n {
		t.Errorf("resend of the pending snapshot: %+v partner %s version %d", resend.Envelope, resend.Partner, resend.Version)
	}
	next, err := o.Render(nil, nil, statestore.NextEnvelope, partners, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !next.Envelope.Stamp.After(stamp) {
		t.Errorf("next stamp %v is not after the last one %v (P2)", next.Envelope.Stamp, stamp)
	}
	last, err := o.Render(nil, nil, statestore.LastEnvelope, partners, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if last.Envelope.WebhookID != "wh-pending" || string(last.Body) != string(resend.Body) {
		t.Errorf("last envelope %+v, want the pending one with the same body", last.Envelope)
	}

	// Without a pending mark, the last envelope is the acknowledged one; a resend of a
	// snapshot that is no longer the pending one gets a new envelope.
	o2, err := statestore.OpenOrder(ctx, c, "ord_view", stored(t, c, evs, "google", acked, statestore.Delivery{}))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := o2.Render(nil, nil, statestore.LastEnvelope, partners, time.Now()); err != nil || s.Envelope.WebhookID != "wh-acked" {
		t.Errorf("last envelope without pending: %+v, %v", s, err)
	}
	if s, err := o2.Render(nil, nil, statestore.ResendEnvelope, partners, time.Now()); err != nil || s.Envelope.WebhookID == "wh-acked" || !s.Envelope.Stamp.After(acked.Stamp) {
		t.Errorf("resend of a snapshot not pending: %+v, %v; want the next envelope", s, err)
	}
}

func TestOrderViewPartnersAndHeldOrders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := avrocodec.New()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := statestore.OpenOrder(ctx, c, "ord_new", nil)
	if err != nil || empty.Placed || len(empty.Events) != 0 || empty.Record.OrderID != "ord_new" {
		t.Fatalf("an order without state: %+v, %v", empty, err)
	}

	evs := ordereventstest.Lifecycle("ord_p")
	// Events after the placement only: held, no snapshot.
	held, err := statestore.OpenOrder(ctx, c, "ord_p", stored(t, c, evs[1:], "", statestore.Delivery{}, statestore.Delivery{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := held.Render(nil, nil, statestore.LastEnvelope, partners, time.Now()); held.Placed || !errors.Is(err, fold.ErrNotPlaced) {
		t.Errorf("held order: placed %v, render error %v; want fold.ErrNotPlaced", held.Placed, err)
	}

	// The partner: named by the events, else recorded, else the default; its version
	// decides the body, and an unknown partner is the Version function's error.
	for _, tc := range []struct {
		events, recorded, want string
		wantErr                bool
	}{
		{events: "", recorded: "", want: "google"},
		{events: "", recorded: "legacy", want: "legacy"},
		{events: "legacy", recorded: "google", want: "legacy"},
		{events: "gone", recorded: "", want: "gone", wantErr: true},
	} {
		evs := ordereventstest.Lifecycle("ord_p")
		for i := range evs {
			evs[i].PartnerID = tc.events
		}
		o, err := statestore.OpenOrder(ctx, c, "ord_p", stored(t, c, evs, tc.recorded, statestore.Delivery{}, statestore.Delivery{}))
		if err != nil {
			t.Fatal(err)
		}
		snap, err := fold.Fold(o.Events)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.PartnerOf(snap, partners); got != tc.want {
			t.Errorf("%+v: partner %q", tc, got)
		}
		s, err := o.Render(snap, nil, statestore.NextEnvelope, partners, time.Now())
		if (err != nil) != tc.wantErr {
			t.Errorf("%+v: render error %v", tc, err)
			continue
		}
		if err == nil && s.Partner != tc.want {
			t.Errorf("%+v: rendered for %q", tc, s.Partner)
		}
	}
}
