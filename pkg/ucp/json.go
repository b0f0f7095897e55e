package ucp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrNotExpressible means an order holds something the target version cannot say, such
// as a custom total type or a negative amount in 2026-01-xx. Marshal refuses rather than
// send a body the partner's schema rejects.
var ErrNotExpressible = errors.New("ucp: not expressible in this version")

// ErrMissingEnvelope means a 2026-01-xx body was asked for without its event id or
// created time.
var ErrMissingEnvelope = errors.New("ucp: 2026-01-xx body needs event_id and created_time")

// CapabilityOrder is the capability name of the order entity.
const CapabilityOrder = "dev.ucp.shopping.order"

// legacyTotalTypes is the closed enum of 2026-01-xx total types.
var legacyTotalTypes = map[string]bool{
	"items_discount": true, "subtotal": true, "discount": true, "fulfillment": true, "tax": true, "fee": true, "total": true,
}

type wireOrder struct {
	UCP          wireUCP           `json:"ucp"`
	ID           string            `json:"id"`
	Label        string            `json:"label,omitempty"`
	CheckoutID   string            `json:"checkout_id"`
	PermalinkURL string            `json:"permalink_url"`
	Currency     string            `json:"currency,omitempty"`
	LineItems    []wireLine        `json:"line_items"`
	Fulfillment  wireFulfilment    `json:"fulfillment"`
	Adjustments  []wireAdj         `json:"adjustments"`
	Totals       []wireTotal       `json:"totals"`
	Messages     []wireMessage     `json:"messages,omitempty"`
	Attribution  map[string]string `json:"attribution,omitempty"`
	EventID      string            `json:"event_id,omitempty"`
	CreatedTime  string            `json:"created_time,omitempty"`
}

type wireMessage struct {
	Type        string `json:"type"`
	Code        string `json:"code,omitempty"`
	Path        string `json:"path,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Content     string `json:"content"`
	Severity    string `json:"severity,omitempty"`
}

type wireUCP struct {
	Version      string `json:"version"`
	Capabilities any    `json:"capabilities"`
}

type wireCapability struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version"`
}

type wireLine struct {
	ID       string       `json:"id"`
	Item     wireItem     `json:"item"`
	Quantity wireQuantity `json:"quantity"`
	Totals   []wireTotal  `json:"totals"`
	Status   LineStatus   `json:"status"`
	ParentID string       `json:"parent_id,omitempty"`
}

type wireItem struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Price    int64  `json:"price"`
	ImageURL string `json:"image_url,omitempty"`
}

type wireQuantity struct {
	Original  *int64 `json:"original,omitempty"`
	Total     int64  `json:"total"`
	Fulfilled int64  `json:"fulfilled"`
}

type wireTotal struct {
	Type        string `json:"type"`
	DisplayText string `json:"display_text,omitempty"`
	Amount      int64  `json:"amount"`
}

type wireFulfilment struct {
	Expectations []wireExpectation `json:"expectations"`
	Events       []wireEvent       `json:"events"`
}

type wireExpectation struct {
	ID            string      `json:"id"`
	LineItems     []wireRef   `json:"line_items"`
	MethodType    string      `json:"method_type"`
	Destination   wireAddress `json:"destination"`
	Description   string      `json:"description,omitempty"`
	FulfillableOn string      `json:"fulfillable_on,omitempty"`
}

type wireRef struct {
	ID       string `json:"id"`
	Quantity int64  `json:"quantity"`
}

type wireAddress struct {
	FullName        string `json:"full_name,omitempty"`
	FirstName       string `json:"first_name,omitempty"`
	LastName        string `json:"last_name,omitempty"`
	StreetAddress   string `json:"street_address,omitempty"`
	ExtendedAddress string `json:"extended_address,omitempty"`
	AddressLocality string `json:"address_locality,omitempty"`
	AddressRegion   string `json:"address_region,omitempty"`
	PostalCode      string `json:"postal_code,omitempty"`
	AddressCountry  string `json:"address_country,omitempty"`
	PhoneNumber     string `json:"phone_number,omitempty"`
}

type wireEvent struct {
	ID             string    `json:"id"`
	OccurredAt     string    `json:"occurred_at"`
	Type           string    `json:"type"`
	LineItems      []wireRef `json:"line_items"`
	TrackingNumber string    `json:"tracking_number,omitempty"`
	TrackingURL    string    `json:"tracking_url,omitempty"`
	Carrier        string    `json:"carrier,omitempty"`
	Description    string    `json:"description,omitempty"`
}

type wireAdj struct {
	ID          string      `json:"id"`
	Type        string      `json:"type"`
	OccurredAt  string      `json:"occurred_at"`
	Status      string      `json:"status"`
	LineItems   []wireRef   `json:"line_items,omitempty"`
	Amount      *int64      `json:"amount,omitempty"`
	Totals      []wireTotal `json:"totals,omitempty"`
	Description string      `json:"description,omitempty"`
}

