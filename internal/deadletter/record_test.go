package deadletter_test

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
)

var failedAt = time.Date(2026, 11, 30, 9, 15, 4, 123456789, time.UTC)

// ToKafka then FromKafka gives the record back: every field in its header, the key and
// the value as they were.
func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		r    deadletter.Record
	}{
		{"decode", deadletter.Record{OrderID: "ord_1", Reason: "corrupt_payload", Stage: deadletter.StageDecode,
			SourceTopic: "orders", SourcePartition: 3, SourceOffset: 41, Error: "truncated", RelayVersion: "v1.2.3",
			Value: []byte{0xc3, 0x01, 0xff}}},
		{"fold from state", deadletter.Record{OrderID: "ord_2", Reason: "over_fulfilled", Stage: deadletter.StageFold,
			SourceTopic: "ucprelay.state", SourcePartition: 0, SourceOffset: -1, Value: []byte("canonical")}},
		{"deliver", deadletter.Record{OrderID: "ord_3", Reason: "circuit_open", Stage: deadletter.StageDeliver,
			SourceTopic: "orders", SourcePartition: 1, SourceOffset: 9, Partner: "google", HTTPStatus: 503, Attempts: 8,
			FirstFailure: failedAt.Add(-10 * time.Minute), LastFailure: failedAt, Error: "503 Service Unavailable",
			RelayVersion: "dev", Value: deadletter.EncodeReference(deadletter.Reference{OrderID: "ord_3", Partner: "google", SnapshotVersion: 4, WebhookID: "wh"})}},
		{"empty value", deadletter.Record{OrderID: "ord_4", Reason: "missing_key", Stage: deadletter.StageDecode}},
		{"source headers and timestamp", deadletter.Record{OrderID: "ord_5", Reason: "unmapped", Stage: deadletter.StageDecode,
			SourceTopic: "shop.orders", SourceOffset: 7, Value: []byte("x"), SourceTimestamp: failedAt.Add(-time.Hour),
			SourceHeaders: []kgo.RecordHeader{{Key: "source-system", Value: []byte("oms")}, {Key: "traceparent", Value: []byte("00-abc")}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			kr := c.r.ToKafka("ucprelay.dlq")
			if kr.Topic != "ucprelay.dlq" || string(kr.Key) != c.r.OrderID {
				t.Fatalf("topic %q key %q", kr.Topic, kr.Key)
			}
			got, err := deadletter.FromKafka(kr)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, c.r)
			}
		})
	}
}

// Optional headers are written only when set; the fixed ones always, with the operator's
// names.
func TestToKafkaHeaders(t *testing.T) {
	t.Parallel()
	headers := func(kr *kgo.Record) map[string]string {
		m := map[string]string{}
		for _, h := range kr.Headers {
			if _, dup := m[h.Key]; dup {
				t.Errorf("header %s written twice", h.Key)
			}
			m[h.Key] = string(h.Value)
		}
		return m
	}
	minimal := headers(deadletter.Record{OrderID: "o", Reason: "missing_key", Stage: deadletter.StageDecode, SourceTopic: "in", SourceOffset: 7}.ToKafka("dlq"))
	want := map[string]string{"ucprelay.reason": "missing_key", "ucprelay.stage": "decode", "ucprelay.source.topic": "in",
		"ucprelay.source.partition": "0", "ucprelay.source.offset": "7", "ucprelay.version": ""}
	if !reflect.DeepEqual(minimal, want) {
		t.Errorf("minimal record's headers %v, want %v", minimal, want)
	}
	full := headers(deadletter.Record{OrderID: "o", Reason: "http_rejected", Stage: deadletter.StageDeliver, Partner: "google",
		HTTPStatus: 422, Attempts: 1, FirstFailure: failedAt.In(time.FixedZone("CET", 3600)), LastFailure: failedAt, Error: "no"}.ToKafka("dlq"))
	for k, v := range map[string]string{"ucprelay.partner": "google", "ucprelay.http.status": "422", "ucprelay.attempts": "1",
		"ucprelay.failure.first": "2026-11-30T09:15:04.123456789Z", "ucprelay.failure.last": "2026-11-30T09:15:04.123456789Z", "ucprelay.error": "no"} {
		if full[k] != v {
			t.Errorf("header %s = %q, want %q (times in UTC)", k, full[k], v)
		}
	}
}

