// Package avro embeds the Avro schemas of the order-domain events, the source of truth
// for producers and for ucprelay's decoder. See README.md in this folder for the rules
// by which the schemas evolve.
package avro

import _ "embed"

// OrderEvent is the schema of an order-domain event (record dev.ucprelay.order.v1.OrderEvent).
//
//go:embed order_event.avsc
var OrderEvent string

// Subject is the schema registry subject producers register OrderEvent under when they
// use the default TopicNameStrategy for a topic named "orders": "<topic>-value".
func Subject(topic string) string { return topic + "-value" }
