package relay

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Records Kafka would refuse never reach it (P8). A state record that outgrew its topic's
// max.message.bytes, or a dead letter copying a large input value, would fail the
// produce, abort the transaction and fail again on the next one, forever. So sizes are
// checked before producing: an order whose state record would outgrow the limit keeps
// its last good state and the events that would have grown it are dead-lettered as
// order_too_large; a dead letter whose value does not fit carries a reference instead
// (deadletter.Writer.SetMaxRecordBytes). A produce error that still happens backs off,
// and when the broker refuses the same order's records three times in a row for the
// record itself (not an outage), that order's records are set aside as produce_refused.

const (
	// producerBatchMax is franz-go's default ProducerBatchMaxBytes: the client refuses a
	// larger record itself.
	producerBatchMax = 1000012
	// batchOverhead is a record batch's header, plus a margin for the record's own.
	batchOverhead = 61 + 64
	// isolateAfter is how many identical aborts isolate the orders that cause them.
	isolateAfter = 3
)

func recordLimit(maxMessageBytes int) int {
	return min(maxMessageBytes, producerBatchMax) - batchOverhead
}

// loadLimits reads the state and dead-letter topics' settings: max.message.bytes bounds
// their records. The first time, it also logs what decides whether state survives
// (cleanup.policy, delete.retention.ms) and each setting that puts data at risk.
func (r *Relay) loadLimits(ctx context.Context) error {
	infos, err := topics.Describe(ctx, topics.NewAdmin(r.cl), r.cfg.StateTopic, r.cfg.DeadLetterTopic)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	for _, in := range infos {
		switch in.Topic {
		case r.cfg.StateTopic:
			r.stateLimit.Store(int64(recordLimit(in.MaxMessageBytes())))
		case r.cfg.DeadLetterTopic:
			r.dlq.SetMaxRecordBytes(recordLimit(in.MaxMessageBytes()))
		}
		if r.settingsLogged {
			continue
		}
		r.log.Info("topic settings", "topic", in.Topic, "partitions", in.Partitions, "replication", in.Replication,
			"cleanup.policy", in.Configs["cleanup.policy"], "delete.retention.ms", in.Configs["delete.retention.ms"],
			"max.message.bytes", in.MaxMessageBytes(), "min.insync.replicas", in.Configs["min.insync.replicas"])
		for _, w := range in.Warnings {
			r.log.Warn("topic setting puts data at risk", "topic", in.Topic, "warning", w)
		}
	}
	r.settingsLogged = true
	return nil
}

// fitsState reports whether a state record of key and value v fits the state topic.
func (r *Relay) fitsState(key string, v []byte) bool {
	lim := r.stateLimit.Load()
	return lim <= 0 || int64(len(key)+len(v)+24) <= lim
}

// tooLarge dead-letters an event that would make its order's state record too large.
func (r *Relay) tooLarge(w *keyWork, ev orderevents.Event, size int, rec *kgo.Record) {
	d := deadletter.Record{OrderID: w.key, SourceTopic: r.cfg.StateTopic, SourcePartition: w.p.id, SourceOffset: -1}
	if rec != nil {
		d = deadletter.FromSource(rec)
	} else {
		d.Value, _ = r.codec.EncodeSingleObject(ev)
	}
	d.Stage, d.Reason = deadletter.StageFold, ReasonOrderTooLarge
	d.Error = fmt.Sprintf("event %s would make the order's state record %d bytes, above the %d bytes %s takes (its max.message.bytes): the order keeps its last good state; raise max.message.bytes of %s, then replay",
		ev.ID, size, r.stateLimit.Load(), r.cfg.StateTopic, r.cfg.StateTopic)
	w.dead = append(w.dead, d)
}

// refusal is a produce error the broker gave for the record itself.
type refusal struct {
	key string // the order id
	err error
}

// recordRefused reports whether a produce error is about the record (a retry of the same
// bytes fails again) rather than about the broker or the connection.
func recordRefused(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) ||
		errors.Is(err, kerr.RecordListTooLarge) || errors.Is(err, kerr.InvalidRecord) ||
		errors.Is(err, kerr.CorruptMessage) || errors.Is(err, kerr.PolicyViolation) ||
		errors.Is(err, kerr.InvalidRequiredAcks)
}

// produceFailures tracks aborts caused by produce errors (loop goroutine only).
type produceFailures struct {
	sig   string // the refused orders and errors of the last abort
	n     int    // consecutive aborts with that signature
	fails int    // consecutive aborts for produce errors of any kind
}

// afterProduceAbort counts an abort for produce errors, isolates the orders that caused
// the same abort isolateAfter times, and returns how long to wait before the next
// transaction.
func (r *Relay) afterProduceAbort(refused []refusal) time.Duration {
	pf := &r.produceFails
	pf.fails++
	parts := make([]string, 0, len(refused))
	for _, x := range refused {
		parts = append(parts, fmt.Sprintf("%s: %v", x.key, x.err))
	}
	sort.Strings(parts)
	sig := strings.Join(parts, "; ")
	if sig != "" && sig == pf.sig {
		pf.n++
	} else {
		pf.sig, pf.n = sig, 1
	}
	if sig != "" && pf.n >= isolateAfter {
		r.mu.Lock()
		for _, x := range refused {
			r.isolated[x.key] = x.err.Error()
		}
		r.mu.Unlock()
		r.log.Error("the broker refused the same orders' records repeatedly; setting them aside", "orders", sig)
		pf.sig, pf.n = "", 0
	}
	return r.cfg.Backoff.Delay(pf.fails-1, nil)
}

// isolatedErr returns why an order's records are set aside, or "".
func (r *Relay) isolatedErr(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.isolated[key]
}

// setAside dead-letters an isolated order's records as produce_refused, each with a
// reference instead of its value (the value may be what the broker refuses).
func (r *Relay) setAside(w *keyWork, why string) {
	for _, rec := range w.recs {
		w.dead = append(w.dead, deadletter.Record{
			OrderID: string(rec.Key), Stage: deadletter.StageFold, Reason: ReasonProduceRefused,
			Error:       "the broker refused this order's records " + fmt.Sprint(isolateAfter) + " times in a row: " + why,
			SourceTopic: rec.Topic, SourcePartition: rec.Partition, SourceOffset: rec.Offset,
			Value: deadletter.EncodeReference(deadletter.Reference{OrderID: string(rec.Key)}), ValueOmitted: len(rec.Value),
		})
	}
}
