package relay

import (
	"errors"

	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// rejection is an event merge refused, with the fold error that says why.
type rejection struct {
	ev  orderevents.Event
	err error
	// held: the event was already in the order's state (held before the placement
	// arrived), not one of the new ones.
	held bool
}

// merged is the outcome of adding new events to an order's stored ones.
type merged struct {
	// events is the order's new event set (stored ones first, in their stored order).
	events []orderevents.Event
	// added counts the new events kept.
	added int
	// snap is the order's snapshot; nil while the order is not placed (events held).
	snap *fold.Snapshot
	// rejected are the events to dead-letter.
	rejected []rejection
}

// merge adds news to the order's stored events (base) and folds the result: P4 makes the
// snapshot a function of the set, so the fold sees every event at once. An event that
// breaks an invariant is rejected and the rest folded again: a new event, or, while the
// order waited for its placement, a held event the placement now contradicts. Stored
// events of a placed order are never rejected: they folded cleanly before, so a conflict
// is the new event's fault. news must not repeat ids of base or of each other.
func merge(base []orderevents.Event, basePlaced bool, news []orderevents.Event) merged {
	set := append(append(make([]orderevents.Event, 0, len(base)+len(news)), base...), news...)
	isNew := make(map[string]bool, len(news))
	for _, ev := range news {
		isNew[ev.ID] = true
	}
	var rejected []rejection
	for len(set) > 0 {
		snap, err := fold.Fold(set)
		if err == nil || errors.Is(err, fold.ErrNotPlaced) {
			return merged{events: set, added: countNew(set, isNew), snap: snap, rejected: rejected}
		}
		id := eventOf(err)
		if id == "" || !isNew[id] && basePlaced {
			break // not attributable to one removable event: add the new ones one by one
		}
		i := indexOf(set, id)
		if i < 0 {
			break
		}
		rejected = append(rejected, rejection{ev: set[i], err: err, held: !isNew[id]})
		set = append(set[:i:i], set[i+1:]...)
	}
	// One at a time: each new event is kept when the set with it still folds.
	set = append(make([]orderevents.Event, 0, len(base)+len(news)), base...)
	rejected = rejected[:0]
	var snap *fold.Snapshot
	for _, ev := range news {
		s, err := fold.Fold(append(set[:len(set):len(set)], ev))
		if err != nil && !errors.Is(err, fold.ErrNotPlaced) {
			rejected = append(rejected, rejection{ev: ev, err: err})
			continue
		}
		set = append(set, ev)
		snap = s
	}
	if len(set) == len(base) && len(base) > 0 {
		snap, _ = fold.Fold(set)
	}
	return merged{events: set, added: countNew(set, isNew), snap: snap, rejected: rejected}
}

func countNew(set []orderevents.Event, isNew map[string]bool) int {
	n := 0
	for _, ev := range set {
		if isNew[ev.ID] {
			n++
		}
	}
	return n
}

func indexOf(set []orderevents.Event, id string) int {
	for i := range set {
		if set[i].ID == id {
			return i
		}
	}
	return -1
}

// eventOf returns the id of the event a fold error blames, if any.
func eventOf(err error) string {
	var fe *fold.Error
	if errors.As(err, &fe) {
		return fe.EventID
	}
	return ""
}
