package deadletter

// Reason describes one value of the [HeaderReason] header: the vocabulary operators
// filter on (`ucprelay dlq inspect|replay --reason`). Each reason string is defined by
// the package whose error carries it (pkg/avrocodec, pkg/ucp/fold, internal/relay); this
// list documents them in one place, and its test fails when a package defines a reason
// that is neither here nor in [NotDeadLettered], or when README.md's table lacks one.
type Reason struct {
	// Name is the header value, e.g. "corrupt_payload".
	Name string
	// Stages are the [HeaderStage] values it is written with.
	Stages []Stage
	// Meaning says what failed.
	Meaning string
	// Action says what an operator does: what to fix before replaying, or why a replay
	// would only fail again.
	Action string
}

// Reasons returns the dead-letter reasons the relay writes, by stage, each once.
func Reasons() []Reason {
	return []Reason{
		// Decode: the record could not be turned into an event (pkg/avrocodec, internal/relay).
		{Name: "unknown_framing", Stages: []Stage{StageDecode},
			Meaning: "the value is neither Confluent wire format nor Avro single-object encoding",
			Action:  "fix the producer; the same bytes fail again, so re-emit the event upstream instead of replaying"},
		{Name: "unknown_schema_id", Stages: []Stage{StageDecode},
			Meaning: "the Confluent schema id is not in the schema registry, or names a schema that is not Avro or does not parse",
			Action:  "register the schema (or point schema_registry.url at the right registry), then replay"},
		{Name: "unknown_fingerprint", Stages: []Stage{StageDecode},
			Meaning: "the single-object fingerprint is of no schema this relay knows (the avro.OrderEvent it was built with)",
			Action:  "have the producer write the current schema (or the Confluent wire format) and re-emit; replay only after an upgrade of ucprelay that knows the schema"},
		{Name: "corrupt_payload", Stages: []Stage{StageDecode},
			Meaning: "the bytes do not decode under their schema (truncated, trailing bytes, wrong types)",
			Action:  "fix the producer; the same bytes fail again, so re-emit the event upstream instead of replaying"},
		{Name: "unknown_event_type", Stages: []Stage{StageDecode},
			Meaning: "the event's payload is a type this relay does not know",
			Action:  "upgrade ucprelay to a version that knows the event type, then replay"},
		{Name: "invalid_event", Stages: []Stage{StageDecode, StageFold},
			Meaning: "the event decodes but is malformed on its own (a required field missing, a quantity out of range)",
			Action:  "fix the producer and re-emit a correct event; replaying the same one fails again"},
		{Name: "missing_key", Stages: []Stage{StageDecode},
			Meaning: "the input record has no key; the key must be the order id",
			Action:  "fix the producer; replay cannot route a record without an order id (counted unroutable)"},
		{Name: "key_mismatch", Stages: []Stage{StageDecode},
			Meaning: "the record's key is not the order id its event names",
			Action:  "fix the producer's key; a replay keeps the key and fails again"},
		{Name: "registry_not_configured", Stages: []Stage{StageDecode},
			Meaning: "the value is in the Confluent wire format (magic byte 0) and no schema_registry.url is configured",
			Action:  "set schema_registry.url (or have the producer write single-object encoding), restart the relays, then replay"},
		{Name: "registry_rejected", Stages: []Stage{StageDecode},
			Meaning: "the schema registry refused the lookup of the record's schema id with a 4xx other than 401, 403, 404, 408 and 429",
			Action:  "read ucprelay.error, fix the registry or schema_registry.url, then replay"},
		{Name: "partitioner_mismatch", Stages: []Stage{StageDecode},
			Meaning: "a record another replica forwarded here (after partition growth) belongs to another partition by this replica's kafka.partitioner: the replicas disagree on it; it is never forwarded again",
			Action:  "give every replica the same kafka.partitioner (the state layout records it), restart them, then replay"},
		{Name: "unmapped", Stages: []Stage{StageDecode},
			Meaning: "no rule of the record's topic in `mapping:` matches it (the topic dead-letters unmatched records)",
			Action:  "add a rule for the record (`ucprelay mapping test` checks it), or set the topic's `unmatched: ignore`; restart the relays, replay"},
		{Name: "mapping_failed", Stages: []Stage{StageDecode},
			Meaning: "the rule that matched the record failed on it: an expression error, a missing field, a value of the wrong type, a payload field the event does not have (the error names the rule, the field and the expression)",
			Action:  "fix the rule (`ucprelay mapping test` runs it on the record), restart the relays, replay"},
		{Name: "decode_failed", Stages: []Stage{StageDecode},
			Meaning: "the decoder failed without a reason of its own (not expected: every decoder error carries one)",
			Action:  "report it with ucprelay.error; replay once a fixed ucprelay runs"},
		{Name: "invalid_replay", Stages: []Stage{StageDecode},
			Meaning: "a record replayed as a delivery failure whose value is no reference to its key's order",
			Action:  "do not replay it; find what wrote ucprelay.replay.kind on it (only `dlq replay` should)"},

		// Fold: the event decodes but contradicts the order (pkg/ucp/fold, internal/relay).
		{Name: "duplicate_placement", Stages: []Stage{StageFold},
			Meaning: "a second, different OrderPlaced for an order (the later one, by occurred time then id, is refused)",
			Action:  "fix the producer; replaying it fails again"},
		{Name: "unknown_line", Stages: []Stage{StageFold},
			Meaning: "the event references a line the order does not have",
			Action:  "replay after the event that adds the line has arrived; else fix the producer"},
		{Name: "over_fulfilled", Stages: []Stage{StageFold},
			Meaning: "a shipment of more than the line's remaining quantity",
			Action:  "replay after the missing event (e.g. a quantity increase) has arrived; else fix the producer"},
		{Name: "over_canceled", Stages: []Stage{StageFold},
			Meaning: "a cancellation of more than the line's unshipped quantity",
			Action:  "replay after the missing event has arrived; else fix the producer"},
		{Name: "negative_quantity", Stages: []Stage{StageFold},
			Meaning: "an adjustment would take a line's quantity below zero",
			Action:  "replay after the missing event has arrived; else fix the producer"},
		{Name: "currency_mismatch", Stages: []Stage{StageFold},
			Meaning: "an adjustment in another currency than the order's",
			Action:  "fix the producer and re-emit the adjustment; replaying it fails again"},
		{Name: "mixed_orders", Stages: []Stage{StageFold},
			Meaning: "the fold got events of different orders (not expected: the relay refuses a mismatched key first)",
			Action:  "report it with ucprelay.error"},
		{Name: "fold_failed", Stages: []Stage{StageFold},
			Meaning: "the fold failed with none of its domain errors (not expected)",
			Action:  "report it with ucprelay.error; replay once a fixed ucprelay runs"},
		{Name: "unknown_partner", Stages: []Stage{StageFold},
			Meaning: "the order was the relay's, but the partner its snapshot goes to is no longer configured (an order of a partner never configured is not ours: never sent, never dead-lettered)",
			Action:  "configure the partner under partners: again, restart the relays, then replay"},
		{Name: "internal_error", Stages: []Stage{StageFold},
			Meaning: "a bug (a panic) stopped the fold or render of the order's records; the order keeps its state as it was, the stack is logged and counted in ucprelay.internal_errors",
			Action:  "report it with ucprelay.error and the logged stack; replay once a fixed ucprelay runs"},
		{Name: "state_unreadable", Stages: []Stage{StageFold},
			Meaning: "the order's stored state record does not read (corrupt header, a stored event that does not decode, events that no longer fold); the order is parked, its record kept as it is, its later events held with it (written once per order, the source is the state topic at offset -1)",
			Action:  "inspect it (`ucprelay state inspect --order ID`); after a fix (e.g. an upgrade) `ucprelay state release ID`, or `ucprelay state drop ID` to start the order afresh"},
		{Name: "order_too_large", Stages: []Stage{StageFold},
			Meaning: "with these events the order's state record would outgrow the state topic's max.message.bytes; the order keeps its last good state and the refused events are dead-lettered",
			Action:  "raise the state topic's max.message.bytes (and the producer's), restart the relays, then replay"},
		{Name: "produce_refused", Stages: []Stage{StageFold},
			Meaning: "the broker refused a record of the order's transaction again and again (not for its size); after three identical aborts the order's records of that transaction are set aside (the value is a reference)",
			Action:  "read ucprelay.error (the broker's error), fix the topic or the ACLs, then replay"},
		{Name: "orphan", Stages: []Stage{StageFold},
			Meaning: "the order's events waited state.orphan_after (default 7 days) for the order's placement, which never arrived: each event is dead-lettered with its canonical bytes (source offset -1) and the order's state removed",
			Action:  "have the order system emit the placement (or check default_partner and the mapping), then replay: the events fold in with it"},
		{Name: "render_failed", Stages: []Stage{StageFold},
			Meaning: "the snapshot cannot be rendered in the partner's UCP version (the value is a reference)",
			Action:  "fix the partner's ucp_version or upgrade ucprelay, then replay: the current snapshot is sent"},

		// Deliver: the partner did not take the snapshot (internal/relay); the value is a reference.
		{Name: "http_rejected", Stages: []Stage{StageDeliver},
			Meaning: "the partner answered a permanent 4xx (not 401/403/408/429), at the first such answer",
			Action:  "read ucprelay.http.status and ucprelay.error, fix what the partner refuses, then replay"},
		{Name: "http_redirect", Stages: []Stage{StageDeliver},
			Meaning: "the partner answered 3xx: ucprelay never follows a redirect (it would send the body, API key and signature elsewhere, or take another server's 200 as the acknowledgement)",
			Action:  "fix partners.<id>.base_url in the configuration (the Location host is in ucprelay.error), restart the relays, then replay"},
		{Name: "retries_exhausted", Stages: []Stage{StageDeliver},
			Meaning: "delivery.max_attempts or delivery.max_retry_time spent on 5xx, 429, 408, timeouts or resets",
			Action:  "replay once the partner answers again: the current snapshot is sent"},
		{Name: "circuit_open", Stages: []Stage{StageDeliver},
			Meaning: "the partner's endpoint stayed down (breaker open) longer than delivery.breaker.hold",
			Action:  "replay once the partner is back: the current snapshot is sent"},
		{Name: "credentials_rejected", Stages: []Stage{StageDeliver},
			Meaning: "the partner answered 401/403 for longer than delivery.breaker.hold",
			Action:  "fix or rotate the API key (or signing key), restart the relays, then replay"},
	}
}

// NotDeadLettered names the reasons the packages define but the relay never writes to
// the dead-letter topic, with why. They are not in [Reasons]: an operator filtering on
// them would find nothing.
func NotDeadLettered() map[string]string {
	return map[string]string{
		// avrocodec.ReasonRegistryUnavailable, the one transient decode error.
		"registry_unavailable": "a schema registry that cannot be reached, or answers 401, 403, 408, 429 or 5xx, " +
			"holds only the partition whose next record needs it (paused, shown in /readyz and " +
			"ucprelay.partitions.held) until a lookup succeeds; other partitions flow; never dead-lettered",
	}
}
