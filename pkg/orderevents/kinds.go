package orderevents

import (
	"errors"
	"fmt"
)

// FulfillmentRecorded is an entry of the UCP fulfilment log: shipped, in_transit,
// delivered, failed_attempt, canceled, undeliverable, returned_to_sender, processing or
// another type the merchant uses. Its UCP event id is the Event's ID. Only `shipped`
// quantities count as fulfilled.
type FulfillmentRecorded struct {
	Type           string
	Lines          []LineQuantity
	TrackingNumber string
	TrackingURL    string
	Carrier        string
	Description    string
}

// Kind implements Payload.
func (FulfillmentRecorded) Kind() Kind { return KindFulfillmentRecorded }

// FulfillmentShipped is the fulfilment type whose quantities count as fulfilled.
const FulfillmentShipped = "shipped"

// ExpectationsChanged replaces the order's delivery promises with a complete new list
// (splits, merges, new dates or descriptions).
type ExpectationsChanged struct {
	Expectations []Expectation
}

// Kind implements Payload.
func (ExpectationsChanged) Kind() Kind { return KindExpectationsChanged }

// LinesCanceled cancels quantities of lines that have not shipped. It appears in the UCP
// order as a completed `cancellation` adjustment (id = the Event's ID) with negative
// quantities, and lowers each line's total.
type LinesCanceled struct {
	// Lines and the (positive) quantities cancelled.
	Lines       []LineQuantity
	Description string
}

// Kind implements Payload.
func (LinesCanceled) Kind() Kind { return KindLinesCanceled }

// OrderCanceled cancels every quantity that has not shipped, as one `cancellation`
// adjustment (id = the Event's ID).
type OrderCanceled struct {
	Description string
}

// Kind implements Payload.
func (OrderCanceled) Kind() Kind { return KindOrderCanceled }

// AdjustmentRecorded is a post-order change, usually a money movement: refund, return,
// credit, price_adjustment, dispute, cancellation, ... A later event with the same
// AdjustmentID updates the adjustment in place (e.g. pending → completed).
type AdjustmentRecorded struct {
	// AdjustmentID is the UCP adjustment id; empty means the Event's ID.
	AdjustmentID string
	Type         string
	// Status is pending, completed or failed.
	Status string
	// Lines carry signed quantities: negative for reductions (returns, cancellations),
	// positive for additions. Only `return` and `cancellation` change a line's total.
	Lines []LineQuantity
	// Totals are signed: a negative `total` is money back to the buyer.
	Totals []Total
	// Currency, when set, must be the order's currency.
	Currency    string
	Description string
}

// Kind implements Payload.
func (AdjustmentRecorded) Kind() Kind { return KindAdjustmentRecorded }

// Adjustment types that change a line's quantity.
const (
	AdjustmentReturn       = "return"
	AdjustmentCancellation = "cancellation"
)

// OrderDetailsChanged changes the order's label or permalink. Nil leaves a field as it is.
type OrderDetailsChanged struct {
	Label        *string
	PermalinkURL *string
}

// Kind implements Payload.
func (OrderDetailsChanged) Kind() Kind { return KindOrderDetailsChanged }

var adjustmentStatuses = map[string]bool{"pending": true, "completed": true, "failed": true}

func (p FulfillmentRecorded) validate() error {
	if p.Type == "" {
		return errors.New("fulfillment event without a type")
	}
	if len(p.Lines) == 0 {
		return errors.New("fulfillment event without lines")
	}
	return positive(p.Lines)
}

func (p ExpectationsChanged) validate() error { return expectations(p.Expectations) }

func (p LinesCanceled) validate() error {
	if len(p.Lines) == 0 {
		return errors.New("cancellation without lines")
	}
	return positive(p.Lines)
}

func (OrderCanceled) validate() error { return nil }

func (p AdjustmentRecorded) validate() error {
	var errs []error
	if p.Type == "" {
		errs = append(errs, errors.New("adjustment without a type"))
	}
	if !adjustmentStatuses[p.Status] {
		errs = append(errs, fmt.Errorf("adjustment status %q is not pending, completed or failed", p.Status))
	}
	for _, l := range p.Lines {
		if l.LineID == "" {
			errs = append(errs, errors.New("adjustment line without id"))
		}
	}
	return errors.Join(errs...)
}

func (p OrderDetailsChanged) validate() error {
	if p.Label == nil && p.PermalinkURL == nil {
		return errors.New("details change that changes nothing")
	}
	if p.PermalinkURL != nil && *p.PermalinkURL == "" {
		return errors.New("empty permalink url")
	}
	return nil
}

func positive(ls []LineQuantity) error {
	for _, l := range ls {
		if l.LineID == "" {
			return errors.New("line reference without id")
		}
		if l.Quantity < 1 {
			return fmt.Errorf("line %s quantity %d < 1", l.LineID, l.Quantity)
		}
	}
	return nil
}

func expectations(xs []Expectation) error {
	var errs []error
	for _, x := range xs {
		if x.ID == "" || !methodTypes[x.MethodType] {
			errs = append(errs, fmt.Errorf("expectation %q needs an id and a method type of shipping, pickup or digital", x.ID))
		}
		if len(x.Lines) == 0 {
			errs = append(errs, fmt.Errorf("expectation %q has no lines", x.ID))
		}
		if err := positive(x.Lines); err != nil {
			errs = append(errs, fmt.Errorf("expectation %s: %w", x.ID, err))
		}
	}
	return errors.Join(errs...)
}
