package relay

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/internal/statestore"
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
	// Schema is the schema the codec stores events with; Learn adds a writer schema
	// another relay stored events with (read from the state topic's schema records).
	Schema() string
	Fingerprint() uint64
	Learn(schema string) (uint64, error)
}

// RecordMapper turns input records of the merchant's own schemas into events
// (internal/mapping.Records): set, it replaces the Codec's Decode for input records.
type RecordMapper interface {
	MapRecord(ctx context.Context, rec *kgo.Record) (mapping.Mapped, error)
}

// decode turns an input record into an event: with the mapping when one is configured,
// else with the codec (ucprelay's own schema). ignored: the mapping skips the record.
//
// A value in ucprelay's own stored form (single-object encoding with the current schema:
// an event a dead letter carried back from the state) is decoded as such on any input.
func (r *Relay) decode(ctx context.Context, rec *kgo.Record) (ev orderevents.Event, ignored bool, err error) {
	if r.cfg.Mapper == nil || r.codec.Canonical(rec.Value) {
		ev, err = r.codec.Decode(ctx, rec.Value)
		return ev, false, err
	}
	m, err := r.cfg.Mapper.MapRecord(ctx, rec)
	if err != nil {
		return ev, false, err
	}
	if m.Ignored {
		r.stats.unmatched.Add(1)
		r.metrics.add(ctx, r.metrics.unmatched, 1, attribute.String("topic", m.Topic), attribute.String("record", m.RecordName))
		return ev, true, nil
	}
	return m.Event, false, nil
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
	// dead and fwd are what the order's records produce besides state: added to the
	// batch only when the order is done, so a bug half way leaves nothing behind.
	dead []deadletter.Record
	fwd  []*kgo.Record
	// render: no records, render the order's deferred snapshot (clock.go).
	render bool
	// premapped are the events of re-keyed records folded here directly (inputs.go), by
	// their record (a copy keyed by the order id).
	premapped map[*kgo.Record]orderevents.Event
}

