package relay

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/wait"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// batch is the work of one transaction.
type batch struct {
	mu          sync.Mutex
	parts       map[int32]*stagedPart
	other       []*kgo.Record // dead letters and forwards
	deadLetters []deadletter.Record
	consumed    int
}

// snapshot returns what the batch staged for an order so far, for restore.
func (sp *stagedPart) snapshot(key string) (value []byte, staged bool, job *Job) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	value, staged = sp.values[key]
	return value, staged, sp.jobs[key]
}

// restore puts back what snapshot returned, undoing an order's half-done fold.
func (sp *stagedPart) restore(key string, value []byte, staged bool, job *Job) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if staged {
		sp.values[key] = value
	} else {
		delete(sp.values, key)
	}
	if job != nil {
		sp.jobs[key] = job
	} else {
		delete(sp.jobs, key)
	}
}

// stagedPart is what a transaction changes in one partition.
type stagedPart struct {
	mu       sync.Mutex // guards values and jobs while orders fold concurrently
	p        *partition
	values   map[string][]byte // new state record values (nil: tombstone)
	jobs     map[string]*Job   // the newest snapshot per order, sent after commit
	outcomes map[string]Outcome
	parked   map[string]string // orders parked (reason) or no longer parked ("")
	// notOurs are the orders this transaction marks not ours (notours.go).
	notOurs        []notOursOrder
	notOursRecords map[string]int // by topic
	// deferred are the orders whose snapshot waits for the clock (the stamp floor), or
	// no longer (zero time).
	deferred map[string]time.Time
	schema   bool // the transaction writes the partition's schema record
	// freshParked are the reasons of the orders parked by this transaction; dropped
	// counts the orders it drops. Counted once committed.
	freshParked []string
	dropped     int
	// expiredOrphans counts the orphans this transaction expires (orphans.go).
	expiredOrphans int
}

// stage sets an order's new state value and, when job is not nil, its snapshot job.
func (sp *stagedPart) stage(key string, v []byte, job *Job) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.values[key] = v
	if job != nil {
		sp.jobs[key] = job
	}
}

// markParked records that the order is parked for reason, or no longer ("").
func (sp *stagedPart) markParked(key, reason string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.parked == nil {
		sp.parked = map[string]string{}
	}
	sp.parked[key] = reason
}

func newBatch() *batch { return &batch{parts: map[int32]*stagedPart{}} }

