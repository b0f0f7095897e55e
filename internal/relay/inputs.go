package relay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// The relay's input topics.
//
// The direct inputs (InputTopic, CoTopics and RepartitionTopic) are co-partitioned:
// partition p of each holds events of the orders whose state is in state partition p. The
// relay works by *unit*: unit p is partition p of every direct input, assigned, restored,
// paused and revoked as one, and a poll's records of one order fold together whichever
// direct input they came from. The copartitioned balancer gives a member all of a unit or
// none of it; a unit whose inputs are not all assigned to this member (replicas that
// disagree on the inputs) stays paused, unrestored, and is reported in /readyz.
//
// A re-keyed input (RekeyTopics) holds no state. Each record is mapped to learn its order
// id and forwarded, as it was, to its order's partition of RepartitionTopic, keyed by the
// order id, in the transaction that consumes it: exactly once, like a forward after the
// input grew. The copy is the mapped event in ucprelay's own stored form (mapped once,
// kept as it is in the state) and names its source topic, key and record
// (mapping.HeaderSourceTopic, HeaderSourceKey, HeaderRekeyedFrom).

// tp is one partition of one topic.
type tp struct {
	topic     string
	partition int32
}

// directTopics are the co-partitioned inputs, InputTopic first.
func (c *Config) directTopics() []string {
	out := append([]string{c.InputTopic}, c.CoTopics...)
	if c.RepartitionTopic != "" {
		out = append(out, c.RepartitionTopic)
	}
	return out
}

func (c *Config) validateInputs() error {
	var errs []error
	seen := map[string]bool{}
	for _, t := range append(c.directTopics(), c.RekeyTopics...) {
		if t == "" {
			continue // a missing input topic is reported on its own
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("input topic %s is named twice", t))
		}
		seen[t] = true
		if t == c.StateTopic || t == c.DeadLetterTopic {
			errs = append(errs, fmt.Errorf("input topic %s is also the state or the dead-letter topic", t))
		}
	}
	if len(c.RekeyTopics) > 0 {
		if c.RepartitionTopic == "" {
			errs = append(errs, fmt.Errorf("topics keyed by something else than the order id (%v) need a repartition topic", c.RekeyTopics))
		}
		if c.Mapper == nil {
			errs = append(errs, fmt.Errorf("topics keyed by something else than the order id (%v) need a mapping: it names each record's order id", c.RekeyTopics))
		}
	}
	return errors.Join(errs...)
}

// consumedTopics are every topic the relay's group consumes.
func (r *Relay) consumedTopics() []string {
	return append(slices.Clone(r.direct), r.cfg.RekeyTopics...)
}

// unitPartitions names partitions ids of every direct input.
func (r *Relay) unitPartitions(ids ...int32) map[string][]int32 {
	m := make(map[string][]int32, len(r.direct))
	for _, t := range r.direct {
		m[t] = ids
	}
	return m
}

// balancers returns the group balancer: with one direct input cooperative-sticky, as
// ever; with several the copartitioned balancer (or, on the consumer protocol, the
// broker's range assignor, which co-partitions topics alike in partition count for
// members that subscribe alike). A single-input relay names both classic protocols, so
// that its group can take on more inputs by a rolling restart.
func (r *Relay) balancers() []kgo.Opt {
	several := len(r.direct) > 1
	switch {
	case r.cfg.GroupProtocol == GroupConsumer && several:
		return []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer()}
	case r.cfg.GroupProtocol == GroupConsumer:
		return []kgo.Opt{kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer()}
	case several:
		return []kgo.Opt{kgo.Balancers(newCopartitioned(r.direct))}
	default:
		return []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer(), newCopartitioned(r.direct))}
	}
}

// unitComplete reports whether every direct input's partition id is assigned here. r.mu is held.
func (r *Relay) unitComplete(id int32) bool { return len(r.assignedTP[id]) == len(r.direct) }

// incomplete describes a unit of which only some inputs are assigned here. r.mu is held.
func (r *Relay) incomplete(id int32) string {
	have := slices.Sorted(maps.Keys(r.assignedTP[id]))
	return fmt.Sprintf("partition %d: only %v of the inputs %v is assigned to this replica; it waits unprocessed (do all replicas read the same input topics?)",
		id, have, r.direct)
}

// rekeyed is a re-keyed record mapped to its order's event.
type rekeyed struct {
	rec *kgo.Record
	ev  orderevents.Event
}

// rekeyAll maps the records of re-keyed inputs concurrently (up to Workers). A record that
// cannot be mapped is dead-lettered with the headers that let `dlq replay` re-key it once
// the mapping is fixed; one that needs a dependency that is down holds its partition (an
// error of the result); a bug is recovered and dead-lettered. The others are returned.
func (r *Relay) rekeyAll(ctx context.Context, b *batch, recs []*kgo.Record) ([]rekeyed, []error) {
	out := make([]rekeyed, len(recs))
	errs := make([]error, len(recs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(recs)) {
		wg.Go(func() {
			for i := range next {
				out[i].ev, errs[i] = r.rekeyOne(ctx, b, recs[i])
				out[i].rec = recs[i]
			}
		})
	}
	for i := range recs {
		next <- i
	}
	close(next)
	wg.Wait()
	mapped := out[:0]
	var failed []error
	for i := range out {
		switch {
		case errs[i] != nil:
			failed = append(failed, errs[i])
		case out[i].ev.OrderID != "":
			mapped = append(mapped, out[i])
		}
	}
	return mapped, failed
}

// rekeyOne maps one record; a zero event means it was dead-lettered or ignored.
func (r *Relay) rekeyOne(ctx context.Context, b *batch, rec *kgo.Record) (ev orderevents.Event, err error) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("internal error while re-keying a record; it is dead-lettered", "topic", rec.Topic, "partition", rec.Partition,
				"offset", rec.Offset, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			b.deadLetter(r.dlq, r.rekeyDeadLetter(rec, ReasonInternal, fmt.Sprintf("internal error (a bug; report it with ucprelay.version): %v", v)))
			ev, err = orderevents.Event{}, nil
		}
	}()
	m, err := r.cfg.Mapper.MapRecord(ctx, rec)
	switch {
	case err != nil && ctx.Err() != nil:
		return ev, ctx.Err()
	case err != nil && isTransient(err):
		return ev, &holdError{rec: rec, err: err}
	case err != nil:
		b.deadLetter(r.dlq, r.rekeyDeadLetter(rec, reasonOf(err, ReasonDecodeFailed), err.Error()))
		return ev, nil
	case m.Ignored:
		r.stats.unmatched.Add(1)
		r.metrics.add(ctx, r.metrics.unmatched, 1, attribute.String("topic", m.Topic), attribute.String("record", m.RecordName))
		return ev, nil
	case m.Event.OrderID == "":
		b.deadLetter(r.dlq, r.rekeyDeadLetter(rec, mapping.ReasonMappingFailed,
			fmt.Sprintf("mapping %s, rule %s: the event has no order id, so the record cannot be re-keyed", m.Topic, m.Rule)))
		return ev, nil
	}
	return m.Event, nil
}

