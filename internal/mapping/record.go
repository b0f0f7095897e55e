package mapping

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/pkg/avrocodec"
)

// Headers the relay sets on the records it re-keys (a topic keyed by something else than
// the order id) and on their dead letters, so that a record read anywhere else is mapped
// as the record it was.
const (
	// HeaderSourceTopic names the topic whose mapping applies to the record.
	HeaderSourceTopic = "ucprelay.source-topic"
	// HeaderSourceKey is the record's key on that topic (the rules' key variable).
	HeaderSourceKey = "ucprelay.source-key"
	// HeaderRekey marks a record that still has to be re-keyed by its order id (a
	// dead letter of the re-keying, replayed): the relay maps it and forwards it to
	// its order's partition of the repartition topic instead of folding it.
	HeaderRekey = "ucprelay.rekey"
	// HeaderRekeyedFrom is "topic/partition@offset" of the record a re-keyed record
	// was read from.
	HeaderRekeyedFrom = "ucprelay.rekeyed-from"
)

// Records maps Kafka records: it decodes each value with its writer's schema (the
// codec's registry, or single-object fingerprints) and applies the mapping of its topic.
type Records struct {
	Mapper *Mapper
	Codec  *avrocodec.Codec
}

// Mapped is what became of one record.
type Mapped struct {
	Result
	// RecordName is the full name of the record's writer schema ("" if it did not decode).
	RecordName string
	// Topic is the topic whose mapping applied.
	Topic string
}

// MapRecord decodes and maps rec. A value that does not decode fails with the codec's
// reasons (a registry that is down with a transient one); a record the mapping refuses
// with unmapped or mapping_failed. A record that names a mapped source topic
// (HeaderSourceTopic) is mapped as the record it was there: that topic's rules, its key.
func (rs Records) MapRecord(ctx context.Context, rec *kgo.Record) (Mapped, error) {
	g, err := rs.Codec.DecodeGeneric(ctx, rec.Value)
	if err != nil {
		return Mapped{}, err
	}
	in := Input{Topic: rec.Topic, Key: rec.Key, Timestamp: rec.Timestamp, Record: g}
	if len(rec.Headers) > 0 {
		in.Headers = make(map[string]string, len(rec.Headers))
		var src, key string
		for _, h := range rec.Headers {
			switch h.Key {
			case HeaderSourceTopic:
				src = string(h.Value)
			case HeaderSourceKey:
				key = string(h.Value)
			case HeaderRekey, HeaderRekeyedFrom:
			default:
				in.Headers[h.Key] = string(h.Value)
			}
		}
		if src != "" && rs.Mapper.Mapped(src) {
			in.Topic, in.Key = src, []byte(key)
		}
	}
	res, err := rs.Mapper.Map(in)
	return Mapped{Result: res, RecordName: g.Name, Topic: in.Topic}, err
}
