package deadletter

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Stage is where in the pipeline a record failed.
type Stage string

// Stages.
const (
	StageDecode  Stage = "decode"
	StageFold    Stage = "fold"
	StageDeliver Stage = "deliver"
)

// Header names. They are part of the public interface (operators filter on them).
const (
	HeaderReason       = "ucprelay.reason"
	HeaderStage        = "ucprelay.stage"
	HeaderSourceTopic  = "ucprelay.source.topic"
	HeaderSourcePart   = "ucprelay.source.partition"
	HeaderSourceOffset = "ucprelay.source.offset"
	HeaderPartner      = "ucprelay.partner"
	HeaderHTTPStatus   = "ucprelay.http.status"
	HeaderAttempts     = "ucprelay.attempts"
	HeaderFirstFailure = "ucprelay.failure.first"
	HeaderLastFailure  = "ucprelay.failure.last"
	HeaderError        = "ucprelay.error"
	HeaderRelayVersion = "ucprelay.version"
	// HeaderValueOmitted is the size of the original value when it was too large to copy.
	HeaderValueOmitted = "ucprelay.value.omitted"
	// HeaderSourceTimestamp is the input record's timestamp (RFC 3339).
	HeaderSourceTimestamp = "ucprelay.source.timestamp"
	// HeaderSourceHeaderPrefix starts the copy of each of the input record's own headers
	// (those not of ucprelay): a mapping may read them, so a replay restores them.
	HeaderSourceHeaderPrefix = "ucprelay.source.header."
)

// maxErrorLen bounds the error text kept in a header.
const maxErrorLen = 1024

// Record is one dead-lettered item.
type Record struct {
	// OrderID is the record key.
	OrderID string `json:"order_id"`
	// Reason is a stable snake_case cause, e.g. "corrupt_payload", "circuit_open" (see [Reasons]).
	Reason string `json:"reason"`
	// Stage is where it failed.
	Stage Stage `json:"stage"`
	// SourceTopic, SourcePartition and SourceOffset locate the input record that led here.
	SourceTopic     string `json:"source_topic"`
	SourcePartition int32  `json:"source_partition"`
	SourceOffset    int64  `json:"source_offset"`
	// Partner is the partner id, when known.
	Partner string `json:"partner,omitempty"`
	// HTTPStatus is the partner's last answer, 0 when there was none.
	HTTPStatus int `json:"http_status,omitempty"`
	// Attempts is the number of delivery attempts made.
	Attempts int `json:"attempts,omitempty"`
	// FirstFailure and LastFailure bound the failures; zero when not a delivery failure.
	FirstFailure time.Time `json:"first_failure,omitzero"`
	LastFailure  time.Time `json:"last_failure,omitzero"`
	// Error is the error text. It is redacted by the writer before it is written.
	Error string `json:"error,omitempty"`
	// RelayVersion is the version of the ucprelay that wrote it.
	RelayVersion string `json:"relay_version,omitempty"`
	// Value is the original input bytes, or a JSON [Reference] for delivery failures and
	// for records whose value was too large to copy (see ValueOmitted).
	Value []byte `json:"value"`
	// ValueOmitted is the size of an original value too large for the dead-letter topic:
	// Value is then a reference, and the source coordinates locate the original bytes.
	ValueOmitted int `json:"value_omitted,omitempty"`
	// SourceTimestamp and SourceHeaders are the input record's timestamp and own headers,
	// which a replay gives the record back.
	SourceTimestamp time.Time          `json:"source_timestamp,omitzero"`
	SourceHeaders   []kgo.RecordHeader `json:"source_headers,omitempty"`
}

