package fold

import (
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Sent is what an order's partner may already have under some Webhook-Id: the highest
// snapshot version given an envelope before (0: none) and the ids of those sends (the
// acknowledged and the pending one; empty ids are ignored).
type Sent struct {
	Version int64
	IDs     []string
}

// Identity returns the Webhook-Id (2026-04-08) and event_id (2026-01-xx) of a new send of
// s, whose events in stored order (the order they were added in) are events, after sent.
// A Webhook-Id names one body (receivers drop a second body under an id they have seen):
//
//   - the id is that of the update's primary event, the newest (by occurred time, then
//     id) of the events this snapshot adds over the last one sent: for a late event, the
//     late event, not the newest of the whole order. A primary event with a UCP entry of
//     its own gives that entry's id (the order id for the placement), else a UUIDv5 of
//     order id and version;
//   - when that id was already sent, or the snapshot adds no event (the same version
//     rendered again), the id is a UUIDv5 of order id, version and the digest of the body
//     without its envelope (digest is called only then).
//
// The first send of an order adds all its events, so its id is s.WebhookID.
func (s *Snapshot) Identity(events []orderevents.Event, sent Sent, digest func() []byte) string {
	var primary *orderevents.Event
	for i := max(sent.Version, 0); i < int64(len(events)); i++ {
		if ev := &events[i]; primary == nil || newer(ev, primary) {
			primary = ev
		}
	}
	if primary != nil {
		id := s.idOf(primary)
		if !slices.Contains(sent.IDs, id) {
			return id
		}
	}
	return uuid5(fmt.Sprintf("%s/%d/%s", s.Order.ID, s.Version, hex.EncodeToString(digest())))
}

// newer orders events as the fold does: by occurred time, then id.
func newer(a, b *orderevents.Event) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) {
		return a.OccurredAt.After(b.OccurredAt)
	}
	return a.ID > b.ID
}

// idOf is the Webhook-Id candidate of a send whose primary event is ev: the id of the UCP
// entry ev created (fulfilment event, cancellation, adjustment), the order id for the
// placement, else (a change without an entry of its own, or an adjustment updated in
// place) a UUIDv5 of order id and version.
func (s *Snapshot) idOf(ev *orderevents.Event) string {
	switch p := ev.Payload.(type) {
	case orderevents.OrderPlaced:
		return ev.OrderID
	case orderevents.FulfillmentRecorded, orderevents.LinesCanceled, orderevents.OrderCanceled:
		return ev.ID
	case orderevents.AdjustmentRecorded:
		id := p.AdjustmentID
		if id == "" {
			id = ev.ID
		}
		if s.creators[id] == ev.ID {
			return id
		}
	}
	return uuid5(fmt.Sprintf("%s/%d", ev.OrderID, s.Version))
}
