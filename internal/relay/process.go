package relay

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/wait"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// HeaderForwardedFrom marks an input record forwarded to its order's partition after
// the input topic grew; its value is "topic/partition@offset" of the original.
const HeaderForwardedFrom = "ucprelay.forwarded-from"

// batch is the work of one transaction.
type batch struct {
	mu          sync.Mutex
	parts       map[int32]*stagedPart
	other       []*kgo.Record // dead letters and forwards
	deadLetters []deadletter.Record
	consumed    int
}

// stagedPart is what a transaction changes in one partition.
type stagedPart struct {
	mu       sync.Mutex // guards values and jobs while orders fold concurrently
	p        *partition
	values   map[string][]byte // new state record values (nil: tombstone)
	jobs     map[string]*Job   // the newest snapshot per order, sent after commit
	outcomes map[string]Outcome
}

func newBatch() *batch { return &batch{parts: map[int32]*stagedPart{}} }

func (b *batch) part(p *partition) *stagedPart {
	b.mu.Lock()
	defer b.mu.Unlock()
	sp := b.parts[p.id]
	if sp == nil {
		sp = &stagedPart{p: p, values: map[string][]byte{}, jobs: map[string]*Job{}}
		b.parts[p.id] = sp
	}
	return sp
}

func (b *batch) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.consumed
}

func (b *batch) empty() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.consumed > 0 || len(b.other) > 0 {
		return false
	}
	for _, sp := range b.parts {
		if len(sp.values) > 0 || len(sp.outcomes) > 0 {
			return false
		}
	}
	return true
}

func (b *batch) deadLetter(w *deadletter.Writer, d deadletter.Record) {
	rec := w.Record(d)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.other = append(b.other, rec)
	b.deadLetters = append(b.deadLetters, d)
}

func (b *batch) forward(rec *kgo.Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.other = append(b.other, rec)
}

// records lists what the transaction produces: one state record per changed order,
// then dead letters and forwards.
func (b *batch) records(stateTopic string) []*kgo.Record {
	var out []*kgo.Record
	for id, sp := range b.parts {
		for key, v := range sp.values {
			out = append(out, &kgo.Record{Topic: stateTopic, Partition: id, Key: []byte(key), Value: v})
		}
	}
	return append(out, b.other...)
}

// value returns an order's current state value: staged in this batch, or committed.
func (sp *stagedPart) value(key string) []byte {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if v, ok := sp.values[key]; ok {
		return v
	}
	return sp.p.orders[key]
}

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

// orderState is an order's stored state, decoded.
type orderState struct {
	rec    *statestore.Record
	events []orderevents.Event
	placed bool
}

