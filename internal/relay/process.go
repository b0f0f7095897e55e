package relay

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/wait"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// Codec turns input record values into order-domain events, and events into the
// canonical bytes the state topic keeps.
type Codec interface {
	Decode(ctx context.Context, value []byte) (orderevents.Event, error)
	EncodeSingleObject(ev orderevents.Event) ([]byte, error)
	// Canonical reports whether a value is already in the stored form (single-object
	// encoding with the current schema), so it is kept instead of encoded again.
	Canonical(value []byte) bool
}

// HeaderForwardedFrom marks an input record forwarded to its order's partition after
// the input topic grew; its value is "topic/partition@offset" of the original.
const HeaderForwardedFrom = "ucprelay.forwarded-from"

// keyWork is the records of one order in one poll, in offset order.
type keyWork struct {
	p    *partition
	sp   *stagedPart
	key  string
	recs []*kgo.Record
}

// process folds a poll's records into the batch: orders concurrently (up to Workers),
// each order's records in sequence (P5).
func (r *Relay) process(ctx context.Context, fs kgo.Fetches, b *batch) error {
	var work []*keyWork
	var err error
	r.mu.Lock()
	fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if len(ftp.Records) == 0 {
			return
		}
		p := r.parts[ftp.Partition]
		if p == nil {
			err = cmpErr(err, fmt.Errorf("%w: %s/%d", errNotOwned, ftp.Topic, ftp.Partition))
			return
		}
		if ftp.HighWatermark >= 0 {
			p.lag.Store(max(ftp.HighWatermark-ftp.Records[len(ftp.Records)-1].Offset-1, 0))
		}
		sp := b.part(p)
		byKey := map[string]*keyWork{}
		for _, rec := range ftp.Records {
			k := string(rec.Key)
			w := byKey[k]
			if w == nil {
				w = &keyWork{p: p, sp: sp, key: k}
				byKey[k] = w
				work = append(work, w)
			}
			w.recs = append(w.recs, rec)
		}
		b.consumed += len(ftp.Records)
	})
	r.mu.Unlock()
	if err != nil {
		return err
	}
	ch := make(chan *keyWork)
	var wg sync.WaitGroup
	var emu sync.Mutex
	for range min(r.cfg.Workers, len(work)) {
		wg.Go(func() {
			for w := range ch {
				if werr := r.processKey(ctx, b, w); werr != nil {
					emu.Lock()
					err = cmpErr(err, werr)
					emu.Unlock()
				}
			}
		})
	}
	for _, w := range work {
		ch <- w
	}
	close(ch)
	wg.Wait()
	return err
}

// processKey folds one order's records of a poll into the batch.
func (r *Relay) processKey(ctx context.Context, b *batch, w *keyWork) error {
	src := func(rec *kgo.Record) deadletter.Record {
		return deadletter.Record{OrderID: string(rec.Key), SourceTopic: rec.Topic, SourcePartition: rec.Partition, SourceOffset: rec.Offset, Value: rec.Value}
	}
	n := r.inputPartitions.Load()
	var (
		news    []orderevents.Event
		newRecs = map[string]*kgo.Record{}
		st      *statestore.Order
		spanCtx trace.SpanContext
		lastRec *kgo.Record
	)
	resend := false // a dead-letter replay asks for the order's current snapshot
	for _, rec := range w.recs {
		rctx, span := startRecordSpan(ctx, rec)
		spanCtx = span.SpanContext()
		lastRec = rec
		a, err := r.admit(rctx, b, rec, n, src)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			span.End()
			return err
		}
		span.End()
		if a.dead != nil {
			b.deadLetter(r.dlq, *a.dead)
			continue
		}
		if a.resend {
			resend = true
			continue
		}
		ev := a.ev
		if ev == nil {
			continue // forwarded
		}
		if st == nil {
			if st, err = statestore.OpenOrder(ctx, r.codec, w.key, w.sp.value(w.key)); err != nil {
				return fmt.Errorf("relay: state of order %s: %w", w.key, err)
			}
		}
		if hasEvent(st.Events, ev.ID) || newRecs[ev.ID] != nil {
			r.stats.duplicates.Add(1)
			continue
		}
		news = append(news, *ev)
		newRecs[ev.ID] = rec
	}
	if len(news) == 0 {
		if resend {
			return r.resendCurrent(ctx, b, w, spanCtx, lastRec)
		}
		return nil
	}
	// With new events a replay needs nothing more: their snapshot is the current one.
	m := merge(st.Events, st.Placed, news)
	for _, rj := range m.rejected {
		d := deadletter.Record{OrderID: w.key, Stage: deadletter.StageFold, Reason: reasonOf(rj.err, fold.ReasonUnclassified), Error: rj.err.Error()}
		if rec := newRecs[rj.ev.ID]; rec != nil && !rj.held {
			d = src(rec)
			d.Stage, d.Reason, d.Error = deadletter.StageFold, reasonOf(rj.err, fold.ReasonUnclassified), rj.err.Error()
		} else {
			// A held event the placement contradicts: its input record is long committed,
			// so the dead letter carries its canonical bytes.
			d.SourceTopic, d.SourcePartition, d.SourceOffset = r.cfg.StateTopic, w.p.id, -1
			d.Value, _ = r.codec.EncodeSingleObject(rj.ev)
		}
		b.deadLetter(r.dlq, d)
	}
	if m.added == 0 && len(m.events) == len(st.Events) {
		return nil
	}
	var fresh map[string][]byte
	for id, rec := range newRecs {
		if r.codec.Canonical(rec.Value) {
			if fresh == nil {
				fresh = make(map[string][]byte, len(newRecs))
			}
			fresh[id] = rec.Value
		}
	}
	return r.stage(ctx, b, w, st, m, fresh, spanCtx, lastRec)
}

