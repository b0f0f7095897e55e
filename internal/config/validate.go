package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/pkg/ucp"
)

// Validate checks what the configuration alone can tell, naming the key at fault and the
// fix: required keys, exclusive ones, names and ranges. What needs the components or the
// files the configuration names (URLs, certificates, keys, secrets, limits that depend on
// defaults) is checked by cmd/ucprelay when it builds them, with the key named the same way.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	// unsetOr reports whether a numeric key is unset (the component's default applies) or
	// holds an allowed value; an explicit zero is not "unset".
	unsetOr := func(key string, ok bool) bool { return ok || !c.set[key] }
	if c.State.OrphanAfter < 0 {
		bad("state.orphan_after", "%s: want 0 (events wait for their placement forever) or a positive duration such as 168h", c.State.OrphanAfter)
	}
	if c.Reload.Interval < 0 {
		bad("reload.interval", "%s: want 0 (SIGHUP only) or a positive interval such as 10s", c.Reload.Interval)
	}
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "required: list the seed brokers, e.g. [\"kafka-0:9092\"] (env UCPRELAY_KAFKA__BROKERS=a:9092,b:9092)")
	}
	if c.Kafka.InputTopic == "" {
		bad("kafka.input_topic", "required: name the order-domain event topic")
	}
	if _, err := keys.New(c.Kafka.Partitioner); err != nil {
		bad("kafka.partitioner", "%v", err)
	}
	if p := c.Kafka.GroupProtocol; p != "" && p != "classic" && p != "consumer" {
		bad("kafka.group_protocol", "%q: want classic or consumer", p)
	}
	if st := c.Kafka.SessionTimeout; st < 0 || !unsetOr("kafka.session_timeout", st > 0) {
		bad("kafka.session_timeout", "must be a positive duration such as 45s")
	}
	switch sc := c.Kafka.SASL; strings.ToUpper(sc.Mechanism) {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if sc.Username == "" {
			bad("kafka.sasl.username", "required with mechanism %s", sc.Mechanism)
		}
		if (sc.PasswordFile == "") == (sc.PasswordEnv == "") {
			bad("kafka.sasl", "set exactly one of password_file and password_env (the password never sits in the config file)")
		}
	default:
		bad("kafka.sasl.mechanism", "%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", sc.Mechanism)
	}
	if t := c.Kafka.TLS; (t.CertFile == "") != (t.KeyFile == "") {
		bad("kafka.tls", "set both cert_file and key_file for a client certificate")
	}
	validateRegistry(bad, c.SchemaRegistry)
	for key, v := range map[string]string{"kafka.group": c.Kafka.Group, "kafka.client_id": c.Kafka.ClientID,
		"kafka.state_topic": c.Kafka.StateTopic, "kafka.dead_letter_topic": c.Kafka.DeadLetterTopic} {
		if v == "" {
			bad(key, "must not be empty")
		}
	}
	if len(c.Partners) == 0 {
		bad("partners", "required: configure at least one partner webhook under partners.<id>")
	}
	for _, id := range c.PartnerIDs() {
		p := c.Partners[id]
		key := "partners." + id
		if p.BaseURL == "" {
			bad(key+".base_url", "required: the partner's https://host[/prefix]")
		}
		if strings.HasPrefix(strings.ToLower(p.BaseURL), "http://") && !p.AllowInsecureHTTP && (p.APIKeyFile != "" || p.APIKeyEnv != "" || len(p.Signing.KeySet()) > 0) {
			bad(key+".base_url", "%s is plain http, and the partner gets an API key or signed requests: use https, or set %s.allow_insecure_http: true for a local test sink", p.BaseURL, key)
		}
		if p.UCPVersion != "" {
			if _, err := ucp.ParseVersion(p.UCPVersion); err != nil {
				bad(key+".ucp_version", "%v", err)
			}
		}
		if p.APIKeyFile != "" && p.APIKeyEnv != "" {
			bad(key, "set api_key_file or api_key_env, not both")
		}
		switch p.TimestampFormat {
		case "", "unix", "rfc3339":
		default:
			bad(key+".timestamp_format", "%q: want unix or rfc3339", p.TimestampFormat)
		}
		validateSigning(bad, key+".signing", p)
		if p.APIKeyHeader != "" && p.APIKeyQuery != "" {
			bad(key, "set api_key_header or api_key_query, not both")
		}
	}
	if c.DefaultPartner != "" {
		if _, ok := c.Partners[c.DefaultPartner]; !ok {
			bad("default_partner", "%q is not among partners (%s)", c.DefaultPartner, strings.Join(c.PartnerIDs(), ", "))
		}
	}
	d := c.Delivery
	if d.MaxAttempts < 0 || !unsetOr("delivery.max_attempts", d.MaxAttempts > 0) {
		bad("delivery.max_attempts", "must be at least 1")
	}
	if d.MaxPending < 0 || !unsetOr("delivery.max_pending", d.MaxPending > 0) {
		bad("delivery.max_pending", "must be at least 1")
	}
	for key, v := range map[string]time.Duration{"delivery.attempt_timeout": d.AttemptTimeout, "delivery.max_retry_time": d.MaxRetryTime,
		"delivery.backoff_initial": d.BackoffInitial, "delivery.backoff_max": d.BackoffMax, "delivery.max_retry_after": d.MaxRetryAfter,
		"delivery.breaker.open_for": d.Breaker.OpenFor, "delivery.breaker.hold": d.Breaker.Hold, "delivery.max_clock_skew": d.MaxClockSkew} {
		if v < 0 || !unsetOr(key, v > 0) {
			bad(key, "must be a positive duration such as 10s")
		}
	}
	if !unsetOr("delivery.breaker.failures_to_trip", d.Breaker.FailuresToTrip > 0) {
		bad("delivery.breaker.failures_to_trip", "must be at least 1")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	return errors.Join(errs...)
}

// validateRegistry checks schema_registry's URLs, TLS and credentials.
func validateRegistry(bad func(key, format string, args ...any), r SchemaRegistry) {
	urls := r.URLs()
	for _, u := range urls {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad("schema_registry.url", "%q: want http(s)://host[:port][/path], comma-separated for several", RedactURLs(u))
		}
	}
	if t := r.TLS; (t.CertFile == "") != (t.KeyFile == "") {
		bad("schema_registry.tls", "set both cert_file and key_file for a client certificate")
	}
	ba := r.BasicAuth
	if ba.Username != "" || ba.PasswordFile != "" || ba.PasswordEnv != "" {
		if ba.Username == "" {
			bad("schema_registry.basic_auth.username", "required with a basic_auth password")
		}
		if (ba.PasswordFile == "") == (ba.PasswordEnv == "") {
			bad("schema_registry.basic_auth", "set exactly one of password_file and password_env (the password never sits in the config file)")
		}
		if r.BearerTokenFile != "" {
			bad("schema_registry", "set basic_auth or bearer_token_file, not both: each is the request's Authorization header")
		}
	}
	if len(urls) == 0 && (ba.Username != "" || r.BearerTokenFile != "" || r.TLS != (TLS{})) {
		bad("schema_registry.url", "required with schema_registry's tls, basic_auth or bearer_token_file")
	}
}
