package statestore_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// A Webhook-Id names one body, on every version: over random histories whose events
// arrive out of time order (late events), twice (duplicates and replays, which the relay
// drops before the fold) and in batches, with sends acknowledged late or never and
// pending ones resent after a restart (some in another UCP version: the partner's
// configuration changed), no id is ever sent with two different bodies, a resend keeps
// id, stamp and bytes unless its body renders otherwise (then it gets a new id and a
// later stamp, the same at every further restart), and a new snapshot's id is its
// primary event's: the newest of the events it adds.
func TestWebhookIDNamesOneBody(t *testing.T) {
	t.Parallel()
	for _, partner := range []string{"google", "legacy"} { // 2026-04-08, 2026-01-23
		for seed := range uint64(300) {
			t.Run(fmt.Sprintf("%s/%d", partner, seed), func(t *testing.T) {
				t.Parallel()
				identityHistory(t, partner, seed)
			})
		}
	}
}

// send is one snapshot given to the partner.
type send struct {
	d    statestore.Delivery
	body []byte
}

func identityHistory(t *testing.T, partner string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 17))
	orderID := fmt.Sprintf("ord_id_%d", seed)
	evs := gen.Lifecycle(orderID, partner, seed, time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC))
	arrivals := append([]orderevents.Event(nil), evs...)
	rng.Shuffle(len(arrivals), func(i, j int) { arrivals[i], arrivals[j] = arrivals[j], arrivals[i] })
	for range rng.IntN(4) { // duplicates and replays of events already seen
		arrivals = slices.Insert(arrivals, rng.IntN(len(arrivals)+1), evs[rng.IntN(len(evs))])
	}

	o := &statestore.Order{Record: &statestore.Record{OrderID: orderID, Partner: partner}}
	byID := map[string][]byte{} // every id sent, with its body
	var inflight []send
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ps := partners // the partners' versions; a restart may change them
	check := func(s send, what string) {
		t.Helper()
		if prev, ok := byID[s.d.WebhookID]; ok && !bytes.Equal(prev, s.body) {
			t.Fatalf("%s: Webhook-Id %s sent with two bodies:\n%s\n%s", what, s.d.WebhookID, prev, s.body)
		}
		byID[s.d.WebhookID] = s.body
	}
	for i := 0; i < len(arrivals); {
		// A batch of 1-3 arrivals, deduplicated by id as the relay's merge does.
		var added []orderevents.Event
		for n := 1 + rng.IntN(3); n > 0 && i < len(arrivals); n-- {
			ev := arrivals[i]
			i++
			if !hasID(o.Events, ev.ID) && !hasID(added, ev.ID) {
				added = append(added, ev)
			}
		}
		if len(added) == 0 {
			continue
		}
		o.Events = append(o.Events, added...)
		o.Record.Version = int64(len(o.Events))
		snap, err := fold.Fold(o.Events)
		if err != nil {
			continue // no placement yet: held, nothing sent
		}
		o.Placed = true
		now = now.Add(time.Duration(rng.IntN(3)) * time.Second)
		s, err := o.Render(snap, nil, statestore.NextEnvelope, ps, now)
		if err != nil {
			t.Fatal(err)
		}
		// The events this snapshot adds: all since the last one sent (held ones too).
		news := o.Events[max(o.Record.Acked.Version, o.Record.Pending.Version):]
		if want := primaryID(t, snap, news); !hasSentID(o.Record, want) && s.Envelope.WebhookID != want {
			t.Fatalf("new snapshot adding %v: Webhook-Id %s, want its primary event's %s", ids(news), s.Envelope.WebhookID, want)
		}
		d := statestore.Delivery{Version: s.Version, Stamp: s.Envelope.Stamp, WebhookID: s.Envelope.WebhookID, Digest: statestore.BodyDigest(s.Body)}
		o.Record.Pending = d
		sn := send{d, s.Body}
		check(sn, "new snapshot")
		inflight = append(inflight, sn)
		switch rng.IntN(4) {
		case 0: // a restart: the next owner resends the pending snapshot
			changed := rng.IntN(2) == 0 // the partner's version changed with it
			if changed {
				ps = swapVersions(ps)
			}
			r, err := o.Render(nil, nil, statestore.ResendEnvelope, ps, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			same := r.Envelope.WebhookID == s.Envelope.WebhookID && r.Envelope.Stamp.Equal(s.Envelope.Stamp) && bytes.Equal(r.Body, s.Body)
			switch {
			case !changed && !same:
				t.Fatalf("resend of %+v: %+v, body same %v", s.Envelope, r.Envelope, bytes.Equal(r.Body, s.Body))
			case changed && (r.Envelope.WebhookID == s.Envelope.WebhookID || !r.Envelope.Stamp.After(s.Envelope.Stamp)):
				t.Fatalf("resend of %+v in another version: envelope %+v, want a new id and a later stamp", s.Envelope, r.Envelope)
			}
			// A second restart before the acknowledgement sends the same request again.
			again, err := o.Render(nil, nil, statestore.ResendEnvelope, ps, now.Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if again.Envelope != r.Envelope || !bytes.Equal(again.Body, r.Body) {
				t.Fatalf("second resend: %+v, first %+v", again.Envelope, r.Envelope)
			}
			rd := statestore.Delivery{Version: r.Version, Stamp: r.Envelope.Stamp, WebhookID: r.Envelope.WebhookID, Digest: statestore.BodyDigest(r.Body)}
			check(send{rd, r.Body}, "resend")
			inflight = append(inflight, send{rd, r.Body})
		case 1, 2: // acknowledgements, in order, of some sends in flight
			for k := rng.IntN(len(inflight) + 1); k > 0; k-- {
				a := inflight[0]
				inflight = inflight[1:]
				if a.d.Version > o.Record.Acked.Version || o.Record.Acked.Stamp.Before(a.d.Stamp) {
					o.Record.Acked = a.d
				}
				if o.Record.Pending.Version <= a.d.Version {
					o.Record.Pending = statestore.Delivery{}
				}
			}
		}
	}
	if !o.Placed {
		t.Fatal("the history never placed the order")
	}
}

// swapVersions returns p with the two test partners' versions exchanged.
func swapVersions(p statestore.Partners) statestore.Partners {
	return statestore.Partners{Default: p.Default, Version: func(name string) (ucp.Version, error) {
		switch name {
		case "google":
			name = "legacy"
		case "legacy":
			name = "google"
		}
		return p.Version(name)
	}}
}

// primaryID is the id the snapshot's primary event gives: the newest of added.
func primaryID(t *testing.T, snap *fold.Snapshot, added []orderevents.Event) string {
	t.Helper()
	// Identity with nothing sent before but the events before added, and no id used.
	all := append(make([]orderevents.Event, 0, len(added)), added...)
	return snap.Identity(all, fold.Sent{}, func() []byte { t.Fatal("the primary event has an id"); return nil })
}

func hasSentID(r *statestore.Record, id string) bool {
	return id == r.Acked.WebhookID || id == r.Pending.WebhookID
}

func hasID(evs []orderevents.Event, id string) bool {
	for _, ev := range evs {
		if ev.ID == id {
			return true
		}
	}
	return false
}

func ids(evs []orderevents.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// When the primary event's id is taken (or nothing was added), the id falls back to a
// digest of the body: two different bodies of the same order and version get different
// ids, on every version (a 2026-01-xx body needs an envelope to render at all).
func TestWebhookIDDigestFallbackTellsBodiesApart(t *testing.T) {
	t.Parallel()
	for _, partner := range []string{"google", "legacy"} {
		evs := gen.Lifecycle("ord_digest", partner, 7, time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC))
		other := slices.Clone(evs)
		for i, ev := range other {
			if p, ok := ev.Payload.(orderevents.FulfillmentRecorded); ok {
				p.TrackingNumber = "changed"
				other[i].Payload = p
				break
			}
		}
		var ids []string
		for _, set := range [][]orderevents.Event{evs, other} {
			n := int64(len(set))
			// Everything was sent already: the same version rendered again adds nothing.
			o := &statestore.Order{Events: set, Placed: true, Record: &statestore.Record{OrderID: "ord_digest", Partner: partner, Version: n,
				Acked: statestore.Delivery{Version: n, Stamp: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), WebhookID: "acked"}}}
			s, err := o.Render(nil, nil, statestore.NextEnvelope, partners, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.Envelope.WebhookID)
		}
		if ids[0] == ids[1] || ids[0] == "acked" {
			t.Errorf("%s: two bodies got Webhook-Ids %q and %q", partner, ids[0], ids[1])
		}
	}
}
