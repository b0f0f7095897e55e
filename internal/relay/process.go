package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"
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
	cfg      *Config
	breakers map[string]*gobreaker.CircuitBreaker[webhook.Response]
	dec      Decoder
	snd      Sender
	dlq      *deadletter.Writer
	log      *slog.Logger
}

// process takes one record to an end: delivered, or durably dead-lettered. It returns an
// error only when neither happened (dead-letter write failed, or ctx ended).
func (p *processor) process(ctx context.Context, rec *kgo.Record) (err error) {
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
			return ctx.Err()
		}
		return p.deadLetter(ctx, log, deadletter.Record{
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
		return p.deadLetter(ctx, log, deadletter.Record{
			OrderID: ev.OrderID, Stage: deadletter.StageFold, Reason: ReasonUnknownPartner, Partner: partnerID,
			Error: fmt.Sprintf("event names partner %q, which is not configured", partnerID), Value: rec.Value,
		}, rec)
	}
	log = log.With("partner", partnerID)
	snap, err := fold.Fold([]orderevents.Event{ev})
	if err != nil {
		return p.deadLetter(ctx, log, deadletter.Record{
			OrderID: ev.OrderID, Stage: deadletter.StageFold, Reason: reasonOf(err, reasonUnclassifiedFold),
			Partner: partnerID, Error: err.Error(), Value: rec.Value,
		}, rec)
	}
	env := fold.NextEnvelope(snap, time.Time{})
	body, err := ucp.Marshal(snap.Order, partner.Version, env.Body())
	if err != nil {
		return p.deadLetter(ctx, log, deadletter.Record{
			OrderID: ev.OrderID, Stage: deadletter.StageFold, Reason: ReasonRender,
			Partner: partnerID, Error: err.Error(), Value: rec.Value,
		}, rec)
	}
	h := http.Header{}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
	h.Set("Webhook-Id", env.WebhookID)
	h.Set("Webhook-Timestamp", strconv.FormatInt(env.Stamp.Unix(), 10))
	return p.deliver(ctx, log, rec, ev.OrderID, partnerID, &partner, snap.Version, env.WebhookID, webhook.Request{Body: body, Header: h})
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

func (p *processor) deliver(ctx context.Context, log *slog.Logger, rec *kgo.Record, orderID, partnerID string, partner *Partner, version int64, webhookID string, req webhook.Request) error {
	var (
		first, last, waitingSince time.Time
		err                       error
		attempt                   int
	)
	cb := p.breakers[partnerID]
	for attempt < p.cfg.MaxAttempts {
		var resp webhook.Response
		resp, err = cb.Execute(func() (webhook.Response, error) { return p.snd.Send(ctx, &partner.Endpoint, req) })
		endpointDown := errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) ||
			err != nil && webhook.Classify(err) != webhook.Permanent && cb.State() != gobreaker.StateClosed
		if endpointDown {
			// The partner is down for everyone (the breaker refused, or this failure
			// opened it, or a probe failed): wait without spending this snapshot's retry
			// budget (P6), up to the hold time.
			if waitingSince.IsZero() {
				waitingSince = time.Now()
				log.Warn("circuit open; delivery waits", "hold", p.cfg.Breaker.Hold)
			}
			if time.Since(waitingSince) >= p.cfg.Breaker.Hold {
				break
			}
			if serr := sleep(ctx, p.cfg.Breaker.Poll); serr != nil {
				return serr
			}
			continue
		}
		waitingSince = time.Time{}
		attempt++
		if err == nil {
			log.Debug("delivered", "status", resp.Status, "attempts", attempt)
			if p.cfg.OnDelivered != nil {
				p.cfg.OnDelivered(orderID, partnerID, resp.Status)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = time.Now()
		if first.IsZero() {
			first = last
		}
		if webhook.Classify(err) == webhook.Permanent {
			break
		}
		if attempt < p.cfg.MaxAttempts {
			d := p.cfg.Backoff.Delay(attempt-1, err)
			log.Info("delivery failed; retrying", "attempt", attempt, "in", d, "err", err)
			if serr := sleep(ctx, d); serr != nil {
				return serr
			}
		}
	}
	reason := ReasonRetriesExhausted
	switch {
	case !waitingSince.IsZero():
		reason = ReasonCircuitOpen
	case webhook.Classify(err) == webhook.Permanent:
		reason = ReasonRejected
	case webhook.Classify(err) == webhook.Credentials:
		reason = ReasonCredentials
	}
	status := 0
	var se *webhook.StatusError
	if errors.As(err, &se) {
		status = se.Status
	}
	return p.deadLetter(ctx, log, deadletter.Record{
		OrderID: orderID, Stage: deadletter.StageDeliver, Reason: reason, Partner: partnerID,
		HTTPStatus: status, Attempts: attempt, FirstFailure: first, LastFailure: last, Error: err.Error(),
		Value: deadletter.EncodeReference(deadletter.Reference{OrderID: orderID, Partner: partnerID, SnapshotVersion: version, WebhookID: webhookID}),
	}, rec)
}

func (p *processor) deadLetter(ctx context.Context, log *slog.Logger, r deadletter.Record, src *kgo.Record) error {
	r.SourceTopic, r.SourcePartition, r.SourceOffset = src.Topic, src.Partition, src.Offset
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