// admission is what admit decided about one input record: dead-letter it, fold its
// event, resend the order's current snapshot (a dead-letter replay of a delivery), or
// nothing (forwarded to the order's partition).
type admission struct {
	dead   *deadletter.Record
	ev     *orderevents.Event
	resend bool
}

// admit decodes and checks one record. An error means nothing could be decided.
func (r *Relay) admit(ctx context.Context, b *batch, rec *kgo.Record, n int32, src func(*kgo.Record) deadletter.Record) (admission, error) {
	fail := func(stage deadletter.Stage, reason, text string) (admission, error) {
		d := src(rec)
		d.Stage, d.Reason, d.Error = stage, reason, text
		return admission{dead: &d}, nil
	}
	if len(rec.Key) == 0 {
		return fail(deadletter.StageDecode, ReasonMissingKey, "record has no key; the key must be the order id")
	}
	if to := r.part.Partition(rec.Key, n); to != rec.Partition {
		// The input grew since this record was written: its order now lives in another
		// partition, whose worker holds the order's state. Forward it there (P4 makes the
		// late arrival harmless).
		fwd := &kgo.Record{Topic: rec.Topic, Partition: to, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp,
			Headers: append(append([]kgo.RecordHeader{}, rec.Headers...), kgo.RecordHeader{
				Key: HeaderForwardedFrom, Value: fmt.Appendf(nil, "%s/%d@%d", rec.Topic, rec.Partition, rec.Offset)})}
		b.forward(fwd)
		r.stats.forwarded.Add(1)
		return admission{}, nil
	}
	if deadletter.ReplayKindOf(rec.Headers) == deadletter.ReplayResend {
		ref, err := deadletter.ParseReference(rec.Value)
		if err != nil || ref.OrderID != string(rec.Key) {
			return fail(deadletter.StageDecode, ReasonInvalidReplay, fmt.Sprintf("replay of a delivery failure needs a reference to order %q: %v", rec.Key, err))
		}
		return admission{resend: true}, nil
	}
	ev, err := r.decode(ctx, rec)
	if err != nil {
		if ctx.Err() != nil {
			return admission{}, ctx.Err()
		}
		return fail(deadletter.StageDecode, reasonOf(err, ReasonDecodeFailed), err.Error())
	}
	if ev.OrderID != string(rec.Key) {
		return fail(deadletter.StageDecode, ReasonKeyMismatch, fmt.Sprintf("record key %q but event %s is of order %q", rec.Key, ev.ID, ev.OrderID))
	}
	if ev.PartnerID != "" {
		if _, ok := r.cfg.Partners[ev.PartnerID]; !ok {
			return fail(deadletter.StageFold, ReasonUnknownPartner, fmt.Sprintf("event %s names partner %q, which is not configured", ev.ID, ev.PartnerID))
		}
	}
	return admission{ev: &ev}, nil
}

// resendCurrent answers a replay of a failed delivery: it queues the order's current
// snapshot with a new envelope, unless the partner already acknowledged it or it is on
// its way, so the partner never gets the stale snapshot that failed (P2) and replaying
// twice is harmless.
func (r *Relay) resendCurrent(ctx context.Context, b *batch, w *keyWork, sc trace.SpanContext, last *kgo.Record) error {
	st, err := statestore.OpenOrder(ctx, r.codec, w.key, w.sp.value(w.key))
	if err != nil {
		return fmt.Errorf("relay: state of order %s: %w", w.key, err)
	}
	cur := int64(len(st.Events))
	switch {
	case !st.Placed:
		r.log.Info("replay: order has no placed state here; nothing to resend", "order_id", w.key)
		r.stats.replaySkipped.Add(1)
		return nil
	case st.Record.Acked.Version >= cur, st.Record.Pending.Version >= cur:
		r.log.Info("replay: the order's current snapshot is already acknowledged or on its way", "order_id", w.key,
			"version", cur, "acked", st.Record.Acked.Version, "pending", st.Record.Pending.Version)
		r.stats.replaySkipped.Add(1)
		return nil
	}
	snap, err := fold.Fold(st.Events)
	if err != nil {
		return fmt.Errorf("relay: order %s: stored events no longer fold: %w", w.key, err)
	}
	r.stats.replayed.Add(1)
	return r.stage(ctx, b, w, st, merged{events: st.Events, snap: snap}, nil, sc, last)
}

func hasEvent(evs []orderevents.Event, id string) bool {
	for i := range evs {
		if evs[i].ID == id {
			return true
		}
	}
	return false
}

// decode retries transient decoder failures (schema registry unreachable) until ctx ends;
// anything else is returned for the dead-letter topic.
func (r *Relay) decode(ctx context.Context, rec *kgo.Record) (orderevents.Event, error) {
	for n := 0; ; n++ {
		ev, err := r.codec.Decode(ctx, rec.Value)
		if err == nil || !isTransient(err) {
			return ev, err
		}
		r.log.Warn("decode failed transiently; retrying", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
		if serr := wait.Sleep(ctx, r.cfg.Backoff.Delay(n, nil)); serr != nil {
			return ev, serr
		}
	}
}
