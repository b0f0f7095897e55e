// Package config loads ucprelay's configuration once, in main: a YAML file, then
// UCPRELAY_* environment variables, then command-line flags, each overriding the one
// before. Validation names the key at fault and how to fix it. Secrets (API keys) are
// read from files or environment variables named in the config, never from the file in
// clear, and print as [REDACTED].
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	envprov "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ucprelay/ucprelay/internal/keys"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// EnvPrefix starts every environment variable the config reads. Levels are separated by a
// double underscore: UCPRELAY_KAFKA__GROUP sets kafka.group.
const EnvPrefix = "UCPRELAY_"

// Config is the whole configuration.
type Config struct {
	Kafka          Kafka              `koanf:"kafka"`
	SchemaRegistry SchemaRegistry     `koanf:"schema_registry"`
	Partners       map[string]Partner `koanf:"partners"`
	// DefaultPartner receives orders whose events name no partner id. Optional when
	// there is exactly one partner.
	DefaultPartner string    `koanf:"default_partner"`
	Delivery       Delivery  `koanf:"delivery"`
	Log            Log       `koanf:"log"`
	Telemetry      Telemetry `koanf:"telemetry"`

	// Resolved at Load from files and the environment; never printed.
	kafkaTLS  *tls.Config
	kafkaSASL sasl.Mechanism
}

// Telemetry configures the operational endpoints and exporters.
type Telemetry struct {
	// Listen is the address of /metrics, /healthz and /readyz. Default ":8080"; empty
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
	// partitions move. Default 45s.
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
	// URL of the registry; empty when producers use Avro single-object encoding only.
	URL string `koanf:"url"`
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
}

// Signing is a partner's request signing key.
type Signing struct {
	// KeyFile holds the P-256 private key as PEM (`ucprelay keys generate` writes one) or
	// as a JWK. 2026-04-08 partners get RFC 9421 signatures; 2026-01-xx partners a
	// detached JWS in Request-Signature.
	KeyFile string `koanf:"key_file"`
	// KeyID is the kid of the key in the merchant's /.well-known/ucp signing_keys.
	KeyID string `koanf:"key_id"`
	// Profile is the merchant's profile URL sent in UCP-Agent, e.g.
	// https://shop.example.com/.well-known/ucp.
	Profile string `koanf:"profile"`
}

// Delivery is the retry policy.
type Delivery struct {
	// MaxAttempts per snapshot before it is dead-lettered. Default 8.
	MaxAttempts int `koanf:"max_attempts"`
	// AttemptTimeout bounds one POST. Default 10s.
	AttemptTimeout time.Duration `koanf:"attempt_timeout"`
	// BackoffInitial caps the first retry's jittered delay. Default 200ms.
	BackoffInitial time.Duration `koanf:"backoff_initial"`
	// BackoffMax caps every delay. Default 30s.
	BackoffMax time.Duration `koanf:"backoff_max"`
	// MaxRetryAfter caps a partner's Retry-After. Default 5m.
	MaxRetryAfter time.Duration `koanf:"max_retry_after"`
	// MaxRetryTime bounds the time one snapshot spends on attempts and backoff before it
	// is dead-lettered (retries_exhausted); waits on a down endpoint do not count. Default 5m.
	MaxRetryTime time.Duration `koanf:"max_retry_time"`
	// MaxPending bounds the orders waiting for delivery; above it fetching pauses. Default 10000.
	MaxPending int `koanf:"max_pending"`
	// Breaker configures each partner endpoint's circuit breaker.
	Breaker Breaker `koanf:"breaker"`
}

// Breaker is the circuit breaker of each partner endpoint (P6).
type Breaker struct {
	// FailuresToTrip opens the breaker after this many consecutive failures (5xx, 429,
	// timeouts, connection errors, 401/403; not other 4xx). Default 5.
	FailuresToTrip uint32 `koanf:"failures_to_trip"`
	// OpenFor is how long it stays open before one probe goes through. Default 10s.
	OpenFor time.Duration `koanf:"open_for"`
	// Hold is how long a delivery waits on a down endpoint before it is dead-lettered
	// (circuit_open, or credentials_rejected after 401/403). Default 10m.
	Hold time.Duration `koanf:"hold"`
}

// Log configures slog.
type Log struct {
	// Level: debug, info (default), warn, error.
	Level string `koanf:"level"`
}

