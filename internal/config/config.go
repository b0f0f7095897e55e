// Package config reads ucprelay's configuration once, in main: a YAML file, then
// UCPRELAY_* environment variables, then command-line flags, each overriding the one
// before. It validates what the configuration alone can tell, naming the key at fault and
// how to fix it, and describes the result for `ucprelay config check`. It builds nothing:
// cmd/ucprelay turns the configuration into the components' settings, and each default
// is the component's (a key left unset stays unset here). Secrets never sit in the file:
// it names the file or environment variable that holds each one.
package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	envprov "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/ucprelay/ucprelay/internal/mapping"
)

// EnvPrefix starts every environment variable the config reads. Levels are separated by a
// double underscore: UCPRELAY_KAFKA__GROUP sets kafka.group.
const EnvPrefix = "UCPRELAY_"

// Config is the whole configuration.
type Config struct {
	Kafka          Kafka              `koanf:"kafka"`
	SchemaRegistry SchemaRegistry     `koanf:"schema_registry"`
	Partners       map[string]Partner `koanf:"partners"`
	// DefaultPartner declares that every order on the input whose events name no partner
	// id belongs to this partner. Unset (never implied, not even with one partner): such
	// an order is not the relay's and is never sent.
	DefaultPartner string    `koanf:"default_partner"`
	Delivery       Delivery  `koanf:"delivery"`
	Log            Log       `koanf:"log"`
	Telemetry      Telemetry `koanf:"telemetry"`
	// Mapping turns the merchant's own records into order events, per input topic
	// (internal/mapping). Empty: the input carries ucprelay's own event schema.
	Mapping []MappedTopic `koanf:"mapping"`
	// Reload re-reads the partners' signing keys while `run` runs.
	Reload Reload `koanf:"reload"`
	// State bounds what the state topic keeps.
	State State `koanf:"state"`

	// set holds the keys a source set, so that an explicit zero is told from an unset key.
	set map[string]bool
}

// MappedTopic is the mapping of one input topic's records to order events.
type MappedTopic struct {
	Topic string `koanf:"topic"`
	// Unmatched: dead_letter (default: a record no rule matches is dead-lettered as
	// unmapped) or ignore (skipped, counted).
	Unmatched string `koanf:"unmatched"`
	// Rekey: the topic is keyed by something else than the order id (a shipment id, a
	// payment id). Its records are re-keyed by the order id their rule gives, into
	// kafka.repartition_topic, and folded from there. Unset: the topic is keyed by order
	// id with kafka.partitioner and has the input's partition count (co-partitioned), and
	// is read directly.
	Rekey bool          `koanf:"rekey"`
	Rules []MappingRule `koanf:"rules"`
}

// MappingRule builds one order event of kind Kind from each record Match selects; each
// field of Event is a CEL expression (see internal/mapping for the variables).
type MappingRule struct {
	Name  string            `koanf:"name"`
	Match string            `koanf:"match"`
	Kind  string            `koanf:"kind"`
	Event map[string]string `koanf:"event"`
}

// Telemetry configures the operational endpoints and exporters.
type Telemetry struct {
	// Listen is the address of /metrics, /healthz and /readyz. Default "127.0.0.1:8080"
	// (loopback: nothing is exposed unless asked; the Helm chart sets ":8080"); empty
	// turns the server off.
	Listen string `koanf:"listen"`
	// OTLPEndpoint, e.g. http://otel-collector:4318, receives traces and metrics over
	// OTLP/HTTP. Empty: metrics on /metrics only, no spans exported.
	OTLPEndpoint string `koanf:"otlp_endpoint"`
}

// TLS is the Kafka connection's TLS.
type TLS struct {
	// Enabled turns TLS on (with the system roots unless CAFile is set).
	Enabled bool `koanf:"enabled"`
	// CAFile is a PEM bundle of the brokers' certificate authorities.
	CAFile string `koanf:"ca_file"`
	// CertFile and KeyFile are the client certificate and key (PEM) for mutual TLS.
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `koanf:"server_name"`
}