func (b *batch) part(p *partition) *stagedPart {
	b.mu.Lock()
	defer b.mu.Unlock()
	sp := b.parts[p.id]
	if sp == nil {
		sp = &stagedPart{p: p, values: map[string][]byte{}, jobs: map[string]*Job{}, deferred: map[string]time.Time{}}
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

// value returns an order's current state value: staged in this batch, or committed.
func (sp *stagedPart) value(key string) []byte {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if v, ok := sp.values[key]; ok {
		return v
	}
	return sp.p.orders[key]
}

// stage writes the order's new state record into the batch and, when the order is
// placed, the snapshot job that goes out after commit, with its envelope marked pending.
// fresh holds the received bytes of new events that are already in the stored form.
// When the record would outgrow the state topic's record size nothing is staged and
// stage returns the record's size (the caller decides which events to leave out).
func (r *Relay) stage(ctx context.Context, b *batch, w *keyWork, st *statestore.Order, m merged, fresh map[string][]byte, sc trace.SpanContext, last *kgo.Record) (tooBig int, err error) {
	rec := st.Record
	known := make(map[string][]byte, len(st.Events)+len(fresh))
	for i, ev := range st.Events {
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
				return 0, fmt.Errorf("relay: order %s: encode event %s for the state topic: %w", w.key, ev.ID, err)
			}
		}
		events = append(events, raw)
	}
	rec.Events = events
	rec.Version = int64(len(events))
	var (
		job        *Job
		renderDead []deadletter.Record // added only when the record is staged
		deferred   time.Time           // the stamp floor of a snapshot that waits for the clock
	)
	rec.Deferred = false
	switch {
	case m.snap != nil:
		rec.HeldSince = time.Time{}
	case rec.HeldSince.IsZero():
		// The order's first events without a placement: they wait from now (orphans.go).
		rec.HeldSince = time.Now().UTC().Truncate(time.Millisecond)
	}
	if m.snap != nil && !st.Placed {
		// The placement arrives: an order of no configured partner is not ours (notours.go).
		if p := st.PartnerOf(m.snap, r.partners); !r.ours(p) {
			r.markNotOurs(w, p, len(m.events))
			return 0, nil
		}
	}
	if m.snap != nil {
		rec.Partner = st.PartnerOf(m.snap, r.partners)
		s, err := st.Render(m.snap, m.events, statestore.NextEnvelope, r.partners, time.Now())
		if err != nil {
			renderDead = append(renderDead, deadletter.Record{
				OrderID: w.key, Stage: deadletter.StageFold, Reason: reasonOf(err, ReasonRender), Partner: rec.Partner, Error: err.Error(),
				SourceTopic: last.Topic, SourcePartition: last.Partition, SourceOffset: last.Offset,
				Value: deadletter.EncodeReference(deadletter.Reference{OrderID: w.key, Partner: rec.Partner, SnapshotVersion: m.snap.Version}),
			})
		} else if now := time.Now(); s.Envelope.Stamp.After(now.Add(r.cfg.MaxClockSkew)) {
			// At the bound: the events are stored, the snapshot waits for the clock (clock.go).
			rec.Deferred, deferred = true, rec.LastStamp()
		} else {
			j := r.job(w.key, s, sc)
			j.Source = Source{Topic: last.Topic, Partition: last.Partition, Offset: last.Offset}
			j.EventTime = last.Timestamp
			rec.Pending = statestore.Delivery{Version: s.Version, Stamp: s.Envelope.Stamp, WebhookID: s.Envelope.WebhookID, Digest: j.Digest}
			job = &j
		}
	}
	v := rec.Marshal()
	if !r.fitsState(w.key, v) {
		return len(v), nil
	}
	w.dead = append(w.dead, renderDead...)
	w.sp.stage(w.key, v, job)
	if rec.Deferred || w.p.deferred[w.key] != (time.Time{}) {
		w.sp.mu.Lock()
		w.sp.deferred[w.key] = deferred
		w.sp.mu.Unlock()
	}
	return 0, nil
}

