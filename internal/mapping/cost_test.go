package mapping_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
)

// A rule cannot stall a partition: an expression whose work on a record passes the cost
// limit fails the record (mapping_failed), the same way every time, whether the record
// is long (the evaluation is tracked) or short (its worst case is within the limit and
// it runs untracked).
func TestCostLimit(t *testing.T) {
	t.Parallel()
	r := mapping.Rule{Name: "pairs", Kind: "OrderDetailsChanged", Event: map[string]string{
		"event_id": `value.id`, "order_id": `value.id`, "occurred_at": `millis(1)`,
		"payload": `{"label": string(value.items.map(i, value.items.map(j, i + j)).size())}`}}
	m, err := mapping.New([]mapping.Topic{{Name: "t", Rules: []mapping.Rule{r}}})
	if err != nil {
		t.Fatal(err)
	}
	record := func(n int) avrocodec.Generic {
		items := make([]any, n)
		for i := range items {
			items[i] = int64(i)
		}
		return avrocodec.Generic{Name: "com.shop.X", Value: map[string]any{"id": "o1", "items": items}}
	}
	for range 3 {
		res, err := m.Map(mapping.Input{Topic: "t", Record: record(3)})
		if err != nil || res.Event.OrderID != "o1" {
			t.Fatalf("3 items: %+v %v", res, err)
		}
		_, err = m.Map(mapping.Input{Topic: "t", Record: record(2000)})
		var me *mapping.Error
		if !errors.As(err, &me) || me.Reason() != mapping.ReasonMappingFailed || me.Field != "event.payload" || !strings.Contains(err.Error(), "cost limit exceeded") {
			t.Fatalf("2000 items (4 million pairs): %v", err)
		}
	}
}
