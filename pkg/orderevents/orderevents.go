// Package orderevents holds the merchant's order-domain events as plain Go values: the
// input of the fold that rebuilds the complete UCP order. It knows no Avro and no Kafka;
// pkg/avrocodec maps the Avro records onto these types. Standard library only.
package orderevents

import (
	"errors"
	"fmt"
	"time"
)

// Kind names a payload type. It is stable: it appears in logs and dead-letter reasons.
type Kind string

// Payload kinds.
const (
	KindOrderPlaced         Kind = "order_placed"
	KindFulfillmentRecorded Kind = "fulfillment_recorded"
	KindExpectationsChanged Kind = "expectations_changed"
	KindLinesCanceled       Kind = "lines_canceled"
	KindOrderCanceled       Kind = "order_canceled"
	KindAdjustmentRecorded  Kind = "adjustment_recorded"
	KindOrderDetailsChanged Kind = "order_details_changed"
)

// Event is one order-domain event.
type Event struct {
	// ID is unique across all orders; the fold deduplicates by it.
	ID string
	// OrderID is the order the event belongs to (the Kafka key).
	OrderID string
	// OccurredAt is when it happened at the source.
	OccurredAt time.Time
	// Source names the producing system.
	Source string
	// PartnerID is the agent platform that placed the order, when the source knows it.
	PartnerID string
	// Payload is what happened.
	Payload Payload
}

// Payload is one of the event types of this package.
type Payload interface {
	// Kind names the payload type.
	Kind() Kind
	validate() error
}

// OrderPlaced carries everything needed for the first complete order entity.
type OrderPlaced struct {
	CheckoutID   string
	PermalinkURL string
	Label        string
	Currency     string
	LineItems    []PlacedLine
	Expectations []Expectation
	Totals       []Total
	// Attribution is the checkout's referral context (campaign, click ids ...).
	Attribution map[string]string
}

// Kind implements Payload.
func (OrderPlaced) Kind() Kind { return KindOrderPlaced }

// PlacedLine is a line as bought at checkout.
type PlacedLine struct {
	ID       string
	ParentID string
	Item     Item
	Quantity int64
	Totals   []Total
}

// Item is a product.
type Item struct {
	ID       string
	Title    string
	Price    int64 // per unit, minor units
	ImageURL string
}

// Total is an amount of one type (subtotal, discount, tax, fulfillment, fee, total, ...),
// in signed minor units: discounts negative.
type Total struct {
	Type        string
	Amount      int64
	DisplayText string
}

// Expectation is a delivery promise to the buyer.
type Expectation struct {
	ID            string
	Lines         []LineQuantity
	MethodType    string // shipping, pickup, digital
	Destination   Address
	Description   string
	FulfillableOn string // "now" or an ISO 8601 time
}

// LineQuantity is a quantity of a line.
type LineQuantity struct {
	LineID   string
	Quantity int64
}

// Address is a postal address; every field is optional.
type Address struct {
	FullName        string
	FirstName       string
	LastName        string
	StreetAddress   string
	ExtendedAddress string
	Locality        string
	Region          string
	PostalCode      string
	Country         string
	PhoneNumber     string
}

// ErrInvalidEvent means an event is malformed on its own, whatever the order's state.
var ErrInvalidEvent = errors.New("orderevents: invalid event")

// Validate checks what can be checked without the order's other events.
func (e *Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: empty event id", ErrInvalidEvent)
	case e.OrderID == "":
		return fmt.Errorf("%w: event %s has no order id", ErrInvalidEvent, e.ID)
	case e.OccurredAt.IsZero():
		return fmt.Errorf("%w: event %s has no occurred time", ErrInvalidEvent, e.ID)
	case e.Payload == nil:
		return fmt.Errorf("%w: event %s has no payload", ErrInvalidEvent, e.ID)
	}
	if err := e.Payload.validate(); err != nil {
		return fmt.Errorf("%w: event %s (%s): %w", ErrInvalidEvent, e.ID, e.Payload.Kind(), err)
	}
	return nil
}

var methodTypes = map[string]bool{"shipping": true, "pickup": true, "digital": true}

func (p OrderPlaced) validate() error {
	var errs []error
	if p.CheckoutID == "" {
		errs = append(errs, errors.New("no checkout id"))
	}
	if p.PermalinkURL == "" {
		errs = append(errs, errors.New("no permalink url"))
	}
	if len(p.LineItems) == 0 {
		errs = append(errs, errors.New("no line items"))
	}
	seen := map[string]bool{}
	for _, l := range p.LineItems {
		switch {
		case l.ID == "":
			errs = append(errs, errors.New("line without id"))
		case seen[l.ID]:
			errs = append(errs, fmt.Errorf("line %s appears twice", l.ID))
		case l.Quantity < 1:
			errs = append(errs, fmt.Errorf("line %s quantity %d < 1", l.ID, l.Quantity))
		case l.Item.Price < 0:
			errs = append(errs, fmt.Errorf("line %s price %d < 0", l.ID, l.Item.Price))
		case l.Item.ID == "" || l.Item.Title == "":
			errs = append(errs, fmt.Errorf("line %s item needs id and title", l.ID))
		}
		seen[l.ID] = true
	}
	if err := expectations(p.Expectations); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