// SASL is the Kafka connection's authentication.
type SASL struct {
	// Mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none.
	Mechanism string `koanf:"mechanism"`
	Username  string `koanf:"username"`
	// PasswordFile or PasswordEnv holds the password; never the config file itself.
	PasswordFile string `koanf:"password_file"`
	PasswordEnv  string `koanf:"password_env"`
}

// Kafka is the connection and topics.
type Kafka struct {
	// Brokers are the seed addresses. Required.
	Brokers []string `koanf:"brokers"`
	// ClientID names this client in broker logs and quotas. Default "ucprelay".
	ClientID string `koanf:"client_id"`
	// Group is the consumer group id. Default "ucprelay".
	Group string `koanf:"group"`
	// InputTopic is the order-domain event topic (Avro, key = order id). Required.
	InputTopic string `koanf:"input_topic"`
	// StateTopic is the compacted state topic, co-partitioned with the input. Default "ucprelay.state".
	StateTopic string `koanf:"state_topic"`
	// RepartitionTopic is ucprelay's topic of the records of re-keyed mapping topics (rekey:
	// true), co-partitioned with the input; `ucprelay topics create` creates it. Default
	// "ucprelay.repartition"; unused when no topic is re-keyed.
	RepartitionTopic string `koanf:"repartition_topic"`
	// DeadLetterTopic receives what cannot be processed or delivered. Default "ucprelay.dlq".
	DeadLetterTopic string `koanf:"dead_letter_topic"`
	// TransactionalID names this replica's transactional producer; unique per replica.
	// Default "ucprelay-" + the host name (the pod name on Kubernetes).
	TransactionalID string `koanf:"transactional_id"`
	// InstanceID turns on static group membership (KIP-345): a replica that restarts with
	// the same id within the session timeout gets its partitions back without a
	// rebalance. Use the pod name of a StatefulSet. Optional.
	InstanceID string `koanf:"instance_id"`
	// SessionTimeout is how long the group waits for a silent member before its
	// partitions move. Unset: the relay's default.
	SessionTimeout time.Duration `koanf:"session_timeout"`
	// GroupProtocol is classic (default; cooperative-sticky, assigned by the clients) or
	// consumer (KIP-848, assigned by the broker; Kafka 4.0+, franz-go recommends 4.3+).
	GroupProtocol string `koanf:"group_protocol"`
	// Partitioner is how the producers of the input topic place keys: murmur2 (Kafka's
	// default, the default here), sarama (FNV-1a) or crc32 (librdkafka consistent).
	Partitioner string `koanf:"partitioner"`
	// TransactionalIDPrefix starts the default transactional id: prefix + host name.
	// Default "ucprelay-".
	TransactionalIDPrefix string `koanf:"transactional_id_prefix"`
	// Rack is this replica's rack (availability zone): with rack-aware brokers it fetches
	// from the nearest replica (KIP-392).
	Rack string `koanf:"rack"`
	TLS  TLS    `koanf:"tls"`
	SASL SASL   `koanf:"sasl"`
}

// SchemaRegistry locates the Confluent-compatible registry that resolves schema ids.
type SchemaRegistry struct {
	// URL of the registry, or several comma-separated (tried in turn); empty when
	// producers use Avro single-object encoding only.
	URL string `koanf:"url"`
	// TLS to the registry: its certificate authorities and a client certificate.
	TLS TLS `koanf:"tls"`
	// BasicAuth is the registry's user and password (Confluent's, Apicurio's, Karapace's).
	BasicAuth BasicAuth `koanf:"basic_auth"`
	// BearerTokenFile holds a token sent as "Authorization: Bearer"; not with BasicAuth.
	BearerTokenFile string `koanf:"bearer_token_file"`
}

