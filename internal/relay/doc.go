// Package relay is the heart of ucprelay: a consumer group reads order-domain events,
// each event is decoded and folded into the complete UCP order, and the order is
// delivered to its partner's webhook; what cannot be decoded, folded or delivered goes
// to the dead-letter topic with its reason before the input offset is committed.
//
// Partitions are processed concurrently, the records of one partition in order. Input
// offsets are committed only after every record of a poll reached an end: delivered, or
// durably dead-lettered (P1). A record that fails never stops its partition (P8).
package relay