func TestFromKafkaRejects(t *testing.T) {
	t.Parallel()
	valid := func(extra ...kgo.RecordHeader) []kgo.RecordHeader {
		return append([]kgo.RecordHeader{{Key: deadletter.HeaderReason, Value: []byte("circuit_open")},
			{Key: deadletter.HeaderStage, Value: []byte("deliver")}}, extra...)
	}
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	isTimeErr := func(err error) bool { var pe *time.ParseError; return errors.As(err, &pe) }
	cases := []struct {
		name    string
		headers []kgo.RecordHeader
		is      error            // in the chain (errors.Is)
		as      func(error) bool // else: the chain holds the right type
	}{
		{"no headers", nil, deadletter.ErrNotDeadLetter, nil},
		{"no reason", []kgo.RecordHeader{h(deadletter.HeaderStage, "decode")}, deadletter.ErrNotDeadLetter, nil},
		{"no stage", []kgo.RecordHeader{h(deadletter.HeaderReason, "corrupt_payload")}, deadletter.ErrNotDeadLetter, nil},
		{"empty reason", []kgo.RecordHeader{h(deadletter.HeaderReason, ""), h(deadletter.HeaderStage, "decode")}, deadletter.ErrNotDeadLetter, nil},
		{"no reason and a bad header", []kgo.RecordHeader{h(deadletter.HeaderStage, "decode"), h(deadletter.HeaderSourcePart, "x")}, deadletter.ErrNotDeadLetter, nil},
		{"partition not a number", valid(h(deadletter.HeaderSourcePart, "one")), strconv.ErrSyntax, nil},
		{"partition beyond int32", valid(h(deadletter.HeaderSourcePart, "4294967296")), strconv.ErrRange, nil},
		{"offset not a number", valid(h(deadletter.HeaderSourceOffset, "")), strconv.ErrSyntax, nil},
		{"status not a number", valid(h(deadletter.HeaderHTTPStatus, "5xx")), strconv.ErrSyntax, nil},
		{"attempts not a number", valid(h(deadletter.HeaderAttempts, "-")), strconv.ErrSyntax, nil},
		{"first failure not RFC 3339", valid(h(deadletter.HeaderFirstFailure, "yesterday")), nil, isTimeErr},
		{"last failure not RFC 3339", valid(h(deadletter.HeaderLastFailure, "1700000000")), nil, isTimeErr},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			kr := &kgo.Record{Topic: "dlq", Partition: 2, Offset: 17, Key: []byte("o"), Headers: c.headers}
			_, err := deadletter.FromKafka(kr)
			switch {
			case err == nil:
				t.Fatal("accepted")
			case c.is != nil && !errors.Is(err, c.is):
				t.Errorf("err %v, want %v in its chain", err, c.is)
			case c.as != nil && !c.as(err):
				t.Errorf("err %v, want a *time.ParseError in its chain", err)
			}
			if !errors.Is(c.is, deadletter.ErrNotDeadLetter) && errors.Is(err, deadletter.ErrNotDeadLetter) {
				t.Errorf("a bad header of a dead-letter record is not ErrNotDeadLetter: %v", err)
			}
			if !strings.Contains(err.Error(), "dlq") || !strings.Contains(err.Error(), "17") {
				t.Errorf("err %q does not locate the record", err)
			}
		})
	}
}

// A header it does not know is ignored; a bad header still returns the fields it read.
func TestFromKafkaLenient(t *testing.T) {
	t.Parallel()
	kr := &kgo.Record{Key: []byte("o"), Value: []byte("v"), Headers: []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-abc-def-01")},
		{Key: deadletter.HeaderReason, Value: []byte("http_rejected")},
		{Key: deadletter.HeaderStage, Value: []byte("deliver")},
		{Key: deadletter.HeaderHTTPStatus, Value: []byte("four hundred")},
		{Key: deadletter.HeaderPartner, Value: []byte("google")},
	}}
	r, err := deadletter.FromKafka(kr)
	if err == nil {
		t.Fatal("a bad status header was accepted")
	}
	if r.Reason != "http_rejected" || r.Partner != "google" || string(r.Value) != "v" || r.OrderID != "o" {
		t.Errorf("fields read before and after the bad header: %+v", r)
	}
	kr.Headers = append(kr.Headers[:3], kr.Headers[4:]...)
	if r, err = deadletter.FromKafka(kr); err != nil || r.Partner != "google" || r.HTTPStatus != 0 {
		t.Errorf("without the bad header: %+v, %v", r, err)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		text    string
		max     int
		secrets []string
		want    string
	}{
		{"nothing to do", "timeout", 100, nil, "timeout"},
		{"every occurrence", "key=s3cr3t; again s3cr3t", 100, []string{"s3cr3t"}, "key=[REDACTED]; again [REDACTED]"},
		{"several secrets", "a=one b=two", 100, []string{"one", "two"}, "a=[REDACTED] b=[REDACTED]"},
		{"empty secret ignored", "abc", 100, []string{"", "b"}, "a[REDACTED]c"},
		{"truncated", "0123456789", 4, nil, "0123"},
		{"exactly max", "0123", 4, nil, "0123"},
		{"redacted before truncated", "xxSECRET", 5, []string{"SECRET"}, "xx[RE"},
	}
	for _, c := range cases {
		if got := deadletter.Redact(c.text, c.max, c.secrets...); got != c.want {
			t.Errorf("%s: Redact(%q, %d, %q) = %q, want %q", c.name, c.text, c.max, c.secrets, got, c.want)
		}
	}
}

