package mapping_test

import (
	"context"
	"os"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
)

// BenchmarkMappedVsOwnSchema: what a mapping costs per record against ucprelay's own
// schema, for the same placement (two lines): "own" decodes the canonical event,
// "mapped" decodes the shop's OrderCreated with its writer schema and applies the rule
// that builds the event. Both single-object framed; records/s is the figure to compare
// (as a ratio, in the same run).
func BenchmarkMappedVsOwnSchema(b *testing.B) {
	schema, err := os.ReadFile("testdata/order_created.avsc")
	if err != nil {
		b.Fatal(err)
	}
	codec, err := avrocodec.New(avrocodec.WithKnownSchemas(string(schema)))
	if err != nil {
		b.Fatal(err)
	}
	shop, err := goavro.NewCodecForStandardJSONFull(string(schema))
	if err != nil {
		b.Fatal(err)
	}
	native, _, err := shop.NativeFromTextual([]byte(created))
	if err != nil {
		b.Fatal(err)
	}
	shopRecord, err := shop.SingleFromNative(nil, native)
	if err != nil {
		b.Fatal(err)
	}
	m, err := mapping.New([]mapping.Topic{{Name: "shop.orders", Rules: []mapping.Rule{placedRule}}})
	if err != nil {
		b.Fatal(err)
	}
	records := mapping.Records{Mapper: m, Codec: codec}
	ctx := context.Background()
	g, err := codec.DecodeGeneric(ctx, shopRecord)
	if err != nil {
		b.Fatal(err)
	}
	res, err := m.Map(mapping.Input{Topic: "shop.orders", Record: g})
	if err != nil {
		b.Fatal(err)
	}
	own, err := codec.EncodeSingleObject(res.Event)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("own", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.Decode(ctx, own); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("mapped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g, err := records.Codec.DecodeGeneric(ctx, shopRecord)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := records.Mapper.Map(mapping.Input{Topic: "shop.orders", Record: g}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
