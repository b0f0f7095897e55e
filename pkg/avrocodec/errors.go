package avrocodec

import (
	"errors"
	"fmt"
)

// Dead-letter reasons of decode failures. They are stable: operators filter on them.
const (
	ReasonUnknownFraming      = "unknown_framing"
	ReasonUnknownSchemaID     = "unknown_schema_id"
	ReasonUnknownFingerprint  = "unknown_fingerprint"
	ReasonCorruptPayload      = "corrupt_payload"
	ReasonUnknownEventType    = "unknown_event_type"
	ReasonInvalidEvent        = "invalid_event"
	ReasonRegistryUnavailable = "registry_unavailable"
	// ReasonRegistryNotConfigured: a Confluent-framed value and no schema registry to ask.
	// Permanent: no retry changes it; configure schema_registry.url and replay.
	ReasonRegistryNotConfigured = "registry_not_configured"
	// ReasonRegistryRejected: the registry refused the lookup with a 4xx other than 404,
	// 401, 403, 408 and 429 (a request it will refuse again).
	ReasonRegistryRejected = "registry_rejected"
)

// Reasons lists every reason a [DecodeError] can carry, [ReasonRegistryUnavailable]
// included although it is transient and never dead-lettered. internal/deadletter checks
// its vocabulary against this list.
func Reasons() []string {
	return []string{ReasonUnknownFraming, ReasonUnknownSchemaID, ReasonUnknownFingerprint, ReasonCorruptPayload,
		ReasonUnknownEventType, ReasonInvalidEvent, ReasonRegistryUnavailable, ReasonRegistryNotConfigured,
		ReasonRegistryRejected}
}

// DecodeError is a failure to turn a record value into an event. Code is one of the
// Reason* constants. Every reason is permanent (the same bytes will fail again, so the
// record belongs in the dead-letter topic) except [ReasonRegistryUnavailable], which is
// [DecodeError.Transient]: retry later, do not dead-letter.
type DecodeError struct {
	Code string
	Err  error
}

func (e *DecodeError) Error() string { return "avrocodec: " + e.Code + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Reason returns the dead-letter reason.
func (e *DecodeError) Reason() string { return e.Code }

// Transient reports whether the same bytes may decode later.
func (e *DecodeError) Transient() bool { return e.Code == ReasonRegistryUnavailable }

// ReasonOf returns the reason of a *DecodeError in err's chain ("" when there is none).
func ReasonOf(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Code
	}
	return ""
}

func decodeErr(reason string, format string, args ...any) error {
	return &DecodeError{Code: reason, Err: fmt.Errorf(format, args...)}
}