// URLs are the registry's URLs, trimmed.
func (r SchemaRegistry) URLs() []string {
	var out []string
	for _, u := range strings.Split(r.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// BasicAuth is a user and a password held in a file or an environment variable.
type BasicAuth struct {
	Username string `koanf:"username"`
	// PasswordFile or PasswordEnv holds the password; never the config file itself.
	PasswordFile string `koanf:"password_file"`
	PasswordEnv  string `koanf:"password_env"`
}

// Partner is one agent platform's order webhook.
type Partner struct {
	// BaseURL is scheme, host and optional prefix, e.g.
	// https://shoppingdataintegration.googleapis.com/v1. Required.
	BaseURL string `koanf:"base_url"`
	// PathTemplate defaults to /webhooks/partners/{partner_id}/events/order.
	PathTemplate string `koanf:"path_template"`
	// PartnerID is the id in the path, when it differs from the key of this entry.
	PartnerID string `koanf:"partner_id"`
	// UCPVersion of the bodies sent: 2026-04-08 (default), 2026-01-23, 2026-01-11.
	UCPVersion string `koanf:"ucp_version"`
	// APIKeyFile is a file holding the API key (trailing newline ignored).
	APIKeyFile string `koanf:"api_key_file"`
	// APIKeyEnv names an environment variable holding the API key.
	APIKeyEnv string `koanf:"api_key_env"`
	// APIKeyHeader defaults to X-Goog-Api-Key.
	APIKeyHeader string `koanf:"api_key_header"`
	// APIKeyQuery sends the key as this query parameter instead (Google accepts "key").
	APIKeyQuery string `koanf:"api_key_query"`
	// Signing signs each request (2026-04-08: RFC 9421 with ES256). Optional.
	Signing Signing `koanf:"signing"`
	// CAFile is a PEM bundle of the certificate authorities trusted for this partner's
	// HTTPS endpoint, instead of the system roots (a private CA, a test partner).
	CAFile string `koanf:"ca_file"`
	// TimestampFormat of the Webhook-Timestamp header: unix (seconds, the UCP OpenAPI's
	// type; default) or rfc3339 (Google's example).
	TimestampFormat string `koanf:"timestamp_format"`
	// AllowInsecureHTTP accepts an http:// BaseURL although the partner gets an API key or
	// signed requests: the key would cross the network in clear. For a local test sink
	// and the demo; never for a real partner.
	AllowInsecureHTTP bool `koanf:"allow_insecure_http"`
	// PropagateTraceContext sends the W3C trace context of the input record (traceparent,
	// tracestate) to this partner. Default false: a partner sees nothing internal.
	PropagateTraceContext bool `koanf:"propagate_trace_context"`
}

// The signing algorithms (Signing.Alg).
const (
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// State bounds what the state topic keeps.
type State struct {
	// OrphanAfter is how long an order's events wait for its placement before they are
	// dead-lettered as orphan and the order's state removed. Default 7 days; 0: forever.
	OrphanAfter time.Duration `koanf:"orphan_after"`
}

// Reload is how `run` picks up a rotated signing key without a restart.
type Reload struct {
	// Interval between two looks at the configuration file and the key files; a change
	// of content reloads the partners' signing keys. 0: only on SIGHUP (which reloads at
	// any interval).
	Interval time.Duration `koanf:"interval"`
}

// Signing is a partner's request signing key, or its keys during a rotation.
type Signing struct {
	// KeyFile holds the private key as PEM (`ucprelay keys generate` writes one) or as a
	// JWK: P-256 for ES256, Ed25519 for EdDSA. 2026-04-08 partners get RFC 9421
	// signatures; 2026-01-xx partners a detached JWS in Request-Signature (ES256 only).
	KeyFile string `koanf:"key_file"`
	// Alg is the signing algorithm: ES256 (default) or EdDSA (Ed25519, 2026-04-08 only).
	Alg string `koanf:"alg"`
	// KeyID is the kid of the key that signs, as published in the merchant's
	// /.well-known/ucp (keys or signing_keys): KeyFile's, or one of Keys.
	KeyID string `koanf:"key_id"`
	// Keys are several keys with their kids, instead of KeyFile, for a rotation: the
	// next key is loaded (and checked) before it signs, and the one KeyID names signs.
	Keys []SigningKey `koanf:"keys"`
	// Profile is the merchant's profile URL sent in UCP-Agent, e.g.
	// https://shop.example.com/.well-known/ucp.
	Profile string `koanf:"profile"`
}

// SigningKey is one of a partner's signing keys.
type SigningKey struct {
	KeyID   string `koanf:"key_id"`
	KeyFile string `koanf:"key_file"`
	// Alg: ES256 (default) or EdDSA.
	Alg string `koanf:"alg"`
}

// KeySet is the partner's keys in one form: Keys, or the single KeyFile with KeyID and
// Alg. Empty: the partner does not sign.
func (s Signing) KeySet() []SigningKey {
	if len(s.Keys) > 0 {
		return s.Keys
	}
	if s.KeyFile == "" {
		return nil
	}
	return []SigningKey{{KeyID: s.KeyID, KeyFile: s.KeyFile, Alg: s.Alg}}
}

// Delivery is the retry policy.
type Delivery struct {
	// MaxAttempts per snapshot before it is dead-lettered. Unset: the relay's default.
	MaxAttempts int `koanf:"max_attempts"`
	// AttemptTimeout bounds one POST. Unset: the webhook sender's default.
	AttemptTimeout time.Duration `koanf:"attempt_timeout"`
	// BackoffInitial caps the first retry's jittered delay. Unset: the webhook backoff's default.
	BackoffInitial time.Duration `koanf:"backoff_initial"`
	// BackoffMax caps every delay. Unset: the webhook backoff's default.
	BackoffMax time.Duration `koanf:"backoff_max"`
	// MaxRetryAfter caps a partner's Retry-After. Unset: the webhook backoff's default.
	MaxRetryAfter time.Duration `koanf:"max_retry_after"`
	// MaxRetryTime bounds the time one snapshot spends on attempts and backoff before it
	// is dead-lettered (retries_exhausted); waits on a down endpoint do not count. Unset: the relay's default.
	MaxRetryTime time.Duration `koanf:"max_retry_time"`
	// MaxClockSkew bounds how far a freshness stamp (Webhook-Timestamp, created_time) may
	// run ahead of the clock; at the bound an order's next snapshot waits. Unset: the relay's default.
	MaxClockSkew time.Duration `koanf:"max_clock_skew"`
	// MaxPending bounds the orders waiting for delivery; above it fetching pauses. Unset: the relay's default.
	MaxPending int `koanf:"max_pending"`
	// Breaker configures each partner endpoint's circuit breaker.
	Breaker Breaker `koanf:"breaker"`
}

// Breaker is the circuit breaker of each partner endpoint (P6).
type Breaker struct {
	// FailuresToTrip opens the breaker after this many consecutive failures (5xx, 429,
	// timeouts, connection errors, 401/403; not other 4xx). Unset: the relay's default.
	FailuresToTrip uint32 `koanf:"failures_to_trip"`
	// OpenFor is how long it stays open before one probe goes through. Unset: the relay's default.
	OpenFor time.Duration `koanf:"open_for"`
	// Hold is how long a delivery waits on a down endpoint before it is dead-lettered
	// (circuit_open, or credentials_rejected after 401/403). Unset: the relay's default.
	Hold time.Duration `koanf:"hold"`
}

// Log configures slog.
type Log struct {
	// Level: debug, info (default), warn, error.
	Level string `koanf:"level"`
}

// Defaults returns the configuration before any source is applied: the defaults that
// belong to the command line itself (names, addresses, log level). The components'
// defaults (delivery policy, breaker, session timeout, partitioner, UCP version) are
// theirs: such keys stay unset here, and `config check` asks the components.
func Defaults() Config {
	return Config{
		Kafka:     Kafka{ClientID: "ucprelay", Group: "ucprelay", StateTopic: "ucprelay.state", RepartitionTopic: "ucprelay.repartition", DeadLetterTopic: "ucprelay.dlq", TransactionalIDPrefix: "ucprelay-"},
		Telemetry: Telemetry{Listen: "127.0.0.1:8080"},
		Log:       Log{Level: "info"},
		Reload:    Reload{Interval: 10 * time.Second},
		State:     State{OrphanAfter: 7 * 24 * time.Hour},
	}
}

// Sources are where Load reads from.
type Sources struct {
	// File is a YAML file; empty for none.
	File string
	// Environ is the environment (os.Environ() in main); only UCPRELAY_* entries are read.
	Environ []string
	// Flags are the command's flags; only flags the user set override. A flag named
	// "kafka.brokers" sets kafka.brokers.
	Flags *pflag.FlagSet
}

// Load reads the sources in order of precedence and validates the result.
func Load(src Sources) (*Config, error) {
	user := koanf.New(".") // what the sources set, in order of precedence
	if src.File != "" {
		if err := user.Load(file.Provider(src.File), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config: read %s: %w", src.File, err)
		}
	}
	// Strict: a UCPRELAY_* variable is a key, unless it holds a secret the configuration
	// names (api_key_env, password_env) or Kubernetes injected it for a service.
	secrets := secretVars(user.All(), src.Environ)
	envVar := map[string]string{} // key -> the variable that set it
	env := envprov.Provider(".", envprov.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return src.Environ },
		TransformFunc: func(name, v string) (string, any) {
			if secrets[name] || serviceLink.MatchString(name) {
				return "", nil
			}
			key, val := envKey(name, v)
			if key != "" {
				envVar[key] = name
			}
			return key, val
		},
	})
	if err := user.Load(env, nil); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}
	if src.Flags != nil {
		if err := user.Load(posflag.ProviderWithFlag(src.Flags, ".", user, flagValue), nil); err != nil {
			return nil, fmt.Errorf("config: flags: %w", err)
		}
	}
	k := koanf.New(".")
	if err := k.Load(structs.Provider(Defaults(), "koanf"), nil); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}
	if err := k.Merge(user); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c Config
	md := &mapstructure.Metadata{}
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(dateAsString, mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","), mapstructure.TextUnmarshallerHookFunc()),
		Metadata: md, Result: &c, WeaklyTypedInput: true, TagName: "koanf",
	}
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.set = map[string]bool{}
	for _, key := range user.Keys() {
		c.set[key] = true
	}
	unknown := unknownKeys(md.Unused, envVar)
	if err := errors.Join(append(unknown, c.Validate())...); err != nil {
		return nil, err
	}
	return &c, nil
}

