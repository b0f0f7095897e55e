package relay

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const tracerName = "github.com/ucprelay/ucprelay/internal/relay"

// recordCarrier reads and writes W3C trace context in a Kafka record's headers.
type recordCarrier struct{ r *kgo.Record }

func (c recordCarrier) Get(key string) string {
	for _, h := range c.r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c recordCarrier) Set(key, value string) {
	for i, h := range c.r.Headers {
		if h.Key == key {
			c.r.Headers[i].Value = []byte(value)
			return
		}
	}
	c.r.Headers = append(c.r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c recordCarrier) Keys() []string {
	keys := make([]string, 0, len(c.r.Headers))
	for _, h := range c.r.Headers {
		keys = append(keys, h.Key)
	}
	return keys
}

var _ propagation.TextMapCarrier = recordCarrier{}

// startRecordSpan starts the span of one processed record, continuing the trace the
// producer put in the record's headers (W3C traceparent), if any.
func startRecordSpan(ctx context.Context, rec *kgo.Record) (context.Context, trace.Span) {
	ctx = otel.GetTextMapPropagator().Extract(ctx, recordCarrier{rec})
	return otel.Tracer(tracerName).Start(ctx, "ucprelay.process "+rec.Topic,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", rec.Topic),
			attribute.Int("messaging.destination.partition.id", int(rec.Partition)),
			attribute.Int64("messaging.kafka.offset", rec.Offset),
			attribute.String("messaging.kafka.message.key", string(rec.Key)),
		))
}