// job is the delivery of a rendered snapshot: its body with the Webhook-Id and
// Webhook-Timestamp headers, continuing the trace of the input record (sc).
func (r *Relay) job(orderID string, s *statestore.Snapshot, sc trace.SpanContext) Job {
	p := r.cfg.Partners[s.Partner]
	h := http.Header{}
	h.Set("Webhook-Id", s.Envelope.WebhookID)
	if p.RFC3339Timestamps {
		h.Set("Webhook-Timestamp", s.Envelope.Stamp.UTC().Format(time.RFC3339))
	} else {
		h.Set("Webhook-Timestamp", strconv.FormatInt(s.Envelope.Stamp.Unix(), 10))
	}
	return Job{
		OrderID: orderID, Partner: s.Partner, Version: s.Version, WebhookID: s.Envelope.WebhookID, Stamp: s.Envelope.Stamp,
		Digest: statestore.BodyDigest(s.Body), Request: webhook.Request{Body: s.Body, Header: h},
		Trace: sc, PropagateTrace: p.PropagateTraceContext,
	}
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

// schemaRecords are the schema records of the partitions this batch writes state to for
// the first time since they were restored without this relay's schema: written in the
// same transaction as the first events stored with it, so that every relay reading the
// partition, an older one after a rollback included, decodes them.
func (r *Relay) schemaRecords(b *batch) []*kgo.Record {
	var out []*kgo.Record
	for id, sp := range b.parts {
		if !sp.p.schemaStored && len(sp.values) > 0 {
			out = append(out, statestore.SchemaRecord(r.cfg.StateTopic, id, r.codec.Fingerprint(), r.codec.Schema()))
			sp.schema = true
		}
	}
	return out
}

// commit produces the batch's records and ends the transaction. On commit the batch is
// applied; on abort the delivery outcomes go back to be written by the next transaction,
// and the session rewinds the input to the last committed offsets.
func (r *Relay) commit(ctx context.Context, b *batch) error {
	// The end of a transaction must not be cut short by shutdown: use a context of its own.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var (
		pmu     sync.Mutex
		perr    error
		refused []refusal
	)
	for _, rec := range append(b.records(r.cfg.StateTopic), r.schemaRecords(b)...) {
		r.sess.Produce(ectx, rec, func(rec *kgo.Record, err error) {
			if err != nil {
				pmu.Lock()
				perr = cmpErr(perr, fmt.Errorf("produce to %s: %w", rec.Topic, err))
				if recordRefused(err) && len(rec.Key) > 0 && rec.Key[0] != 0 {
					refused = append(refused, refusal{key: string(rec.Key), err: err})
				}
				pmu.Unlock()
			}
		})
	}
	if err := r.cl.Flush(ectx); err != nil {
		perr = cmpErr(perr, err)
	}
	try := kgo.TryCommit
	switch {
	case perr != nil:
		r.log.Error("transaction aborted: a record could not be produced", "err", perr)
		try = kgo.TryAbort
	case b.consumed == 0 && !r.lease.valid():
		// A transaction without input offsets is not fenced by the group generation: a
		// replica the coordinator removed, and that has not noticed yet, would commit
		// state records over the new owner's. Without a recent heartbeat, it waits.
		try = kgo.TryAbort
	}
	if perr != nil {
		// Back off before the next transaction, outside this one, and set aside the
		// orders the broker keeps refusing (size.go).
		defer func() { _ = wait.Sleep(ctx, r.afterProduceAbort(refused)) }()
	}
	committed, err := r.sess.End(ectx, try)
	if err != nil || !committed {
		r.abort(b)
		if err != nil {
			return fmt.Errorf("relay: end transaction: %w", err)
		}
		if b.size() > 0 {
			r.log.Info("transaction aborted; the input is read again from the last commit", "records", b.consumed)
		}
		return nil
	}
	if !b.empty() {
		r.stats.transactions.Add(1)
	}
	if perr == nil {
		r.produceFails = produceFailures{}
		r.mu.Lock()
		clear(r.isolated)
		r.mu.Unlock()
	}
	r.apply(ectx, b)
	r.backpressure()
	return nil
}

// end ends the transaction without committing: nothing produced, the input rewinds.
func (r *Relay) end(ctx context.Context, b *batch, try kgo.TransactionEndTry) error {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := r.sess.End(ectx, try)
	r.abort(b)
	if err != nil {
		return fmt.Errorf("relay: end transaction: %w", err)
	}
	return nil
}

func (r *Relay) abort(b *batch) {
	if !b.empty() {
		r.stats.aborted.Add(1)
	}
	for _, sp := range b.parts {
		sp.p.returnOutcomes(sp.outcomes)
	}
}