func (r *Relay) loadState(ctx context.Context, key string, v []byte) (*orderState, error) {
	st := &orderState{rec: &statestore.Record{OrderID: key}}
	if v == nil {
		return st, nil
	}
	rec, err := statestore.Unmarshal(key, v)
	if err != nil {
		return nil, err
	}
	st.rec = rec
	for _, raw := range rec.Events {
		ev, err := r.codec.Decode(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("relay: order %s: stored event: %w", key, err)
		}
		st.events = append(st.events, ev)
		if _, ok := ev.Payload.(orderevents.OrderPlaced); ok {
			st.placed = true
		}
	}
	return st, nil
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
		st      *orderState
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
			if st, err = r.loadState(ctx, w.key, w.sp.value(w.key)); err != nil {
				return fmt.Errorf("relay: state of order %s: %w", w.key, err)
			}
		}
		if hasEvent(st.events, ev.ID) || newRecs[ev.ID] != nil {
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
	m := merge(st.events, st.placed, news)
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
	if m.added == 0 && len(m.events) == len(st.events) {
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
	st, err := r.loadState(ctx, w.key, w.sp.value(w.key))
	if err != nil {
		return fmt.Errorf("relay: state of order %s: %w", w.key, err)
	}
	cur := int64(len(st.events))
	switch {
	case !st.placed:
		r.log.Info("replay: order has no placed state here; nothing to resend", "order_id", w.key)
		r.stats.replaySkipped.Add(1)
		return nil
	case st.rec.Acked.Version >= cur, st.rec.Pending.Version >= cur:
		r.log.Info("replay: the order's current snapshot is already acknowledged or on its way", "order_id", w.key,
			"version", cur, "acked", st.rec.Acked.Version, "pending", st.rec.Pending.Version)
		r.stats.replaySkipped.Add(1)
		return nil
	}
	snap, err := fold.Fold(st.events)
	if err != nil {
		return fmt.Errorf("relay: order %s: stored events no longer fold: %w", w.key, err)
	}
	r.stats.replayed.Add(1)
	return r.stage(ctx, b, w, st, merged{events: st.events, snap: snap}, nil, sc, last)
}

func hasEvent(evs []orderevents.Event, id string) bool {
	for i := range evs {
		if evs[i].ID == id {
			return true
		}
	}
	return false
}

// stage writes the order's new state record into the batch and, when the order is
// placed, the snapshot job that goes out after commit, with its envelope marked pending.
// fresh holds the received bytes of new events that are already in the stored form.
func (r *Relay) stage(ctx context.Context, b *batch, w *keyWork, st *orderState, m merged, fresh map[string][]byte, sc trace.SpanContext, last *kgo.Record) error {
	rec := st.rec
	known := make(map[string][]byte, len(st.events)+len(fresh))
	for i, ev := range st.events {
		known[ev.ID] = rec.Events[i]
	}
	for id, raw := range fresh {
		known[id] = raw // already canonical: stored as received, not encoded again
	}
	events := make([][]byte, 0, len(m.events))
	for _, ev := range m.events {
		raw, ok := known[ev.ID]
		if !ok {
			var err error
			if raw, err = r.codec.EncodeSingleObject(ev); err != nil {
				return fmt.Errorf("relay: order %s: encode event %s for the state topic: %w", w.key, ev.ID, err)
			}
		}
		events = append(events, raw)
	}
	rec.Events = events
	rec.Version = int64(len(events))
	var job *Job
	if m.snap != nil {
		partnerID := m.snap.PartnerID
		if partnerID == "" {
			partnerID = r.cfg.DefaultPartner
		}
		rec.Partner = partnerID
		env := fold.NextEnvelope(m.snap, lastStamp(rec))
		j, err := r.render(ctx, w.key, partnerID, m.snap, env, sc)
		if err != nil {
			b.deadLetter(r.dlq, deadletter.Record{
				OrderID: w.key, Stage: deadletter.StageFold, Reason: reasonOf(err, ReasonRender), Partner: partnerID, Error: err.Error(),
				SourceTopic: last.Topic, SourcePartition: last.Partition, SourceOffset: last.Offset,
				Value: deadletter.EncodeReference(deadletter.Reference{OrderID: w.key, Partner: partnerID, SnapshotVersion: m.snap.Version}),
			})
		} else {
			j.Source = Source{Topic: last.Topic, Partition: last.Partition, Offset: last.Offset}
			j.EventTime = last.Timestamp
			rec.Pending = statestore.Delivery{Version: m.snap.Version, Stamp: env.Stamp, WebhookID: env.WebhookID}
			job = &j
		}
	}
	v := rec.Marshal()
	w.sp.mu.Lock()
	defer w.sp.mu.Unlock()
	w.sp.values[w.key] = v
	if job != nil {
		w.sp.jobs[w.key] = job
	}
	return nil
}

// unknownPartnerError is a snapshot for a partner that is not configured.
type unknownPartnerError struct{ partner string }

func (e unknownPartnerError) Error() string {
	return fmt.Sprintf("order's partner %q is not configured", e.partner)
}
func (unknownPartnerError) Reason() string { return ReasonUnknownPartner }

// render builds the delivery job of a snapshot with its envelope.
func (r *Relay) render(ctx context.Context, orderID, partnerID string, snap *fold.Snapshot, env fold.Envelope, sc trace.SpanContext) (Job, error) {
	partner, ok := r.cfg.Partners[partnerID]
	if !ok {
		return Job{}, unknownPartnerError{partnerID}
	}
	body, err := ucp.Marshal(snap.Order, partner.Version, env.Body())
	if err != nil {
		return Job{}, err
	}
	h := http.Header{}
	if sc.IsValid() {
		otel.GetTextMapPropagator().Inject(trace.ContextWithSpanContext(ctx, sc), propagation.HeaderCarrier(h))
	}
	h.Set("Webhook-Id", env.WebhookID)
	if partner.RFC3339Timestamps {
		h.Set("Webhook-Timestamp", env.Stamp.UTC().Format(time.RFC3339))
	} else {
		h.Set("Webhook-Timestamp", strconv.FormatInt(env.Stamp.Unix(), 10))
	}
	return Job{
		OrderID: orderID, Partner: partnerID, Version: snap.Version, WebhookID: env.WebhookID, Stamp: env.Stamp,
		Request: webhook.Request{Body: body, Header: h},
	}, nil
}

// lastStamp is the newest freshness stamp the order's partner may have seen.
func lastStamp(rec *statestore.Record) time.Time {
	if rec.Pending.Stamp.After(rec.Acked.Stamp) {
		return rec.Pending.Stamp
	}
	return rec.Acked.Stamp
}

// resendJob rebuilds the pending snapshot of a restored order with the envelope its state
// recorded, so the partner gets the same Webhook-Id, stamp and body again.
func (r *Relay) resendJob(ctx context.Context, orderID string, v []byte) (Job, error) {
	st, err := r.loadState(ctx, orderID, v)
	if err != nil {
		return Job{}, err
	}
	snap, err := fold.Fold(st.events)
	if err != nil {
		return Job{}, err
	}
	env := fold.Envelope{WebhookID: st.rec.Pending.WebhookID, Stamp: st.rec.Pending.Stamp}
	if snap.Version != st.rec.Pending.Version {
		env = fold.NextEnvelope(snap, lastStamp(st.rec))
	}
	partnerID := st.rec.Partner
	if partnerID == "" {
		partnerID = r.cfg.DefaultPartner
	}
	return r.render(ctx, orderID, partnerID, snap, env, trace.SpanContext{})
}

// takeOutcomes writes the delivery outcomes that came back since the last transaction:
// an acknowledgement moves the order's acked mark and clears its pending mark; a failure
// clears the pending mark (keeping its stamp, which the partner may have seen) and adds
// the dead-letter record.
func (r *Relay) takeOutcomes(b *batch) {
	r.mu.Lock()
	parts := make([]*partition, 0, len(r.parts))
	for _, p := range r.parts {
		parts = append(parts, p)
	}
	r.mu.Unlock()
	for _, p := range parts {
		os := p.takeOutcomes()
		if len(os) == 0 {
			continue
		}
		sp := b.part(p)
		sp.outcomes = os
		for oid, o := range os {
			v := sp.value(oid)
			if v == nil {
				continue
			}
			rec, err := statestore.Unmarshal(oid, v)
			if err != nil {
				r.log.Error("state record unreadable; outcome not written", "order_id", oid, "err", err)
				continue
			}
			d := statestore.Delivery{Version: o.Job.Version, Stamp: o.Job.Stamp, WebhookID: o.Job.WebhookID}
			if o.Failed {
				if rec.Pending.Version <= d.Version {
					rec.Pending.Version = 0
				}
				b.deadLetter(r.dlq, outcomeDeadLetter(o))
			} else {
				if d.Version > rec.Acked.Version || rec.Acked.Stamp.Before(d.Stamp) {
					rec.Acked = d
				}
				if rec.Pending.Version <= d.Version {
					rec.Pending = statestore.Delivery{}
				}
			}
			v = rec.Marshal()
			sp.mu.Lock()
			sp.values[oid] = v
			sp.mu.Unlock()
		}
	}
}

// outcomeDeadLetter is the dead-letter record of a failed delivery.
func outcomeDeadLetter(o Outcome) deadletter.Record {
	j := o.Job
	errText := ""
	if o.Err != nil {
		errText = o.Err.Error()
	}
	return deadletter.Record{
		OrderID: j.OrderID, Stage: deadletter.StageDeliver, Reason: o.Reason, Partner: j.Partner,
		HTTPStatus: o.HTTPStatus, Attempts: o.Attempts, FirstFailure: o.First, LastFailure: o.Last, Error: errText,
		SourceTopic: j.Source.Topic, SourcePartition: j.Source.Partition, SourceOffset: j.Source.Offset,
		Value: deadletter.EncodeReference(deadletter.Reference{OrderID: j.OrderID, Partner: j.Partner, SnapshotVersion: j.Version, WebhookID: j.WebhookID}),
	}
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
