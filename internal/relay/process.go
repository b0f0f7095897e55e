package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// Dead-letter reasons the relay itself decides. Decoder and fold errors bring their own
// through a Reason() method.
const (
	ReasonUnknownPartner    = "unknown_partner"
	ReasonRender            = "render_failed"
	ReasonRejected          = "http_rejected"
	ReasonRetriesExhausted  = "retries_exhausted"
	ReasonCredentials       = "credentials_rejected"
	ReasonCircuitOpen       = "circuit_open"
	reasonUnclassifiedDecod = "decode_failed"
	reasonUnclassifiedFold  = "fold_failed"
)

type processor struct {
	cfg *Config
	dec Decoder
	dlq *deadletter.Writer
	log *slog.Logger
}

// process turns one record into a delivery job, or dead-letters it (awaited) when it
// cannot be decoded, folded or rendered. It returns an error only when neither happened
// (the dead-letter write failed, or ctx ended).
func (p *processor) process(ctx context.Context, rec *kgo.Record) (job *Job, err error) {
	ctx, span := startRecordSpan(ctx, rec)
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	log := p.log.With("topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
	ev, err := p.decode(ctx, rec)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, p.deadLetter(ctx, log, deadletter.Record{
			OrderID: string(rec.Key), Stage: deadletter.StageDecode,
			Reason: reasonOf(err, reasonUnclassifiedDecod), Error: err.Error(), Value: rec.Value,
		}, rec)
	}
	log = log.With("order_id", ev.OrderID)
	partnerID := ev.PartnerID
	if partnerID == "" {
		partnerID = p.cfg.DefaultPartner
	}
	partner, ok := p.cfg.Partners[partnerID]
	if !ok {
		return nil, p.deadLetter(ctx, log, deadletter.Record{
			OrderID: ev.OrderID, Stage: deadletter.StageFold, Reason: ReasonUnknownPartner, Partner: partnerID,
			Error: fmt.Sprintf("event names partner %q, which is not configured", partnerID), Value: rec.Value,
		}, rec)
	}
	log = log.With("partner", partnerID)
	snap, err := fold.Fold([]orderevents.Event{ev})
	if err != nil {
		return nil, p.deadLetter(ctx, log, deadletter.Record{
			OrderID: ev.OrderID, Stage: deadletter.StageFold, Reason: reasonOf(err, reasonUnclassifiedFold),
			Partner: partnerID, Error: err.Error(), Value: rec.Value,
		}, rec)
	}
	env := fold.NextEnvelope(snap, time.Time{})
	body, err := ucp.Marshal(snap.Order, partner.Version, env.Body())
	if err != nil {
		return nil, p.deadLetter(ctx, log, deadletter.Record{
			OrderID: ev.OrderID, Stage: deadletter.StageFold, Reason: ReasonRender,
			Partner: partnerID, Error: err.Error(), Value: rec.Value,
		}, rec)
	}
	h := http.Header{}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
	h.Set("Webhook-Id", env.WebhookID)
	h.Set("Webhook-Timestamp", strconv.FormatInt(env.Stamp.Unix(), 10))
	return &Job{
		OrderID: ev.OrderID, Partner: partnerID, Version: snap.Version, WebhookID: env.WebhookID,
		Request: webhook.Request{Body: body, Header: h},
		Source:  Source{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset},
	}, nil
}

// decode retries transient decoder failures (schema registry unreachable) until ctx ends;
// anything else is returned for the dead-letter topic.
func (p *processor) decode(ctx context.Context, rec *kgo.Record) (orderevents.Event, error) {
	for n := 0; ; n++ {
		ev, err := p.dec.Decode(ctx, rec.Value)
		if err == nil || !isTransient(err) {
			return ev, err
		}
		p.log.Warn("decode failed transiently; retrying", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
		if serr := sleep(ctx, p.cfg.Backoff.Delay(n, nil)); serr != nil {
			return ev, serr
		}
	}
}

// deadLetterOutcome writes a failed delivery to the dead-letter topic.
func (p *processor) deadLetterOutcome(ctx context.Context, o Outcome) error {
	j := o.Job
	errText := ""
	if o.Err != nil {
		errText = o.Err.Error()
	}
	r := deadletter.Record{
		OrderID: j.OrderID, Stage: deadletter.StageDeliver, Reason: o.Reason, Partner: j.Partner,
		HTTPStatus: o.HTTPStatus, Attempts: o.Attempts, FirstFailure: o.First, LastFailure: o.Last, Error: errText,
		SourceTopic: j.Source.Topic, SourcePartition: j.Source.Partition, SourceOffset: j.Source.Offset,
		Value: deadletter.EncodeReference(deadletter.Reference{OrderID: j.OrderID, Partner: j.Partner, SnapshotVersion: j.Version, WebhookID: j.WebhookID}),
	}
	return p.write(ctx, p.log.With("order_id", j.OrderID, "partner", j.Partner), r)
}

func (p *processor) deadLetter(ctx context.Context, log *slog.Logger, r deadletter.Record, src *kgo.Record) error {
	r.SourceTopic, r.SourcePartition, r.SourceOffset = src.Topic, src.Partition, src.Offset
	return p.write(ctx, log, r)
}

func (p *processor) write(ctx context.Context, log *slog.Logger, r deadletter.Record) error {
	if err := p.dlq.Write(ctx, r); err != nil {
		log.Error("dead-letter write failed; offset not committed", "stage", r.Stage, "reason", r.Reason, "err", err)
		return err
	}
	log.Warn("dead-lettered", "stage", r.Stage, "reason", r.Reason, "err", deadletter.Redact(r.Error, 300, p.cfg.Secrets...))
	if p.cfg.OnDeadLetter != nil {
		p.cfg.OnDeadLetter(r)
	}
	return nil
}

// reasonOf returns the stable reason an error carries, or def.
func reasonOf(err error, def string) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) && r.Reason() != "" {
		return r.Reason()
	}
	return def
}

// isTransient reports whether err says "try again later" rather than "this input is bad".
func isTransient(err error) bool {
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}