// dateAsString keeps a YAML date such as ucp_version: 2026-04-08, which the YAML parser
// reads as a time, a string as written.
func dateAsString(from, to reflect.Type, v any) (any, error) {
	if t, ok := v.(time.Time); ok && to.Kind() == reflect.String && from == reflect.TypeFor[time.Time]() {
		if t.Equal(t.Truncate(24 * time.Hour)) {
			return t.Format(time.DateOnly), nil
		}
		return t.Format(time.RFC3339), nil
	}
	return v, nil
}

// envKey maps UCPRELAY_KAFKA__DEAD_LETTER_TOPIC to kafka.dead_letter_topic, and splits
// comma-separated values of list keys.
func envKey(k, v string) (string, any) {
	key := strings.ToLower(strings.TrimPrefix(k, EnvPrefix))
	if strings.HasPrefix(key, "_") {
		return "", nil
	}
	key = strings.ReplaceAll(key, "__", ".")
	if isList(key) {
		return key, splitList(v)
	}
	return key, v
}

// flagValue keeps only flags the user set, so a flag's default never hides the file or
// the environment.
func flagValue(f *pflag.Flag) (string, any) {
	if !f.Changed || !isKey(f.Name) { // a command's own flags (--config, --dry-run) are not keys
		return "", nil
	}
	if isList(f.Name) {
		return f.Name, splitList(f.Value.String())
	}
	return f.Name, f.Value.String()
}

func splitList(v string) []string {
	v = strings.Trim(v, "[]")
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// PartnerIDs returns the configured partner ids, sorted.
func (c *Config) PartnerIDs() []string {
	ids := make([]string, 0, len(c.Partners))
	for id := range c.Partners {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// MappingTopics is the configuration's mapping, as internal/mapping takes it.
func (c *Config) MappingTopics() []mapping.Topic {
	out := make([]mapping.Topic, 0, len(c.Mapping))
	for _, mt := range c.Mapping {
		t := mapping.Topic{Name: mt.Topic, Unmatched: mapping.Unmatched(mt.Unmatched)}
		for _, r := range mt.Rules {
			t.Rules = append(t.Rules, mapping.Rule{Name: r.Name, Match: r.Match, Kind: r.Kind, Event: r.Event})
		}
		out = append(out, t)
	}
	return out
}