// FromSource returns a dead letter of input record rec: its key, coordinates, value,
// timestamp and own headers (a replay restores them). The caller sets stage, reason and
// error.
func FromSource(rec *kgo.Record) Record {
	r := Record{OrderID: string(rec.Key), SourceTopic: rec.Topic, SourcePartition: rec.Partition, SourceOffset: rec.Offset,
		Value: rec.Value, SourceTimestamp: rec.Timestamp}
	for _, h := range rec.Headers {
		if !strings.HasPrefix(h.Key, "ucprelay.") {
			r.SourceHeaders = append(r.SourceHeaders, h)
		}
	}
	return r
}

// Reference is the value of a delivery failure's record: which snapshot failed. Replay
// rebuilds the order's current snapshot instead of resending this one (P2).
type Reference struct {
	OrderID         string `json:"order_id"`
	Partner         string `json:"partner_id,omitempty"`
	SnapshotVersion int64  `json:"snapshot_version"`
	WebhookID       string `json:"webhook_id,omitempty"`
}

// EncodeReference returns the JSON value of a delivery failure.
func EncodeReference(r Reference) []byte {
	b, _ := json.Marshal(r) // a struct of strings and ints always marshals
	return b
}

// ToKafka builds the Kafka record for topic, with secrets removed from the error text.
func (r Record) ToKafka(topic string, secrets ...string) *kgo.Record {
	h := []kgo.RecordHeader{
		{Key: HeaderReason, Value: []byte(r.Reason)},
		{Key: HeaderStage, Value: []byte(r.Stage)},
		{Key: HeaderSourceTopic, Value: []byte(r.SourceTopic)},
		{Key: HeaderSourcePart, Value: []byte(strconv.FormatInt(int64(r.SourcePartition), 10))},
		{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.SourceOffset, 10))},
		{Key: HeaderRelayVersion, Value: []byte(r.RelayVersion)},
	}
	add := func(k, v string) {
		if v != "" {
			h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	add(HeaderPartner, r.Partner)
	if r.HTTPStatus != 0 {
		add(HeaderHTTPStatus, strconv.Itoa(r.HTTPStatus))
	}
	if r.Attempts != 0 {
		add(HeaderAttempts, strconv.Itoa(r.Attempts))
	}
	if !r.FirstFailure.IsZero() {
		add(HeaderFirstFailure, r.FirstFailure.UTC().Format(time.RFC3339Nano))
	}
	if !r.LastFailure.IsZero() {
		add(HeaderLastFailure, r.LastFailure.UTC().Format(time.RFC3339Nano))
	}
	add(HeaderError, Redact(r.Error, maxErrorLen, secrets...))
	if r.ValueOmitted > 0 {
		add(HeaderValueOmitted, strconv.Itoa(r.ValueOmitted))
	}
	if !r.SourceTimestamp.IsZero() {
		add(HeaderSourceTimestamp, r.SourceTimestamp.UTC().Format(time.RFC3339Nano))
	}
	for _, sh := range r.SourceHeaders {
		h = append(h, kgo.RecordHeader{Key: HeaderSourceHeaderPrefix + sh.Key, Value: sh.Value})
	}
	return &kgo.Record{Topic: topic, Key: []byte(r.OrderID), Value: r.Value, Headers: h}
}

// ErrNotDeadLetter means a record lacks the headers of a dead-letter record.
var ErrNotDeadLetter = errors.New("deadletter: not a dead-letter record")

// FromKafka parses a record read from the dead-letter topic.
func FromKafka(kr *kgo.Record) (Record, error) {
	r := Record{OrderID: string(kr.Key), Value: kr.Value}
	var err error
	for _, h := range kr.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderReason:
			r.Reason = v
		case HeaderStage:
			r.Stage = Stage(v)
		case HeaderSourceTopic:
			r.SourceTopic = v
		case HeaderSourcePart:
			p, perr := strconv.ParseInt(v, 10, 32)
			r.SourcePartition, err = int32(p), errors.Join(err, perr)
		case HeaderSourceOffset:
			o, perr := strconv.ParseInt(v, 10, 64)
			r.SourceOffset, err = o, errors.Join(err, perr)
		case HeaderPartner:
			r.Partner = v
		case HeaderHTTPStatus:
			s, perr := strconv.Atoi(v)
			r.HTTPStatus, err = s, errors.Join(err, perr)
		case HeaderAttempts:
			a, perr := strconv.Atoi(v)
			r.Attempts, err = a, errors.Join(err, perr)
		case HeaderFirstFailure:
			t, perr := time.Parse(time.RFC3339Nano, v)
			r.FirstFailure, err = t, errors.Join(err, perr)
		case HeaderLastFailure:
			t, perr := time.Parse(time.RFC3339Nano, v)
			r.LastFailure, err = t, errors.Join(err, perr)
		case HeaderError:
			r.Error = v
		case HeaderRelayVersion:
			r.RelayVersion = v
		case HeaderValueOmitted:
			var perr error
			r.ValueOmitted, perr = strconv.Atoi(v)
			err = errors.Join(err, perr)
		case HeaderSourceTimestamp:
			t, perr := time.Parse(time.RFC3339Nano, v)
			r.SourceTimestamp, err = t, errors.Join(err, perr)
		default:
			if k, ok := strings.CutPrefix(h.Key, HeaderSourceHeaderPrefix); ok {
				r.SourceHeaders = append(r.SourceHeaders, kgo.RecordHeader{Key: k, Value: h.Value})
			}
		}
	}
	if r.Reason == "" || r.Stage == "" {
		return r, fmt.Errorf("%w: topic %s partition %d offset %d", ErrNotDeadLetter, kr.Topic, kr.Partition, kr.Offset)
	}
	if err != nil {
		return r, fmt.Errorf("deadletter: bad header in %s/%d@%d: %w", kr.Topic, kr.Partition, kr.Offset, err)
	}
	return r, nil
}

