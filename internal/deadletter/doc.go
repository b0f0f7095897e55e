// Package deadletter defines the dead-letter record of ucprelay, writes it, and reads it
// back for inspection and replay.
//
// A dead-letter record is keyed by order id. Its value is the original input record's
// bytes for decode and fold failures, and a JSON [Reference] to the order snapshot for
// delivery failures. Its headers say why (reason, stage), where it came from (source
// topic, partition, offset), and for deliveries how it failed (HTTP status, attempts,
// first and last failure). Error text is redacted of secrets before it is written (P7).
package deadletter
