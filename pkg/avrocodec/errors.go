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
)

// DecodeError is a failure to turn a record value into an event. Reason is one of the
// Reason* constants. Every reason is permanent (the same bytes will fail again, so the
// record belongs in the dead-letter topic) except [ReasonRegistryUnavailable], which is
// [DecodeError.Transient]: retry later, do not dead-letter.
type DecodeError struct {
	Reason string
	Err    error
}

func (e *DecodeError) Error() string { return "avrocodec: " + e.Reason + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Transient reports whether the same bytes may decode later.
func (e *DecodeError) Transient() bool { return e.Reason == ReasonRegistryUnavailable }

// ReasonOf returns the reason of a *DecodeError in err's chain ("" when there is none).
func ReasonOf(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

func decodeErr(reason string, format string, args ...any) error {
	return &DecodeError{Reason: reason, Err: fmt.Errorf(format, args...)}
}