// apply makes a committed batch current: new state values replace the old in memory,
// new snapshots go to delivery, dead-letter hooks run. A partition revoked in between
// is skipped: its new owner restores what was committed and resends what is pending.
func (r *Relay) apply(ctx context.Context, b *batch) {
	r.stats.consumed.Add(int64(b.consumed))
	r.metrics.add(ctx, r.metrics.consumed, int64(b.consumed))
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, sp := range b.parts {
		p := r.parts[id]
		if p != sp.p {
			continue
		}
		for key, v := range sp.values {
			if v == nil {
				delete(p.orders, key)
			} else {
				p.orders[key] = v
			}
			indexOrphan(p, key, v)
		}
		r.stats.orphansExpired.Add(int64(sp.expiredOrphans))
		r.metrics.add(ctx, r.metrics.orphansExpired, int64(sp.expiredOrphans))
		if sp.schema {
			p.schemaStored = true
		}
		r.appliedNotOurs(ctx, id, sp)
		for key, floor := range sp.deferred {
			switch _, was := p.deferred[key]; {
			case floor.IsZero():
				delete(p.deferred, key)
			case !was:
				r.stats.deferred.Add(1)
				r.log.Info("snapshot waits for the clock: its stamp would run more than max_clock_skew ahead", "order_id", key,
					"partition", id, "last_stamp", floor, "max_clock_skew", r.cfg.MaxClockSkew, "due", r.deferredDue(floor))
				fallthrough
			default:
				p.deferred[key] = floor
			}
		}
		for _, reason := range sp.freshParked {
			r.stats.parked.Add(1)
			r.metrics.add(ctx, r.metrics.parked, 1, reasonAttr(reason))
		}
		r.stats.dropped.Add(int64(sp.dropped))
		r.metrics.add(ctx, r.metrics.dropped, int64(sp.dropped))
		for key, reason := range sp.parked {
			if reason == "" {
				delete(p.parked, key)
			} else {
				p.parked[key] = reason
			}
		}
		for _, j := range sp.jobs {
			r.submit(p, *j)
		}
	}
	for _, d := range b.deadLetters {
		if d.Reason == ReasonInternal {
			r.stats.internalErrors.Add(1)
			r.metrics.add(ctx, r.metrics.internalErrors, 1)
		}
		r.stats.deadLettered.Add(1)
		r.metrics.add(ctx, r.metrics.deadLettered, 1, attribute.String("stage", string(d.Stage)), attribute.String("reason", d.Reason))
		r.log.Warn("dead-lettered", "order_id", d.OrderID, "stage", d.Stage, "reason", d.Reason,
			"source", fmt.Sprintf("%s/%d@%d", d.SourceTopic, d.SourcePartition, d.SourceOffset),
			"err", deadletter.Redact(d.Error, 300, r.cfg.Secrets...))
		if r.cfg.OnDeadLetter != nil {
			r.cfg.OnDeadLetter(d)
		}
	}
}

// submit hands a job of partition p to the delivery queue. r.mu is held.
func (r *Relay) submit(p *partition, j Job) {
	j.part = p
	p.inflight.Add(1)
	p.pending.Add(1)
	r.stats.pending.Add(1)
	r.stats.snapshots.Add(1)
	r.q.submit(p.ctx, j)
}

// onOutcome receives every job's end from the delivery queue.
func (r *Relay) onOutcome(o Outcome) {
	p := o.Job.part
	defer p.inflight.Done()
	p.pending.Add(-1)
	r.stats.pending.Add(-1)
	switch {
	case o.Superseded:
		r.stats.superseded.Add(1)
	case o.Failed && o.Reason == "":
		// Ended by revocation or shutdown: the snapshot stays pending in the state
		// topic and whoever owns the partition next resends it.
	default:
		if !o.Failed {
			r.stats.delivered.Add(1)
			r.metrics.add(context.Background(), r.metrics.delivered, 1, attribute.String("partner", o.Job.Partner))
			if !o.Job.EventTime.IsZero() {
				r.metrics.latency.Record(context.Background(), time.Since(o.Job.EventTime).Seconds(),
					metric.WithAttributes(attribute.String("partner", o.Job.Partner)))
			}
			if r.cfg.OnDelivered != nil {
				r.cfg.OnDelivered(o.Job.OrderID, o.Job.Partner, o.Status)
			}
		}
		p.addOutcome(o)
	}
}

func (p *partition) addOutcome(o Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.outcomes[o.Job.OrderID]; ok && prev.Job.Version > o.Job.Version {
		return
	}
	p.outcomes[o.Job.OrderID] = o
}

// takeOutcomes moves the partition's unwritten outcomes out.
func (p *partition) takeOutcomes() map[string]Outcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.outcomes
	p.outcomes = map[string]Outcome{}
	return out
}

// returnOutcomes puts back outcomes an aborted transaction did not write.
func (p *partition) returnOutcomes(os map[string]Outcome) {
	for _, o := range os {
		p.addOutcome(o)
	}
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
			d := statestore.Delivery{Version: o.Job.Version, Stamp: o.Job.Stamp, WebhookID: o.Job.WebhookID, Digest: o.Job.Digest}
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

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