// Defaults returns the configuration before any source is applied.
func Defaults() Config {
	b := webhook.DefaultBackoff()
	return Config{
		Kafka: Kafka{ClientID: "ucprelay", Group: "ucprelay", StateTopic: "ucprelay.state", DeadLetterTopic: "ucprelay.dlq", Partitioner: keys.Murmur2,
			SessionTimeout: 45 * time.Second, TransactionalIDPrefix: "ucprelay-"},
		Telemetry: Telemetry{Listen: ":8080"},
		Delivery: Delivery{
			MaxAttempts: 8, AttemptTimeout: 10 * time.Second, MaxRetryTime: 5 * time.Minute, MaxPending: 10000,
			Breaker:        Breaker{FailuresToTrip: 5, OpenFor: 10 * time.Second, Hold: 10 * time.Minute},
			BackoffInitial: b.Initial, BackoffMax: b.Max, MaxRetryAfter: b.MaxRetryAfter,
		},
		Log: Log{Level: "info"},
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
	_, c, err := load(src)
	return c, err
}

// Effective returns the configuration Load would use, as YAML, followed by how each
// secret resolves (never its value): what `ucprelay config check` prints.
func Effective(src Sources) ([]byte, error) {
	k, c, err := load(src)
	if err != nil {
		return nil, err
	}
	out, err := yaml.Parser().Marshal(datesAsStrings(k.Raw()).(map[string]any))
	if err != nil {
		return nil, fmt.Errorf("config: render: %w", err)
	}
	out = append(out, "\n# secrets (values never shown)\n"...)
	for _, id := range c.partnerIDs() {
		p := c.Partners[id]
		key, err := c.APIKey(id, src.Environ)
		switch {
		case err != nil:
			return nil, err
		case key.IsZero():
			out = fmt.Appendf(out, "# partners.%s api key: none\n", id)
		default:
			from := "api_key_file " + p.APIKeyFile
			if p.APIKeyEnv != "" {
				from = "api_key_env " + p.APIKeyEnv
			}
			out = fmt.Appendf(out, "# partners.%s api key: %s (%d bytes, from %s)\n", id, webhook.Redacted, len(key.Reveal()), from)
		}
		sg, err := c.Signer(id)
		if err != nil {
			return nil, err
		}
		if sg != nil {
			out = fmt.Appendf(out, "# partners.%s signing key: %s (loaded from %s, key id %s)\n", id, webhook.Redacted, p.Signing.KeyFile, p.Signing.KeyID)
		}
	}
	if c.kafkaSASL != nil {
		out = fmt.Appendf(out, "# kafka.sasl %s password: %s (resolved)\n", c.kafkaSASL.Name(), webhook.Redacted)
	}
	if c.kafkaTLS != nil {
		out = fmt.Appendf(out, "# kafka.tls: on (%d client certificates)\n", len(c.kafkaTLS.Certificates))
	}
	return out, nil
}

func load(src Sources) (*koanf.Koanf, *Config, error) {
	k := koanf.New(".")
	def := Defaults()
	if err := k.Load(confmapProvider(def), nil); err != nil {
		return nil, nil, fmt.Errorf("config: defaults: %w", err)
	}
	if src.File != "" {
		if err := k.Load(file.Provider(src.File), yaml.Parser()); err != nil {
			return nil, nil, fmt.Errorf("config: read %s: %w", src.File, err)
		}
	}
	env := envprov.Provider(".", envprov.Opt{
		Prefix:        EnvPrefix,
		EnvironFunc:   func() []string { return src.Environ },
		TransformFunc: envKey,
	})
	if err := k.Load(env, nil); err != nil {
		return nil, nil, fmt.Errorf("config: environment: %w", err)
	}
	if src.Flags != nil {
		if err := k.Load(posflag.ProviderWithFlag(src.Flags, ".", k, flagValue), nil); err != nil {
			return nil, nil, fmt.Errorf("config: flags: %w", err)
		}
	}
	var c Config
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(dateAsString, mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","), mapstructure.TextUnmarshallerHookFunc()),
		Metadata: nil, Result: &c, WeaklyTypedInput: true, TagName: "koanf",
	}
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc}); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	if err := c.resolveKafka(src.Environ); err != nil {
		return nil, nil, err
	}
	return k, &c, nil
}