// ToKafka redacts the error text and bounds it; a secret cut by the bound leaks no part
// of itself.
func TestToKafkaRedactsAndTruncates(t *testing.T) {
	t.Parallel()
	const secret = "AIzaSy-partner-key"
	text := strings.Repeat("e", deadletter.MaxErrorLen-4) + "key=" + secret + strings.Repeat(" tail", 100)
	kr := deadletter.Record{OrderID: "o", Reason: "http_rejected", Stage: deadletter.StageDeliver, Error: text}.ToKafka("dlq", secret)
	r, err := deadletter.FromKafka(kr)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Error) != deadletter.MaxErrorLen {
		t.Errorf("error header is %d bytes, want %d", len(r.Error), deadletter.MaxErrorLen)
	}
	if strings.Contains(r.Error, secret[:4]) {
		t.Errorf("error header keeps part of the secret: %q", r.Error[len(r.Error)-20:])
	}
	if r = (deadletter.Record{Reason: "x", Stage: "y"}); hasHeader(r.ToKafka("dlq"), deadletter.HeaderError) {
		t.Error("an empty error text was written")
	}
}

func hasHeader(kr *kgo.Record, key string) bool {
	for _, h := range kr.Headers {
		if h.Key == key {
			return true
		}
	}
	return false
}

func TestReference(t *testing.T) {
	t.Parallel()
	full := deadletter.Reference{OrderID: "ord_1", Partner: "google", SnapshotVersion: 7, WebhookID: "wh_1"}
	if got := string(deadletter.EncodeReference(full)); got != `{"order_id":"ord_1","partner_id":"google","snapshot_version":7,"webhook_id":"wh_1"}` {
		t.Errorf("EncodeReference = %s", got)
	}
	if got := string(deadletter.EncodeReference(deadletter.Reference{OrderID: "o"})); got != `{"order_id":"o","snapshot_version":0}` {
		t.Errorf("EncodeReference of a bare reference = %s", got)
	}
	if back, err := deadletter.ParseReference(deadletter.EncodeReference(full)); err != nil || back != full {
		t.Errorf("ParseReference(EncodeReference(r)) = %+v, %v", back, err)
	}
	for _, bad := range []string{"", "not json", `{"order_id":""}`, `{"partner_id":"google"}`, `["ord_1"]`, `{"order_id":1}`} {
		if r, err := deadletter.ParseReference([]byte(bad)); err == nil {
			t.Errorf("ParseReference(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestReplayKindOf(t *testing.T) {
	t.Parallel()
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	cases := []struct {
		name    string
		headers []kgo.RecordHeader
		want    deadletter.ReplayKind
	}{
		{"ordinary record", nil, ""},
		{"other headers", []kgo.RecordHeader{h("traceparent", "x"), h(deadletter.HeaderReplayOf, "dlq/0@1")}, ""},
		{"event", []kgo.RecordHeader{h("traceparent", "x"), h(deadletter.HeaderReplayKind, "event")}, deadletter.ReplayEvent},
		{"resend", []kgo.RecordHeader{h(deadletter.HeaderReplayKind, "resend")}, deadletter.ReplayResend},
		{"first wins", []kgo.RecordHeader{h(deadletter.HeaderReplayKind, "resend"), h(deadletter.HeaderReplayKind, "event")}, deadletter.ReplayResend},
	}
	for _, c := range cases {
		if got := deadletter.ReplayKindOf(c.headers); got != c.want {
			t.Errorf("%s: ReplayKindOf = %q, want %q", c.name, got, c.want)
		}
	}
}
