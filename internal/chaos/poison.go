package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/wait"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// poisonKind is one kind of bad record of the poison storm, and the dead-letter reason
// the relays must give it: the rows of the poison matrix (internal/relay/poison_test.go)
// that a producer can write to the input topic. A kind without a reason is an order
// that is not the relays' (a platform not configured): never dead-lettered, never sent.
type poisonKind struct {
	reason string
	record func(n int, ev orderevents.Event) (*kgo.Record, error)
}

// oversizePoison is larger than the dead-letter topic's max.message.bytes in the
// scenario (dlqMaxMessageBytes): its dead letter carries a reference, not the value.
const (
	oversizePoison     = 300 << 10
	dlqMaxMessageBytes = 256 << 10
)

func (s *scenarioRun) poisonKinds() []poisonKind {
	encoded := func(ev orderevents.Event) ([]byte, error) { return s.codec.EncodeSingleObject(ev) }
	key := func(kind string, n int) []byte { return fmt.Appendf(nil, "poison_%s_%d", kind, n) }
	value := func(kind string, v []byte) func(int, orderevents.Event) (*kgo.Record, error) {
		return func(n int, _ orderevents.Event) (*kgo.Record, error) {
			return &kgo.Record{Key: key(kind, n), Value: v}, nil
		}
	}
	return []poisonKind{
		{"unknown_framing", value("garbage", []byte("not an event"))},
		{"unknown_framing", value("json", []byte(`{"order_id":"x","status":"shipped"}`))},
		{"unknown_framing", value("empty", []byte{})},
		{"unknown_framing", value("tombstone", nil)},
		{"unknown_framing", value("oversize", append([]byte{0xC3, 0x02}, bytes.Repeat([]byte{0xC3}, oversizePoison)...))},
		{"key_mismatch", func(n int, ev orderevents.Event) (*kgo.Record, error) {
			v, err := encoded(ev)
			return &kgo.Record{Key: key("wrong_key", n), Value: v}, err
		}},
		{"missing_key", func(_ int, ev orderevents.Event) (*kgo.Record, error) {
			v, err := encoded(ev)
			return &kgo.Record{Value: v}, err
		}},
		{"corrupt_payload", func(n int, ev orderevents.Event) (*kgo.Record, error) {
			v, err := encoded(ev)
			return &kgo.Record{Key: key("truncated", n), Value: v[:len(v)/2]}, err
		}},
		{"unknown_fingerprint", func(n int, ev orderevents.Event) (*kgo.Record, error) {
			v, err := encoded(ev)
			if err != nil {
				return nil, err
			}
			w := append([]byte(nil), v...)
			binary.LittleEndian.PutUint64(w[2:10], 0x0123456789abcdef)
			return &kgo.Record{Key: key("fingerprint", n), Value: w}, nil
		}},
		{"registry_not_configured", func(n int, ev orderevents.Event) (*kgo.Record, error) {
			v, err := encoded(ev)
			if err != nil {
				return nil, err
			}
			// The Confluent wire format (magic 0, schema id 1), and no registry configured.
			return &kgo.Record{Key: key("confluent", n), Value: append([]byte{0, 0, 0, 0, 1}, v[10:]...)}, nil
		}},
		{"", func(n int, ev orderevents.Event) (*kgo.Record, error) {
			id := string(key("partner", n))
			ev.ID, ev.OrderID, ev.PartnerID = id+"_e", id, "nobody"
			v, err := encoded(ev)
			return &kgo.Record{Key: []byte(id), Value: v}, err
		}},
	}
}

// poisonStorm writes every kind of poison record in bursts while relays are killed at
// random, for d. Each record must end as exactly one dead letter of its reason (the
// transaction that consumes it writes it), whatever the kills interrupt.
func (s *scenarioRun) poisonStorm(ctx context.Context, d time.Duration, sample orderevents.Event) error {
	kinds := s.poisonKinds()
	n := 0
	nextKill := time.Now().Add(time.Second)
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		recs := make([]*kgo.Record, 0, len(kinds))
		for _, k := range kinds {
			rec, err := k.record(n, sample)
			if err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		if err := produceRetrying(ctx, s.cl, recs); err != nil {
			return err
		}
		s.fmu.Lock()
		for i, k := range kinds {
			if k.reason == "" {
				s.notOurs = append(s.notOurs, string(recs[i].Key))
				continue
			}
			s.poison[k.reason]++
		}
		s.fmu.Unlock()
		s.fault("poison storm records")
		if time.Now().After(nextKill) {
			if err := s.killOne(ctx, "kill -9 (poison storm)", 500); err != nil {
				return err
			}
			nextKill = time.Now().Add(time.Duration(1500+s.rng.IntN(2000)) * time.Millisecond)
		}
		if err := wait.Sleep(ctx, time.Duration(200+s.rng.IntN(400))*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