// resolveKafka reads the Kafka connection's TLS files and SASL password.
func (c *Config) resolveKafka(environ []string) error {
	t := c.Kafka.TLS
	if t.Enabled || t.CAFile != "" || t.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return fmt.Errorf("config: kafka.tls.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("config: kafka.tls.ca_file: %s holds no PEM certificate", t.CAFile)
			}
		}
		if t.CertFile != "" || t.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return fmt.Errorf("config: kafka.tls.cert_file/key_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		c.kafkaTLS = tc
	}
	sc := c.Kafka.SASL
	if sc.Mechanism == "" {
		return nil
	}
	pw, err := secretFrom("kafka.sasl", sc.PasswordFile, sc.PasswordEnv, environ)
	if err != nil {
		return err
	}
	switch strings.ToUpper(sc.Mechanism) {
	case "PLAIN":
		c.kafkaSASL = plain.Auth{User: sc.Username, Pass: pw.Reveal()}.AsMechanism()
	case "SCRAM-SHA-256":
		c.kafkaSASL = scram.Auth{User: sc.Username, Pass: pw.Reveal()}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		c.kafkaSASL = scram.Auth{User: sc.Username, Pass: pw.Reveal()}.AsSha512Mechanism()
	}
	return nil
}

// secretFrom reads a secret from a file (trailing newline dropped) or an environment
// variable; key names the config section in errors.
func secretFrom(key, file, env string, environ []string) (webhook.Secret, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return webhook.Secret{}, fmt.Errorf("config: %s: %w", key, err)
		}
		return webhook.NewSecret(strings.TrimRight(string(b), "\r\n")), nil
	case env != "":
		for _, kv := range environ {
			if name, v, ok := strings.Cut(kv, "="); ok && name == env {
				return webhook.NewSecret(v), nil
			}
		}
		return webhook.Secret{}, fmt.Errorf("config: %s: environment variable %s is not set", key, env)
	}
	return webhook.Secret{}, nil
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

// datesAsStrings renders the YAML dates of a raw configuration as they were written.
func datesAsStrings(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = datesAsStrings(e)
		}
	case []any:
		for i, e := range x {
			x[i] = datesAsStrings(e)
		}
	case time.Time:
		s, _ := dateAsString(reflect.TypeFor[time.Time](), reflect.TypeFor[string](), x)
		return s
	}
	return v
}

// envKey maps UCPRELAY_KAFKA__DEAD_LETTER_TOPIC to kafka.dead_letter_topic, and splits
// comma-separated values of list keys.
func envKey(k, v string) (string, any) {
	key := strings.ToLower(strings.TrimPrefix(k, EnvPrefix))
	if strings.HasPrefix(key, "_") {
		return "", nil
	}
	key = strings.ReplaceAll(key, "__", ".")
	if listKeys[key] {
		return key, splitList(v)
	}
	return key, v
}

// flagValue keeps only flags the user set, so a flag's default never hides the file or
// the environment.
func flagValue(f *pflag.Flag) (string, any) {
	if !f.Changed {
		return "", nil
	}
	if listKeys[f.Name] {
		return f.Name, splitList(f.Value.String())
	}
	return f.Name, f.Value.String()
}

var listKeys = map[string]bool{"kafka.brokers": true}

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

