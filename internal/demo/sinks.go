package demo

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/ucprelay/ucprelay/internal/oracle"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// partnerSinks are the demo's two partner endpoints: the 2026-04-08 one (every partner
// but the legacy one) and the 2026-01-23 one, with the bodies each order should end at.
type partnerSinks struct {
	main, legacy *sink.Sink
	// partner of each order, and its final body in that partner's version.
	partner map[string]string
	want    map[string][]byte
}

// expect records the orders' partners and final bodies, in each partner's version.
func (p *partnerSinks) expect(byOrder map[string][]orderevents.Event) error {
	want, err := oracle.Bodies(byOrder) // 2026-04-08
	if err != nil {
		return err
	}
	p.partner, p.want = map[string]string{}, map[string][]byte{}
	for id, evs := range byOrder {
		p.partner[id], p.want[id] = evs[0].PartnerID, want[id]
		if evs[0].PartnerID != legacyPartner {
			continue
		}
		s, err := fold.Fold(evs)
		if err != nil {
			return fmt.Errorf("demo: order %s: %w", id, err)
		}
		// The envelope's fields are left out of the comparison (sameOrder).
		if p.want[id], err = ucp.Marshal(s.Order, ucp.V20260123, ucp.Envelope{EventID: "-", CreatedTime: time.Unix(1, 0)}); err != nil {
			return err
		}
	}
	return nil
}

func (p *partnerSinks) of(orderID string) *sink.Sink {
	if p.partner[orderID] == legacyPartner {
		return p.legacy
	}
	return p.main
}

// Latest is the newest snapshot of the order its partner accepted.
func (p *partnerSinks) Latest(orderID string) (sink.Delivery, bool) {
	return p.of(orderID).Latest(orderID)
}

// converged reports whether the order's newest accepted snapshot is its final order.
func (p *partnerSinks) converged(orderID string) bool {
	d, ok := p.Latest(orderID)
	return ok && sameOrder(d.Body, p.want[orderID])
}

// sameOrder compares two bodies as JSON, without the 2026-01-xx envelope fields.
func sameOrder(a, b []byte) bool {
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, k := range []string{"event_id", "created_time"} {
		delete(x, k)
		delete(y, k)
	}
	return reflect.DeepEqual(x, y)
}

// Stats adds up what both sinks saw.
func (p *partnerSinks) Stats() sink.Stats {
	a, b := p.main.Stats(), p.legacy.Stats()
	return sink.Stats{Received: a.Received + b.Received, Accepted: a.Accepted + b.Accepted, Duplicates: a.Duplicates + b.Duplicates,
		Invalid: a.Invalid + b.Invalid, Stale: a.Stale + b.Stale, Unauthorized: a.Unauthorized + b.Unauthorized, Injected: a.Injected + b.Injected}
}

// StartOutage takes both partners down; EndOutage brings them back.
func (p *partnerSinks) StartOutage() { p.main.StartOutage(); p.legacy.StartOutage() }

// EndOutage brings both partners back.
func (p *partnerSinks) EndOutage() { p.main.EndOutage(); p.legacy.EndOutage() }
