package relay

import "errors"

// Dead-letter reasons the relay itself decides. Decoder and fold errors carry their own
// (avrocodec.Reason*, fold's domain errors) through a Reason() method; internal/deadletter
// documents the whole vocabulary operators filter on.
const (
	// ReasonMissingKey: an input record without a key (the key must be the order id).
	ReasonMissingKey = "missing_key"
	// ReasonKeyMismatch: the record's key is not the order id its event names.
	ReasonKeyMismatch = "key_mismatch"
	// ReasonDecodeFailed: the codec failed without saying why (no Reason of its own).
	ReasonDecodeFailed = "decode_failed"
	// ReasonInvalidReplay: a replayed delivery failure whose value is no reference to its order.
	ReasonInvalidReplay = "invalid_replay"
	// ReasonUnknownPartner: an event or snapshot for a partner that is not configured.
	ReasonUnknownPartner = "unknown_partner"
	// ReasonRender: the snapshot cannot be rendered in the partner's UCP version.
	ReasonRender = "render_failed"
	// ReasonRejected: the partner answered a permanent 4xx.
	ReasonRejected = "http_rejected"
	// ReasonRedirect: the partner answered a 3xx, which is never followed (it would send
	// the body, API key and signature elsewhere, or take another server's 200 for the
	// acknowledgement); its Location host is in the error.
	ReasonRedirect = "http_redirect"
	// ReasonRetriesExhausted: the attempt or time budget was spent on retryable failures.
	ReasonRetriesExhausted = "retries_exhausted"
	// ReasonCredentials: the partner answered 401/403 for longer than the breaker hold.
	ReasonCredentials = "credentials_rejected"
	// ReasonCircuitOpen: the partner's endpoint stayed down longer than the breaker hold.
	ReasonCircuitOpen = "circuit_open"
	// ReasonInternal: a bug (a panic) stopped the fold of the order's records; the order's
	// state is unchanged.
	ReasonInternal = "internal_error"
	// ReasonPartitionerMismatch: a record another replica forwarded here belongs elsewhere
	// by this replica's partitioner: the replicas disagree on kafka.partitioner.
	ReasonPartitionerMismatch = "partitioner_mismatch"
	// ReasonStateUnreadable: the order's stored state cannot be read; the order is parked.
	ReasonStateUnreadable = "state_unreadable"
	// ReasonOrderTooLarge: the order's state record would outgrow the state topic's
	// max.message.bytes with these events; it keeps its last good state.
	ReasonOrderTooLarge = "order_too_large"
	// ReasonProduceRefused: the broker refused a record of the order again and again (not
	// for its size); the order's records of that transaction are set aside.
	ReasonProduceRefused = "produce_refused"
	// ReasonOrphan: the order's events waited state.orphan_after for a placement that
	// never came; its state is removed, each event dead-lettered with its bytes.
	ReasonOrphan = "orphan"
)

// Reasons lists the dead-letter reasons the relay decides itself.
func Reasons() []string {
	return []string{ReasonMissingKey, ReasonKeyMismatch, ReasonDecodeFailed, ReasonInvalidReplay, ReasonUnknownPartner,
		ReasonRender, ReasonRejected, ReasonRedirect, ReasonRetriesExhausted, ReasonCredentials, ReasonCircuitOpen,
		ReasonInternal, ReasonPartitionerMismatch, ReasonStateUnreadable, ReasonOrderTooLarge, ReasonProduceRefused, ReasonOrphan}
}

// reasonOf returns the stable reason an error carries, or def.
func reasonOf(err error, def string) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) && r.Reason() != "" {
		return r.Reason()
	}
	return def
}

// isTransient reports whether err says "try again later" rather than "this input is bad".
func isTransient(err error) bool {
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}