// Redact replaces every occurrence of each non-empty secret in text by "[REDACTED]" and
// truncates the result to at most max bytes.
func Redact(text string, max int, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "[REDACTED]")
		}
	}
	if len(text) > max {
		text = text[:max]
	}
	return text
}

// Headers of a record that `ucprelay dlq replay` wrote back to the input topic.
const (
	// HeaderReplayOf locates the dead-letter record replayed: "topic/partition@offset".
	HeaderReplayOf = "ucprelay.replay-of"
	// HeaderReplayKind says how the relay treats the replayed record.
	HeaderReplayKind = "ucprelay.replay.kind"
)

// ReplayKind is how the relay treats a replayed record.
type ReplayKind string

const (
	// ReplayEvent is an input event that failed to decode or fold, written back as it
	// was: the relay processes it again like any event (an event it already holds is a
	// duplicate and ignored).
	ReplayEvent ReplayKind = "event"
	// ReplayResend is a failed delivery: its value is the [Reference]; the relay resends
	// the order's current snapshot unless the partner already has it (P2).
	ReplayResend ReplayKind = "resend"
	// RequestRelease asks the relay owning the order (its value is the [Reference]) to
	// read a parked order's state again and, when it reads, fold its held events onto it
	// (`ucprelay state release`).
	RequestRelease ReplayKind = "release"
	// RequestDrop asks the relay owning the order to remove its state, parked or not
	// (`ucprelay state drop`).
	RequestDrop ReplayKind = "drop"
)

// ReplayKindOf returns the replay kind the headers carry, "" for an ordinary record.
func ReplayKindOf(h []kgo.RecordHeader) ReplayKind {
	for _, x := range h {
		if x.Key == HeaderReplayKind {
			return ReplayKind(x.Value)
		}
	}
	return ""
}

// ParseReference reads the value of a delivery failure's record.
func ParseReference(v []byte) (Reference, error) {
	var r Reference
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("deadletter: reference: %w", err)
	}
	if r.OrderID == "" {
		return r, errors.New("deadletter: reference without order_id")
	}
	return r, nil
}
