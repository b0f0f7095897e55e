// Package relay is the heart of ucprelay: a consumer group reads order-domain events,
// each order's events are folded into the complete UCP order, and the order is delivered
// to its partner's webhook; what cannot be decoded, folded or delivered goes to the
// dead-letter topic with its reason.
//
// One loop owns a Kafka transaction per cycle (about every CommitInterval): it folds the
// cycle's records, orders concurrently and each order's records in sequence (P5), and
// commits the input offsets together with the orders' new state records, the dead
// letters and the forwards, so nothing is lost between them (P1). Snapshots go to the
// delivery queue only once their transaction committed; the queue's outcomes
// (acknowledged, or dead-lettered after the retries, the budgets or the breaker's hold)
// come back to the partition's owner and are written by its next transaction, so a
// partition has one writer. Offsets therefore commit before delivery: a snapshot marked
// pending in its state record is resent by whoever restores the partition until its
// acknowledgement is written. A record that cannot be decoded or folded is dead-lettered
// with its reason and stage (P8), and the other orders of its partition go on (P5).
//
// The files follow one event's trip: relay.go (lifecycle, the loop), process.go (one
// order's records of a cycle), merge.go (new events with the stored ones), transaction.go
// (the batch, commit, apply, and the outcomes' way back), delivery.go (the queue, retries,
// the breaker); partition.go holds assignment, restore and revocation, config.go the
// settings and their defaults.
package relay
