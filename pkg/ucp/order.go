package ucp

import "time"

// Order is the UCP order entity, the superset of every supported version.
type Order struct {
	ID           string
	Label        string // 2026-04-08 only
	CheckoutID   string
	PermalinkURL string
	Currency     string // ISO 4217; 2026-04-08 only
	LineItems    []LineItem
	Fulfillment  Fulfillment
	Adjustments  []Adjustment
	Totals       []Total
	Messages     []Message         // 2026-04-08 only
	Attribution  map[string]string // 2026-04-08 only: the originating checkout's referral context
}

// Message is a business outcome message (2026-04-08): Type is error, warning or info;
// Code is required for errors and warnings, Severity for errors.
type Message struct {
	Type        string
	Code        string
	Path        string
	ContentType string // plain (default) or markdown
	Content     string
	Severity    string
}

// LineItem is one line of the order. Its status is derived when rendered.
type LineItem struct {
	ID       string
	Item     Item
	Quantity Quantity
	Totals   []Total
	ParentID string
}

// Item is the product of a line.
type Item struct {
	ID       string
	Title    string
	Price    int64 // per unit, minor units, >= 0
	ImageURL string
}

// Quantity tracks a line's units.
type Quantity struct {
	// Original is the quantity at checkout (2026-04-08 only; rendered when HasOriginal).
	Original    int64
	HasOriginal bool
	// Total is the current active quantity.
	Total int64
	// Fulfilled is the quantity shipped so far.
	Fulfilled int64
}

// Total is an amount of one type: subtotal, discount, tax, total, ... Amounts are signed
// minor units in the 2026-04-08 convention (discounts negative).
type Total struct {
	Type        string
	Amount      int64
	DisplayText string
}

// Fulfillment holds the promise to the buyer and what happened.
type Fulfillment struct {
	Expectations []Expectation
	Events       []FulfillmentEvent
}

// Expectation is a buyer-facing delivery promise.
type Expectation struct {
	ID            string
	LineItems     []LineRef
	MethodType    string // shipping, pickup, digital
	Destination   PostalAddress
	Description   string
	FulfillableOn string // "now" or an ISO 8601 time
}

// LineRef references a quantity of a line. Quantities are signed in adjustments.
type LineRef struct {
	ID       string
	Quantity int64
}

// PostalAddress is a destination address; every field is optional.
type PostalAddress struct {
	FullName        string // 2026-01-11 only
	FirstName       string
	LastName        string
	StreetAddress   string
	ExtendedAddress string
	AddressLocality string
	AddressRegion   string
	PostalCode      string
	AddressCountry  string
	PhoneNumber     string
}

// FulfillmentEvent is one entry of the append-only fulfilment log.
type FulfillmentEvent struct {
	ID             string
	OccurredAt     time.Time
	Type           string // processing, shipped, in_transit, delivered, ...
	LineItems      []LineRef
	TrackingNumber string
	TrackingURL    string
	Carrier        string
	Description    string
}

// Adjustment is a post-order change, usually a money movement.
type Adjustment struct {
	ID          string
	Type        string // refund, return, credit, price_adjustment, dispute, cancellation, ...
	OccurredAt  time.Time
	Status      string // pending, completed, failed
	LineItems   []LineRef
	Totals      []Total
	Description string
}

// LineStatus is a line's derived status.
type LineStatus string

// Line statuses.
const (
	StatusProcessing LineStatus = "processing"
	StatusPartial    LineStatus = "partial"
	StatusFulfilled  LineStatus = "fulfilled"
	StatusRemoved    LineStatus = "removed" // 2026-04-08 only
)

// LineStatusOf derives a line's status by the literal rule of version v, edge cases included:
//
//	2026-01-xx: fulfilled == total → fulfilled; else fulfilled > 0 → partial; else processing
//	2026-04-08: total == 0 → removed; else the 2026-01-xx rule
//
// So in 2026-01-xx a line with total 0 and fulfilled 0 is fulfilled, and in 2026-04-08 a
// line with fulfilled > total > 0 (two shipped, one returned) is partial.
func LineStatusOf(v Version, q Quantity) LineStatus {
	switch {
	case !v.legacy() && q.Total == 0:
		return StatusRemoved
	case q.Fulfilled == q.Total:
		return StatusFulfilled
	case q.Fulfilled > 0:
		return StatusPartial
	}
	return StatusProcessing
}

// Envelope holds the webhook-only body fields of 2026-01-xx: `event_id` and
// `created_time` (required by the UCP webhook OpenAPI). 2026-04-08 carries them in the
// Webhook-Id and Webhook-Timestamp headers instead, and Marshal ignores the envelope.
type Envelope struct {
	EventID     string
	CreatedTime time.Time
}