// Marshal renders o as the body of an order webhook of version v: compact JSON, HTML
// characters not escaped, fields in the order of the published examples. env fills the
// 2026-01-xx `event_id` and `created_time` and is ignored for 2026-04-08.
func Marshal(o *Order, v Version, env Envelope) ([]byte, error) {
	if _, err := ParseVersion(string(v)); err != nil {
		return nil, err
	}
	w, err := toWire(o, v, env)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("ucp: encode order %s: %w", o.ID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// FormatTime renders a time as UCP does: RFC 3339 in UTC, fractional seconds only when set.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func toWire(o *Order, v Version, env Envelope) (*wireOrder, error) {
	legacy := v.legacy()
	w := &wireOrder{
		ID: o.ID, CheckoutID: o.CheckoutID, PermalinkURL: o.PermalinkURL,
		LineItems:   make([]wireLine, 0, len(o.LineItems)),
		Adjustments: make([]wireAdj, 0, len(o.Adjustments)),
		Fulfillment: wireFulfilment{
			Expectations: make([]wireExpectation, 0, len(o.Fulfillment.Expectations)),
			Events:       make([]wireEvent, 0, len(o.Fulfillment.Events)),
		},
	}
	if legacy {
		w.UCP = wireUCP{Version: string(v), Capabilities: []wireCapability{{Name: CapabilityOrder, Version: string(v)}}}
		if v == V20260123 {
			w.UCP.Capabilities = map[string][]wireCapability{CapabilityOrder: {{Version: string(v)}}}
		}
		if env.EventID == "" || env.CreatedTime.IsZero() {
			return nil, fmt.Errorf("%w (order %s)", ErrMissingEnvelope, o.ID)
		}
		w.EventID, w.CreatedTime = env.EventID, FormatTime(env.CreatedTime)
	} else {
		w.UCP = wireUCP{Version: string(v), Capabilities: map[string][]wireCapability{CapabilityOrder: {{Version: string(v)}}}}
		w.Label, w.Currency, w.Attribution = o.Label, o.Currency, o.Attribution
		for _, m := range o.Messages {
			w.Messages = append(w.Messages, wireMessage(m))
		}
	}
	var err error
	if w.Totals, err = totals(o.Totals, legacy, "totals"); err != nil {
		return nil, err
	}
	for i, li := range o.LineItems {
		wl := wireLine{
			ID:       li.ID,
			Item:     wireItem(li.Item),
			Quantity: wireQuantity{Total: li.Quantity.Total, Fulfilled: li.Quantity.Fulfilled},
			Status:   LineStatusOf(v, li.Quantity),
			ParentID: li.ParentID,
		}
		if li.Quantity.HasOriginal && !legacy {
			orig := li.Quantity.Original
			wl.Quantity.Original = &orig
		}
		if wl.Totals, err = totals(li.Totals, legacy, fmt.Sprintf("line_items[%d].totals", i)); err != nil {
			return nil, err
		}
		w.LineItems = append(w.LineItems, wl)
	}
	for _, e := range o.Fulfillment.Expectations {
		a := wireAddress(e.Destination)
		if v != V20260111 {
			a.FullName = ""
		}
		w.Fulfillment.Expectations = append(w.Fulfillment.Expectations, wireExpectation{
			ID: e.ID, LineItems: refs(e.LineItems, false), MethodType: e.MethodType, Destination: a,
			Description: e.Description, FulfillableOn: e.FulfillableOn,
		})
	}
	for _, e := range o.Fulfillment.Events {
		w.Fulfillment.Events = append(w.Fulfillment.Events, wireEvent{
			ID: e.ID, OccurredAt: FormatTime(e.OccurredAt), Type: e.Type, LineItems: refs(e.LineItems, false),
			TrackingNumber: e.TrackingNumber, TrackingURL: e.TrackingURL, Carrier: e.Carrier, Description: e.Description,
		})
	}
	for i, a := range o.Adjustments {
		wa := wireAdj{ID: a.ID, Type: a.Type, OccurredAt: FormatTime(a.OccurredAt), Status: a.Status, Description: a.Description}
		if legacy {
			wa.LineItems = refs(a.LineItems, true)
			if amt, ok := legacyAdjustmentAmount(a.Totals); ok {
				wa.Amount = &amt
			}
		} else {
			wa.LineItems = refs(a.LineItems, false)
			if wa.Totals, err = totals(a.Totals, false, fmt.Sprintf("adjustments[%d].totals", i)); err != nil {
				return nil, err
			}
		}
		w.Adjustments = append(w.Adjustments, wa)
	}
	return w, nil
}

// totals renders totals; 2026-01-xx has a closed set of types and unsigned amounts, with
// discounts stored positive and subtracted.
func totals(ts []Total, legacy bool, path string) ([]wireTotal, error) {
	out := make([]wireTotal, 0, len(ts))
	for i, t := range ts {
		amt := t.Amount
		if legacy {
			if !legacyTotalTypes[t.Type] {
				return nil, fmt.Errorf("%w: %s[%d].type %q is not one of the 2026-01-xx total types", ErrNotExpressible, path, i, t.Type)
			}
			if t.Type == "discount" || t.Type == "items_discount" {
				amt = -amt
			}
			if amt < 0 {
				return nil, fmt.Errorf("%w: %s[%d] %s amount %d is negative", ErrNotExpressible, path, i, t.Type, t.Amount)
			}
		}
		out = append(out, wireTotal{Type: t.Type, DisplayText: t.DisplayText, Amount: amt})
	}
	return out, nil
}

// legacyAdjustmentAmount is a 2026-01-xx adjustment's `amount`: the magnitude of its
// `total` entry (the 2026-01-xx refund example is positive).
func legacyAdjustmentAmount(ts []Total) (int64, bool) {
	for _, t := range ts {
		if t.Type == "total" {
			if t.Amount < 0 {
				return -t.Amount, true
			}
			return t.Amount, true
		}
	}
	return 0, false
}

// refs renders line references; unsigned drops the sign and zero quantities, for the
// 2026-01-xx adjustments whose quantities must be >= 1.
func refs(rs []LineRef, unsigned bool) []wireRef {
	out := make([]wireRef, 0, len(rs))
	for _, r := range rs {
		q := r.Quantity
		if unsigned {
			if q < 0 {
				q = -q
			}
			if q == 0 {
				continue
			}
		}
		out = append(out, wireRef{ID: r.ID, Quantity: q})
	}
	return out
}