// foldHere places the mapped re-keyed records whose order's unit this replica owns, and
// fetches, into that order's work of this transaction: they fold here, exactly once with
// the offsets of their topic, without the round trip through the repartition topic (the
// fold does not depend on the order events arrive in, P4). The others go to their order's
// partition of the repartition topic, as the mapped event in ucprelay's own stored form.
func (r *Relay) foldHere(b *batch, recs []rekeyed, byKey map[int32]map[string]*keyWork, work []*keyWork) []*keyWork {
	n := r.inputPartitions.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range recs {
		oid := []byte(k.ev.OrderID)
		id := r.part.Partition(oid, n)
		hs, _ := sourceHeaders(k.rec)
		if p := r.parts[id]; p != nil && !r.paused[id] && !r.unitHeld(id) {
			// A copy keyed by the order: a dead letter of it is of the order, and a replay
			// maps it by its own topic's rules (the headers name it).
			rec := &kgo.Record{Topic: k.rec.Topic, Partition: k.rec.Partition, Offset: k.rec.Offset, Key: oid, Value: k.rec.Value,
				Timestamp: k.rec.Timestamp, Headers: hs}
			keys := byKey[id]
			if keys == nil {
				keys = map[string]*keyWork{}
				byKey[id] = keys
			}
			w := keys[k.ev.OrderID]
			if w == nil {
				w = &keyWork{p: p, sp: b.part(p), key: k.ev.OrderID}
				keys[k.ev.OrderID] = w
				work = append(work, w)
			}
			if w.premapped == nil {
				w.premapped = map[*kgo.Record]orderevents.Event{}
			}
			w.premapped[rec] = k.ev
			w.recs = append(w.recs, rec)
			continue
		}
		v, err := r.codec.EncodeSingleObject(k.ev)
		if err != nil {
			b.deadLetter(r.dlq, r.rekeyDeadLetter(k.rec, reasonOf(err, mapping.ReasonMappingFailed), fmt.Sprintf("the mapped event does not encode: %v", err)))
			continue
		}
		hs = append(hs, kgo.RecordHeader{Key: mapping.HeaderRekeyedFrom, Value: fmt.Appendf(nil, "%s/%d@%d", k.rec.Topic, k.rec.Partition, k.rec.Offset)})
		b.forward(&kgo.Record{Topic: r.cfg.RepartitionTopic, Partition: id, Key: oid, Value: v, Timestamp: k.rec.Timestamp, Headers: hs})
		r.stats.rekeyed.Add(1)
	}
	return work
}

// sourceHeaders returns rec's own headers followed by the source topic and key it is
// mapped by (its own, or the ones it already names), without the rekey mark.
func sourceHeaders(rec *kgo.Record) ([]kgo.RecordHeader, string) {
	topic, key := rec.Topic, string(rec.Key)
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+3)
	for _, h := range rec.Headers {
		switch h.Key {
		case mapping.HeaderSourceTopic:
			topic = string(h.Value)
		case mapping.HeaderSourceKey:
			key = string(h.Value)
		case mapping.HeaderRekey, mapping.HeaderRekeyedFrom:
		default:
			hs = append(hs, h)
		}
	}
	return append(hs, kgo.RecordHeader{Key: mapping.HeaderSourceTopic, Value: []byte(topic)},
		kgo.RecordHeader{Key: mapping.HeaderSourceKey, Value: []byte(key)}), topic
}

// rekeyDeadLetter is the dead letter of a record that could not be re-keyed: its order
// is unknown, and its headers ask a replay to re-key it (deadletter.Replay).
func (r *Relay) rekeyDeadLetter(rec *kgo.Record, reason, text string) deadletter.Record {
	d := deadletter.FromSource(rec)
	d.OrderID = ""
	d.Stage, d.Reason, d.Error = deadletter.StageDecode, reason, text
	d.SourceHeaders, _ = sourceHeaders(rec)
	d.SourceHeaders = append(d.SourceHeaders, kgo.RecordHeader{Key: mapping.HeaderRekey, Value: []byte("1")})
	return d
}

// wantsRekey reports whether a record of a direct input still has to be re-keyed (a
// replayed dead letter of the re-keying).
func (r *Relay) wantsRekey(rec *kgo.Record) bool {
	return r.cfg.Mapper != nil && len(r.cfg.RekeyTopics) > 0 && deadletter.HeaderValue(rec.Headers, mapping.HeaderRekey) != ""
}
