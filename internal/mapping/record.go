package mapping

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/pkg/avrocodec"
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
}

// MapRecord decodes and maps rec. A value that does not decode fails with the codec's
// reasons (a registry that is down with a transient one); a record the mapping refuses
// with unmapped or mapping_failed.
func (rs Records) MapRecord(ctx context.Context, rec *kgo.Record) (Mapped, error) {
	g, err := rs.Codec.DecodeGeneric(ctx, rec.Value)
	if err != nil {
		return Mapped{}, err
	}
	in := Input{Topic: rec.Topic, Key: rec.Key, Timestamp: rec.Timestamp, Record: g}
	if len(rec.Headers) > 0 {
		in.Headers = make(map[string]string, len(rec.Headers))
		for _, h := range rec.Headers {
			in.Headers[h.Key] = string(h.Value)
		}
	}
	res, err := rs.Mapper.Map(in)
	return Mapped{Result: res, RecordName: g.Name}, err
}
