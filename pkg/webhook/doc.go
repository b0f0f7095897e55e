// Package webhook posts complete UCP order entities to a partner's order webhook
// (`POST {base}/webhooks/partners/{partner_id}/events/order`) and classifies each answer
// by behaviour: success, retryable, permanent, or an endpoint-wide credential failure.
//
// It knows HTTP, authentication and the retry policy's arithmetic; it knows nothing of
// Kafka, queues or circuit breakers, which wrap it in internal/relay. The exact bytes a
// caller passes are the bytes sent: the package never re-serialises a body.
package webhook