// process folds a poll's records into the batch: orders concurrently (up to Workers),
// each order's records in sequence (P5). It returns the partitions to hold (a record
// needs a dependency that is down) apart from the errors that end the transaction.
func (r *Relay) process(ctx context.Context, fs kgo.Fetches, b *batch) (map[tp]*holdError, error) {
	var work []*keyWork
	var rekeys []*kgo.Record
	var err error
	byKey := map[int32]map[string]*keyWork{} // unit, order id: one order's records of every direct input
	r.mu.Lock()
	fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if len(ftp.Records) == 0 {
			return
		}
		if ftp.HighWatermark >= 0 {
			r.lags[tp{ftp.Topic, ftp.Partition}] = max(ftp.HighWatermark-ftp.Records[len(ftp.Records)-1].Offset-1, 0)
		}
		b.consumed += len(ftp.Records)
		if r.rekeyed[ftp.Topic] {
			rekeys = append(rekeys, ftp.Records...)
			return
		}
		p := r.parts[ftp.Partition]
		if p == nil || !slices.Contains(r.direct, ftp.Topic) {
			err = cmpErr(err, fmt.Errorf("%w: %s/%d", errNotOwned, ftp.Topic, ftp.Partition))
			return
		}
		sp := b.part(p)
		keys := byKey[p.id]
		if keys == nil {
			keys = map[string]*keyWork{}
			byKey[p.id] = keys
		}
		for _, rec := range ftp.Records {
			if r.wantsRekey(rec) {
				rekeys = append(rekeys, rec)
				continue
			}
			k := string(rec.Key)
			w := keys[k]
			if w == nil {
				w = &keyWork{p: p, sp: sp, key: k}
				keys[k] = w
				work = append(work, w)
			}
			w.recs = append(w.recs, rec)
		}
	})
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var errs []error
	if len(rekeys) > 0 {
		var local []rekeyed
		local, errs = r.rekeyAll(ctx, b, rekeys)
		work = r.foldHere(b, local, byKey, work)
	}
	ch := make(chan *keyWork)
	var (
		wg  sync.WaitGroup
		emu sync.Mutex
	)
	for range min(r.cfg.Workers, len(work)) {
		wg.Go(func() {
			for w := range ch {
				if werr := r.processKeySafe(ctx, b, w); werr != nil {
					emu.Lock()
					errs = append(errs, werr)
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
	holds, err := holdsOf(errs)
	return holds, err
}

// processKeySafe runs processKey and contains a bug: a panic while one order's records
// fold or render is recovered, logged with its stack, counted, and the records are
// dead-lettered as internal_error with the order's state left as it was. The partition
// and the process go on (P8).
func (r *Relay) processKeySafe(ctx context.Context, b *batch, w *keyWork) (err error) {
	before, staged, job := w.sp.snapshot(w.key)
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		stack := debug.Stack()
		w.sp.restore(w.key, before, staged, job)
		r.internalError(ctx, b, w, v, stack)
		if w.render {
			err = fmt.Errorf("panic: %v", v) // renderDeferred stops retrying it
			return
		}
		err = nil
	}()
	if why := r.isolatedErr(w.key); why != "" {
		r.setAside(w, why)
	} else if w.render {
		if err := r.renderCurrent(ctx, b, w); err != nil {
			return err
		}
	} else if err := r.processKey(ctx, b, w); err != nil {
		return err
	}
	for _, d := range w.dead {
		b.deadLetter(r.dlq, d)
	}
	for _, f := range w.fwd {
		b.forward(f)
	}
	r.stats.forwarded.Add(int64(len(w.fwd)))
	return nil
}

// internalError dead-letters an order's records after a bug (a panic) stopped their
// fold: each as it was received, with reason internal_error.
func (r *Relay) internalError(ctx context.Context, b *batch, w *keyWork, v any, stack []byte) {
	r.log.Error("internal error: the order's records are dead-lettered and its state is unchanged",
		"order_id", w.key, "partition", w.p.id, "records", len(w.recs), "panic", fmt.Sprint(v), "stack", string(stack))
	for _, rec := range w.recs {
		if rec.Headers != nil && deadletter.ReplayKindOf(rec.Headers) == deadletter.ReplayResend {
			continue // a request for a resend holds no event: nothing is lost
		}
		d := deadletter.FromSource(rec)
		d.Stage, d.Reason, d.Error = deadletter.StageFold, ReasonInternal, fmt.Sprintf("internal error (a bug; report it with ucprelay.version): %v", v)
		b.deadLetter(r.dlq, d)
	}
}

// processKey folds one order's records of a poll into the batch.
func (r *Relay) processKey(ctx context.Context, b *batch, w *keyWork) error {
	if statestore.IsNotOurs(w.sp.value(w.key)) && !r.skipNotOurs(w) {
		return nil
	}
	src := deadletter.FromSource
	n := r.inputPartitions.Load()
	var (
		news    []orderevents.Event
		newRecs = map[string]*kgo.Record{}
		o       *opened // the order's stored state, opened at its first event
		spanCtx trace.SpanContext
		lastRec *kgo.Record
	)
	resend, release := false, false // requests: a dead-letter replay, `ucprelay state release`
	for _, rec := range w.recs {
		rctx, span := startRecordSpan(ctx, rec)
		spanCtx = span.SpanContext()
		lastRec = rec
		a, err := r.admit(rctx, w, rec, n, src)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			span.End()
			return err
		}
		span.End()
		switch {
		case a.dead != nil:
			w.dead = append(w.dead, *a.dead)
			continue
		case a.resend:
			resend = true
			continue
		case a.release:
			release = true
			continue
		case a.drop:
			// Everything before the drop goes with the order; what follows starts anew.
			r.drop(w, rec)
			news, newRecs, o, resend, release = nil, map[string]*kgo.Record{}, nil, false, false
			continue
		}
		ev := a.ev
		if ev == nil {
			continue // forwarded
		}
		if o == nil {
			o = r.openOrder(ctx, w, rec)
		}
		if o.holds(ev.ID) || newRecs[ev.ID] != nil {
			r.stats.duplicates.Add(1)
			continue
		}
		news = append(news, *ev)
		newRecs[ev.ID] = rec
	}
	if (release || resend) && o == nil && len(news) == 0 {
		o = r.openOrder(ctx, w, lastRec)
	}
	if o != nil && o.parked != nil {
		return r.keepParked(ctx, w, o, news, newRecs, release)
	}
	if o != nil && o.unparked {
		// The original goes back in place of the parked record; new state, if any,
		// replaces it below.
		w.sp.stage(w.key, o.original, nil)
		w.sp.markParked(w.key, "")
		news = append(o.released, news...)
	}
	if len(news) == 0 {
		if resend {
			return r.resendCurrent(ctx, b, w, o, spanCtx, lastRec)
		}
		return nil
	}
	// With new events a replay needs nothing more: their snapshot is the current one.
	st := o.order
	// An order whose state record would outgrow the state topic keeps the new events that
	// fit, in arrival order; the ones after them are dead-lettered as order_too_large.
	var left []tooLargeEvent
	for {
		m := merge(st.Events, st.Placed, news)
		if st.Placed && m.snap == nil {
			// The stored events of a placed order no longer fold (a fold rule changed
			// underneath them): the order's state is unreadable as it stands.
			o.park(ReasonStateUnreadable, errNoLongerFolds(st.Events))
			return r.keepParked(ctx, w, o, news, newRecs, false)
		}
		size := 0
		if m.added > 0 || len(m.events) != len(st.Events) {
			var err error
			if size, err = r.stage(ctx, b, w, st, m, canonicalOf(r.codec, newRecs), spanCtx, lastRec); err != nil {
				return err
			}
		}
		if size == 0 || len(news) == 1 {
			r.rejections(w, m, newRecs, src)
			if size > 0 {
				left = append(left, tooLargeEvent{news[0], size})
			}
			for i := len(left) - 1; i >= 0; i-- {
				r.tooLarge(w, left[i].ev, left[i].size, newRecs[left[i].ev.ID])
			}
			return nil
		}
		left = append(left, tooLargeEvent{news[len(news)-1], size})
		news = news[:len(news)-1]
	}
}

// tooLargeEvent is an event left out of its order's state, with the size of the state
// record it would have made.
type tooLargeEvent struct {
	ev   orderevents.Event
	size int
}

// rejections dead-letters the events a merge rejected.
func (r *Relay) rejections(w *keyWork, m merged, newRecs map[string]*kgo.Record, src func(*kgo.Record) deadletter.Record) {
	for _, rj := range m.rejected {
		d := deadletter.Record{OrderID: w.key, Stage: deadletter.StageFold, Reason: reasonOf(rj.err, fold.ReasonUnclassified), Error: rj.err.Error()}
		if rec := newRecs[rj.ev.ID]; rec != nil && !rj.held {
			d = src(rec)
			d.Stage, d.Reason, d.Error = deadletter.StageFold, reasonOf(rj.err, fold.ReasonUnclassified), rj.err.Error()
		} else {
			// A held event the placement contradicts (or one held while the order was
			// parked): its input record is long committed, so the dead letter carries
			// its canonical bytes.
			d.SourceTopic, d.SourcePartition, d.SourceOffset = r.cfg.StateTopic, w.p.id, -1
			d.Value, _ = r.codec.EncodeSingleObject(rj.ev)
		}
		w.dead = append(w.dead, d)
	}
}

// canonicalOf returns the received bytes of the records already in the stored form, by
// event id: they are stored as received, not encoded again.
func canonicalOf(c Codec, newRecs map[string]*kgo.Record) map[string][]byte {
	var fresh map[string][]byte
	for id, rec := range newRecs {
		if c.Canonical(rec.Value) {
			if fresh == nil {
				fresh = make(map[string][]byte, len(newRecs))
			}
			fresh[id] = rec.Value
		}
	}
	return fresh
}

// admission is what admit decided about one input record: dead-letter it, fold its
// event, resend the order's current snapshot (a dead-letter replay of a delivery), or
// nothing (forwarded to the order's partition).
type admission struct {
	dead   *deadletter.Record
	ev     *orderevents.Event
	resend bool
	// release and drop are requests of `ucprelay state release|drop` for a parked order.
	release, drop bool
}

// admit decodes and checks one record. An error means nothing could be decided.
func (r *Relay) admit(ctx context.Context, w *keyWork, rec *kgo.Record, n int32, src func(*kgo.Record) deadletter.Record) (admission, error) {
	fail := func(stage deadletter.Stage, reason, text string) (admission, error) {
		d := src(rec)
		d.Stage, d.Reason, d.Error = stage, reason, text
		return admission{dead: &d}, nil
	}
	if ev, ok := w.premapped[rec]; ok {
		return admission{ev: &ev}, nil // a re-keyed record, mapped already (inputs.go)
	}
	if len(rec.Key) == 0 {
		return fail(deadletter.StageDecode, ReasonMissingKey, "record has no key; the key must be the order id")
	}
	if to := r.part.Partition(rec.Key, n); to != rec.Partition {
		if from := deadletter.HeaderValue(rec.Headers, HeaderForwardedFrom); from != "" {
			// Forwarded once already, by a replica that placed the order here: the
			// replicas disagree on the partitioner. Forwarding again could loop; folding
			// here would fold the order without its history.
			return fail(deadletter.StageDecode, ReasonPartitionerMismatch, fmt.Sprintf(
				"record forwarded from %s to partition %d, but this relay's partitioner (%s) places order %q in partition %d of %d: replicas disagree on kafka.partitioner",
				from, rec.Partition, r.cfg.Partitioner, rec.Key, to, n))
		}
		// The input grew since this record was written: its order now lives in another
		// partition, whose worker holds the order's state. Forward it there (P4 makes the
		// late arrival harmless).
		fwd := &kgo.Record{Topic: rec.Topic, Partition: to, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp,
			Headers: append(append([]kgo.RecordHeader{}, rec.Headers...), kgo.RecordHeader{
				Key: HeaderForwardedFrom, Value: fmt.Appendf(nil, "%s/%d@%d", rec.Topic, rec.Partition, rec.Offset)})}
		w.fwd = append(w.fwd, fwd)
		return admission{}, nil
	}
	if kind := deadletter.ReplayKindOf(rec.Headers); kind == deadletter.ReplayResend || kind == deadletter.RequestRelease || kind == deadletter.RequestDrop {
		ref, err := deadletter.ParseReference(rec.Value)
		if err != nil || ref.OrderID != string(rec.Key) {
			return fail(deadletter.StageDecode, ReasonInvalidReplay, fmt.Sprintf("a %s request needs a reference to order %q: %v", kind, rec.Key, err))
		}
		return admission{resend: kind == deadletter.ReplayResend, release: kind == deadletter.RequestRelease, drop: kind == deadletter.RequestDrop}, nil
	}
	ev, ignored, err := r.decode(ctx, rec)
	if ignored {
		return admission{}, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return admission{}, ctx.Err()
		}
		if isTransient(err) {
			// A dependency is down: the record is fine, retrying changes the outcome.
			// Its partition waits (hold.go); no retry runs inside the transaction.
			return admission{}, &holdError{rec: rec, err: err}
		}
		return fail(deadletter.StageDecode, reasonOf(err, ReasonDecodeFailed), err.Error())
	}
	if ev.OrderID != string(rec.Key) {
		return fail(deadletter.StageDecode, ReasonKeyMismatch, fmt.Sprintf("record key %q but event %s is of order %q", rec.Key, ev.ID, ev.OrderID))
	}
	return admission{ev: &ev}, nil
}

// resendCurrent answers a replay of a failed delivery: it queues the order's current
// snapshot with a new envelope, unless the partner already acknowledged it or it is on
// its way, so the partner never gets the stale snapshot that failed (P2) and replaying
// twice is harmless.
func (r *Relay) resendCurrent(ctx context.Context, b *batch, w *keyWork, o *opened, sc trace.SpanContext, last *kgo.Record) error {
	st := o.order
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
		o.park(ReasonStateUnreadable, fmt.Errorf("the stored events no longer fold: %w", err))
		return r.keepParked(ctx, w, o, nil, nil, false)
	}
	r.stats.replayed.Add(1)
	if size, err := r.stage(ctx, b, w, st, merged{events: st.Events, snap: snap}, nil, sc, last); err != nil || size == 0 {
		return err
	}
	// Only the pending mark grew, and the record no longer fits: the order stays as it is.
	r.log.Error("replay: the order's state record would outgrow the state topic with its pending mark; nothing is resent",
		"order_id", w.key, "state_topic", r.cfg.StateTopic)
	r.stats.replaySkipped.Add(1)
	return nil
}

func hasEvent(evs []orderevents.Event, id string) bool {
	for i := range evs {
		if evs[i].ID == id {
			return true
		}
	}
	return false
}