// Validate checks the configuration, naming the key at fault and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
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
	if st := c.Kafka.SessionTimeout; st > 0 && c.Delivery.AttemptTimeout > st/3 {
		bad("delivery.attempt_timeout", "%s is more than a third of kafka.session_timeout (%s): a replica removed from the group must have no request in flight when its partitions move; lower it or raise the session timeout",
			c.Delivery.AttemptTimeout, st)
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
	if c.Delivery.MaxPending < 0 {
		bad("delivery.max_pending", "must be positive")
	}
	for key, v := range map[string]string{"kafka.group": c.Kafka.Group, "kafka.client_id": c.Kafka.ClientID,
		"kafka.state_topic": c.Kafka.StateTopic, "kafka.dead_letter_topic": c.Kafka.DeadLetterTopic} {
		if v == "" {
			bad(key, "must not be empty")
		}
	}
	if len(c.Partners) == 0 {
		bad("partners", "required: configure at least one partner webhook under partners.<id>")
	}
	for _, id := range c.partnerIDs() {
		p := c.Partners[id]
		key := "partners." + id
		if _, err := c.Endpoint(id); err != nil {
			bad(key+".base_url", "%v", err)
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
		if sg := p.Signing; sg.KeyFile != "" || sg.KeyID != "" {
			if sg.KeyFile == "" || sg.KeyID == "" {
				bad(key+".signing", "set both key_file and key_id")
			}
		}
		if _, err := c.HTTPClient(id); err != nil {
			bad(key+".ca_file", "%v", err)
		}
		if p.APIKeyHeader != "" && p.APIKeyQuery != "" {
			bad(key, "set api_key_header or api_key_query, not both")
		}
	}
	if c.DefaultPartner != "" {
		if _, ok := c.Partners[c.DefaultPartner]; !ok {
			bad("default_partner", "%q is not among partners (%s)", c.DefaultPartner, strings.Join(c.partnerIDs(), ", "))
		}
	}
	d := c.Delivery
	if d.MaxAttempts < 1 {
		bad("delivery.max_attempts", "must be at least 1")
	}
	if d.AttemptTimeout <= 0 {
		bad("delivery.attempt_timeout", "must be a positive duration such as 10s")
	}
	if d.MaxRetryTime <= 0 {
		bad("delivery.max_retry_time", "must be a positive duration such as 5m")
	}
	if b := d.Breaker; b.FailuresToTrip < 1 || b.OpenFor <= 0 || b.Hold <= 0 {
		bad("delivery.breaker", "failures_to_trip must be at least 1, open_for and hold positive durations such as 10s and 10m")
	}
	if err := c.Backoff().Validate(); err != nil {
		bad("delivery.backoff_initial", "%v", err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	return errors.Join(errs...)
}

func (c *Config) partnerIDs() []string {
	ids := make([]string, 0, len(c.Partners))
	for id := range c.Partners {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Backoff returns the delivery retry policy.
func (c *Config) Backoff() webhook.Backoff {
	return webhook.Backoff{Initial: c.Delivery.BackoffInitial, Max: c.Delivery.BackoffMax, MaxRetryAfter: c.Delivery.MaxRetryAfter}
}

// Version returns the UCP version of a partner's bodies (default 2026-04-08).
func (c *Config) Version(partner string) (ucp.Version, error) {
	v := c.Partners[partner].UCPVersion
	if v == "" {
		return ucp.V20260408, nil
	}
	return ucp.ParseVersion(v)
}

// Endpoint returns a partner's webhook endpoint without its API key.
func (c *Config) Endpoint(partner string) (webhook.Endpoint, error) {
	p, ok := c.Partners[partner]
	if !ok {
		return webhook.Endpoint{}, fmt.Errorf("unknown partner %q", partner)
	}
	id := p.PartnerID
	if id == "" {
		id = partner
	}
	ep := webhook.Endpoint{Partner: id, BaseURL: p.BaseURL, PathTemplate: p.PathTemplate, APIKeyHeader: p.APIKeyHeader, APIKeyQuery: p.APIKeyQuery}
	if _, err := ep.URL(); err != nil {
		return webhook.Endpoint{}, err
	}
	return ep, nil
}

// HTTPClient returns the HTTP client for a partner with a ca_file: the default transport
// trusting only those authorities. It returns nil when the partner uses the shared
// client and the system roots.
func (c *Config) HTTPClient(partner string) (*http.Client, error) {
	f := c.Partners[partner].CAFile
	if f == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", f)
	}
	t := webhook.NewTransport()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}

// Signer returns a partner's request signer, nil when it signs nothing.
func (c *Config) Signer(partner string) (webhook.Signer, error) {
	sg := c.Partners[partner].Signing
	if sg.KeyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(sg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("config: partners.%s.signing.key_file: %w", partner, err)
	}
	key, err := webhook.ParseES256Key(b)
	if err != nil {
		return nil, fmt.Errorf("config: partners.%s.signing.key_file: %w", partner, err)
	}
	v, err := c.Version(partner)
	if err != nil {
		return nil, err
	}
	if v != ucp.V20260408 {
		// 2026-01-xx: detached JWS in Request-Signature.
		return &webhook.DetachedJWSSigner{KeyID: sg.KeyID, Key: key}, nil
	}
	return &webhook.RFC9421Signer{KeyID: sg.KeyID, Key: key, Profile: sg.Profile}, nil
}

// APIKey reads a partner's API key from its file or environment variable; a partner
// with neither has no key.
func (c *Config) APIKey(partner string, environ []string) (webhook.Secret, error) {
	p := c.Partners[partner]
	return secretFrom("partners."+partner+".api_key_file/api_key_env", p.APIKeyFile, p.APIKeyEnv, environ)
}

// KafkaOpts returns the connection options of every Kafka client ucprelay makes.
func (c *Config) KafkaOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Kafka.Brokers...),
		kgo.ClientID(c.Kafka.ClientID),
	}
	if c.Kafka.Rack != "" {
		opts = append(opts, kgo.Rack(c.Kafka.Rack))
	}
	if c.kafkaTLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.kafkaTLS.Clone()))
	}
	if c.kafkaSASL != nil {
		opts = append(opts, kgo.SASL(c.kafkaSASL))
	}
	return opts
}

// TransactionalID returns kafka.transactional_id, or "ucprelay-" and the host name.
func (c *Config) TransactionalID() string {
	if c.Kafka.TransactionalID != "" {
		return c.Kafka.TransactionalID
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "local"
	}
	return c.Kafka.TransactionalIDPrefix + h
}
