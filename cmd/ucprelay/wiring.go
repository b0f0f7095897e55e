package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/ucprelay/ucprelay/internal/buildinfo"
	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// settings is the configuration turned into what the components take: Kafka connection
// options, the partners' endpoints with their keys, signers and clients. wire builds it
// once per command, so every command refuses the same invalid configuration, naming the
// key, and the secrets are read in one place.
type settings struct {
	*config.Config
	// kafka are the connection options of every Kafka client (seeds, client id, rack,
	// TLS, SASL).
	kafka []kgo.Opt
	// registry are the schema registry client's options (URLs, TLS, credentials); nil
	// without schema_registry.url.
	registry []sr.ClientOpt
	// partners are the relay's partners, by id.
	partners map[string]relay.Partner
	// secrets are the values every dead-letter error text is redacted of.
	secrets []string
	// resolved says how each secret resolved (never its value), for `config check`.
	resolved []string
	// warnings name settings that work but weaken security; run logs them at start,
	// `config check` prints them.
	warnings []string
	// snd is the webhook sender of every partner.
	snd *webhook.Sender
	// mapper maps the merchant's records to order events; nil without a mapping.
	mapper *mapping.Mapper
	// configFile is the file the configuration was read from ("" for none), and
	// reloadConfig reads it again with the same environment and flags (reload.go).
	configFile   string
	reloadConfig func() (*config.Config, error)
}

// inputs are the mapped topics besides kafka.input_topic: co-partitioned ones, re-keyed
// ones, and the repartition topic when any is re-keyed.
func inputs(c *config.Config) (co, rekey []string, repartition string) {
	for _, mt := range c.Mapping {
		switch {
		case mt.Topic == c.Kafka.InputTopic:
		case mt.Rekey:
			rekey = append(rekey, mt.Topic)
		default:
			co = append(co, mt.Topic)
		}
	}
	if len(rekey) > 0 {
		repartition = c.Kafka.RepartitionTopic
	}
	return co, rekey, repartition
}

// wire builds the settings of cfg; environ holds the environment variables secrets may
// name. Without partnerSecrets the partners get no API key and no signer: the command
// does not deliver, and a secret it does not need is not read.
func wire(cfg *config.Config, environ []string, partnerSecrets bool) (*settings, error) {
	s := &settings{Config: cfg, partners: map[string]relay.Partner{}}
	var errs []error
	bad := func(key string, err error) { errs = append(errs, fmt.Errorf("config: %s: %w", key, err)) }
	var err error
	if s.snd, err = webhook.NewSender(webhook.WithAttemptTimeout(cfg.Delivery.AttemptTimeout)); err != nil {
		return nil, fmt.Errorf("config: delivery.attempt_timeout: %w", err)
	}
	if len(cfg.Mapping) > 0 {
		if s.mapper, err = mapping.New(cfg.MappingTopics()); err != nil {
			errs = append(errs, fmt.Errorf("config: %w", err)) // it names mapping, the topic, the rule, the field
		}
		for _, mt := range cfg.Mapping {
			switch {
			case mt.Topic == cfg.Kafka.InputTopic && mt.Rekey:
				bad("mapping", fmt.Errorf("topic %s: kafka.input_topic is read directly, so it is keyed by order id; map a topic keyed otherwise as a further topic with rekey: true", mt.Topic))
			case mt.Rekey && (mt.Topic == cfg.Kafka.RepartitionTopic || cfg.Kafka.RepartitionTopic == ""):
				bad("kafka.repartition_topic", fmt.Errorf("topic %s is re-keyed: name a repartition topic of ucprelay's own", mt.Topic))
			case mt.Topic == cfg.Kafka.StateTopic || mt.Topic == cfg.Kafka.DeadLetterTopic:
				bad("mapping", fmt.Errorf("topic %s is ucprelay's state or dead-letter topic", mt.Topic))
			}
		}
	}
	if err := s.wireKafka(environ); err != nil {
		errs = append(errs, err)
	}
	if err := s.wireRegistry(environ); err != nil {
		errs = append(errs, err)
	}
	for _, id := range cfg.PartnerIDs() {
		p, notes, err := partner(cfg, id, environ, partnerSecrets)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.partners[id] = p
		s.secrets = append(s.secrets, p.Endpoint.APIKey.Reveal())
		s.resolved = append(s.resolved, notes...)
	}
	rc := s.relayConfig(nil)
	rc.SetDefaults()
	if err := rc.Backoff.Validate(); err != nil {
		bad("delivery.backoff_initial", err)
	}
	if attempt := s.snd.AttemptTimeout(); attempt > rc.SessionTimeout/3 {
		bad("delivery.attempt_timeout", fmt.Errorf("%s is more than a third of kafka.session_timeout (%s): a replica removed from the group must have no request in flight when its partitions move; lower it or raise the session timeout",
			attempt, rc.SessionTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// wireKafka builds the Kafka connection options, reading the TLS files and the SASL password.
func (s *settings) wireKafka(environ []string) error {
	k := s.Kafka
	s.kafka = []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID(k.ClientID)}
	if k.Rack != "" {
		s.kafka = append(s.kafka, kgo.Rack(k.Rack))
	}
	if t := k.TLS; t.Enabled || t.CAFile != "" || t.CertFile != "" {
		tc, err := tlsConfig("kafka.tls", t)
		if err != nil {
			return err
		}
		s.kafka = append(s.kafka, kgo.DialTLSConfig(tc))
		s.resolved = append(s.resolved, fmt.Sprintf("kafka.tls: on (%d client certificates)", len(tc.Certificates)))
	}
	sc := k.SASL
	if sc.Mechanism == "" {
		return nil
	}
	pw, err := secretFrom("kafka.sasl", sc.PasswordFile, sc.PasswordEnv, environ)
	if err != nil {
		return err
	}
	var m sasl.Mechanism
	switch strings.ToUpper(sc.Mechanism) {
	case "PLAIN":
		m = plain.Auth{User: sc.Username, Pass: pw.Reveal()}.AsMechanism()
		if !k.TLS.Enabled && k.TLS.CAFile == "" && k.TLS.CertFile == "" {
			s.warnings = append(s.warnings, "kafka.sasl.mechanism PLAIN without kafka.tls: the password crosses the network in clear; enable kafka.tls or use SCRAM-SHA-512")
		}
	case "SCRAM-SHA-256":
		m = scram.Auth{User: sc.Username, Pass: pw.Reveal()}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: sc.Username, Pass: pw.Reveal()}.AsSha512Mechanism()
	default:
		return fmt.Errorf("config: kafka.sasl.mechanism: %q is not supported", sc.Mechanism)
	}
	s.kafka = append(s.kafka, kgo.SASL(m))
	s.secrets = append(s.secrets, pw.Reveal())
	s.resolved = append(s.resolved, fmt.Sprintf("kafka.sasl %s password: %s (resolved)", m.Name(), webhook.Redacted))
	return nil
}

// partner builds one partner's endpoint (URL, API key and signer when secrets, HTTP
// client) and version, and says how its secrets resolved.
func partner(cfg *config.Config, id string, environ []string, secrets bool) (relay.Partner, []string, error) {
	p := cfg.Partners[id]
	key := "partners." + id
	pathID := p.PartnerID
	if pathID == "" {
		pathID = id
	}
	ep := webhook.Endpoint{Partner: pathID, BaseURL: p.BaseURL, PathTemplate: p.PathTemplate, APIKeyHeader: p.APIKeyHeader, APIKeyQuery: p.APIKeyQuery}
	if _, err := ep.URL(); err != nil {
		return relay.Partner{}, nil, fmt.Errorf("config: %s.base_url: %w", key, err)
	}
	v := ucp.DefaultVersion
	if p.UCPVersion != "" {
		var err error
		if v, err = ucp.ParseVersion(p.UCPVersion); err != nil {
			return relay.Partner{}, nil, fmt.Errorf("config: %s.ucp_version: %w", key, err)
		}
	}
	if p.CAFile != "" {
		pool, err := certPool(p.CAFile)
		if err != nil {
			return relay.Partner{}, nil, fmt.Errorf("config: %s.ca_file: %w", key, err)
		}
		t := webhook.NewTransport()
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		ep.Client = webhook.NoRedirects(&http.Client{Transport: t})
	}
	rp := relay.Partner{Version: v, RFC3339Timestamps: p.TimestampFormat == "rfc3339", PropagateTraceContext: p.PropagateTraceContext}
	if !secrets {
		rp.Endpoint = ep
		return rp, nil, nil
	}
	var (
		notes []string
		err   error
	)
	if ep.APIKey, err = secretFrom(key+".api_key_file/api_key_env", p.APIKeyFile, p.APIKeyEnv, environ); err != nil {
		return relay.Partner{}, nil, err
	}
	switch {
	case ep.APIKey.IsZero():
		notes = append(notes, fmt.Sprintf("%s api key: none", key))
	case p.APIKeyEnv != "":
		notes = append(notes, fmt.Sprintf("%s api key: %s (%d bytes, from api_key_env %s)", key, webhook.Redacted, len(ep.APIKey.Reveal()), p.APIKeyEnv))
	default:
		notes = append(notes, fmt.Sprintf("%s api key: %s (%d bytes, from api_key_file %s)", key, webhook.Redacted, len(ep.APIKey.Reveal()), p.APIKeyFile))
	}
	signer, note, err := partnerSigner(key+".signing", p.Signing, v)
	if err != nil {
		return relay.Partner{}, nil, err
	}
	if signer != nil {
		// A switch, so that a reload (reload.go) can rotate the key while run runs.
		ep.Signer = webhook.NewSwitchSigner(signer)
		notes = append(notes, note)
	}
	rp.Endpoint = ep
	return rp, notes, nil
}

// relayConfig is the relay's configuration; the keys left unset keep the relay's defaults.
func (s *settings) relayConfig(log *slog.Logger) relay.Config {
	c, d := s.Config, s.Delivery
	co, rekey, repartition := inputs(c)
	return relay.Config{
		InputTopic:       c.Kafka.InputTopic,
		CoTopics:         co,
		RekeyTopics:      rekey,
		RepartitionTopic: repartition,
		StateTopic:       c.Kafka.StateTopic,
		Group:            c.Kafka.Group,
		TransactionalID:  s.transactionalID(),
		Partitioner:      c.Kafka.Partitioner,
		InstanceID:       c.Kafka.InstanceID,
		SessionTimeout:   c.Kafka.SessionTimeout,
		GroupProtocol:    c.Kafka.GroupProtocol,
		DeadLetterTopic:  c.Kafka.DeadLetterTopic,
		MaxPending:       d.MaxPending,
		ResendSettle:     s.snd.AttemptTimeout(),
		Partners:         s.partners,
		DefaultPartner:   c.DefaultPartner,
		MaxAttempts:      d.MaxAttempts,
		MaxRetryTime:     d.MaxRetryTime,
		MaxClockSkew:     d.MaxClockSkew,
		OrphanAfter:      c.State.OrphanAfter,
		Breaker:          relay.BreakerConfig{FailuresToTrip: d.Breaker.FailuresToTrip, OpenFor: d.Breaker.OpenFor, Hold: d.Breaker.Hold},
		Backoff:          webhook.Backoff{Initial: d.BackoffInitial, Max: d.BackoffMax, MaxRetryAfter: d.MaxRetryAfter},
		RelayVersion:     buildinfo.String(),
		Secrets:          s.secrets,
		Logger:           log,
	}
}

// transactionalID is this replica's transactional id: kafka.transactional_id, else
// kafka.transactional_id_prefix and kafka.instance_id, else the prefix and the host name
// (the pod name on Kubernetes). Each survives a restart of the same replica, so the
// successor aborts a killed process's open transaction at once; nothing new per process
// start goes into it.
func (s *settings) transactionalID() string {
	id, _ := s.transactionalIDFrom()
	return id
}

// transactionalIDFrom is transactionalID and the key or fact it comes from.
func (s *settings) transactionalIDFrom() (id, from string) {
	switch k := s.Kafka; {
	case k.TransactionalID != "":
		return k.TransactionalID, "kafka.transactional_id"
	case k.InstanceID != "":
		return k.TransactionalIDPrefix + k.InstanceID, "kafka.transactional_id_prefix + kafka.instance_id"
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "local"
	}
	return s.Kafka.TransactionalIDPrefix + h, "kafka.transactional_id_prefix + host name"
}

// effective is the configuration with the keys left to the components filled with the
// values they will use: what `config check` shows.
func (s *settings) effective() *config.Config {
	rc := s.relayConfig(nil)
	rc.SetDefaults()
	c := *s.Config
	c.Kafka.SessionTimeout, c.Kafka.Partitioner, c.Kafka.TransactionalID = rc.SessionTimeout, rc.Partitioner, rc.TransactionalID
	d := &c.Delivery
	d.MaxAttempts, d.MaxRetryTime, d.MaxPending, d.AttemptTimeout = rc.MaxAttempts, rc.MaxRetryTime, rc.MaxPending, s.snd.AttemptTimeout()
	d.MaxClockSkew = rc.MaxClockSkew
	d.BackoffInitial, d.BackoffMax, d.MaxRetryAfter = rc.Backoff.Initial, rc.Backoff.Max, rc.Backoff.MaxRetryAfter
	d.Breaker = config.Breaker{FailuresToTrip: rc.Breaker.FailuresToTrip, OpenFor: rc.Breaker.OpenFor, Hold: rc.Breaker.Hold}
	c.Partners = make(map[string]config.Partner, len(s.Partners))
	for id, p := range s.Partners {
		rp := rc.Partners[id]
		p.UCPVersion = string(rp.Version)
		if p.PathTemplate == "" {
			p.PathTemplate = webhook.DefaultPathTemplate
		}
		if p.APIKeyHeader == "" && p.APIKeyQuery == "" {
			p.APIKeyHeader = webhook.DefaultAPIKeyHeader
		}
		if p.TimestampFormat == "" {
			p.TimestampFormat = "unix"
		}
		c.Partners[id] = p
	}
	return &c
}

// secretFrom reads a secret from a file (trailing newline dropped) or an environment
// variable; key names the configuration keys in errors.
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

// tlsConfig is the client TLS of t (at least TLS 1.2); key names the keys in errors.
func tlsConfig(key string, t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pool, err := certPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("config: %s.ca_file: %w", key, err)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("config: %s.cert_file/key_file: %w", key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// registryTimeout bounds one schema registry request (franz-go's own default).
const registryTimeout = 5 * time.Second

// wireRegistry builds the schema registry client's options: its URLs, TLS (files read
// now) and credentials (basic auth or a bearer token, read now and kept as secrets). A
// credential over plain http warns, as SASL PLAIN without TLS does.
func (s *settings) wireRegistry(environ []string) error {
	r := s.SchemaRegistry
	urls := r.URLs()
	if len(urls) == 0 {
		return nil
	}
	// A URL's userinfo is sent as basic auth and taken out of the URL: the client's
	// errors quote the request URL, and they reach logs and /readyz.
	var userinfo *neturl.Userinfo
	for i, u := range urls {
		pu, err := neturl.Parse(u)
		if err != nil || pu.User == nil {
			continue
		}
		if userinfo != nil && userinfo.String() != pu.User.String() {
			return errors.New("config: schema_registry.url: the URLs carry different userinfo; use schema_registry.basic_auth")
		}
		userinfo, pu.User = pu.User, nil
		urls[i] = pu.String()
	}
	if userinfo != nil && (r.BasicAuth.Username != "" || r.BearerTokenFile != "") {
		return errors.New("config: schema_registry.url: userinfo beside basic_auth or bearer_token_file; set one credential")
	}
	// No redirect is followed: a request carries credentials, and a redirect would send
	// them (or a schema) to another host.
	s.registry = []sr.ClientOpt{sr.URLs(urls...), sr.UserAgent("ucprelay/" + buildinfo.String())}
	if t := r.TLS; t.Enabled || t.CAFile != "" || t.CertFile != "" {
		tc, err := tlsConfig("schema_registry.tls", t)
		if err != nil {
			return err
		}
		s.registry = append(s.registry, sr.DialTLSConfig(tc))
		s.resolved = append(s.resolved, fmt.Sprintf("schema_registry.tls: on (%d client certificates)", len(tc.Certificates)))
	}
	credential := ""
	switch ba := r.BasicAuth; {
	case ba.Username != "":
		pw, err := secretFrom("schema_registry.basic_auth", ba.PasswordFile, ba.PasswordEnv, environ)
		if err != nil {
			return err
		}
		s.registry = append(s.registry, sr.BasicAuth(ba.Username, pw.Reveal()))
		s.secrets = append(s.secrets, pw.Reveal())
		credential = "schema_registry.basic_auth"
	case r.BearerTokenFile != "":
		tok, err := secretFrom("schema_registry.bearer_token_file", r.BearerTokenFile, "", environ)
		if err != nil {
			return err
		}
		if tok.Reveal() == "" {
			return fmt.Errorf("config: schema_registry.bearer_token_file: %s is empty", r.BearerTokenFile)
		}
		s.registry = append(s.registry, sr.BearerToken(tok.Reveal()))
		s.secrets = append(s.secrets, tok.Reveal())
		credential = "schema_registry.bearer_token_file"
	}
	if userinfo != nil {
		pw, _ := userinfo.Password()
		s.registry = append(s.registry, sr.BasicAuth(userinfo.Username(), pw))
		if pw != "" {
			s.secrets = append(s.secrets, pw, neturl.QueryEscape(pw), neturl.PathEscape(pw))
		}
		credential = "schema_registry.url userinfo"
	}
	if credential == "" {
		return nil
	}
	s.resolved = append(s.resolved, fmt.Sprintf("%s: %s (resolved)", credential, webhook.Redacted))
	for _, u := range urls {
		if strings.HasPrefix(strings.ToLower(u), "http://") {
			s.warnings = append(s.warnings, fmt.Sprintf("%s over plain http (%s): the credential crosses the network in clear; use an https:// registry URL",
				credential, config.RedactURLs(u)))
		}
	}
	return nil
}

// registryClient returns the schema registry client of the configuration.
func (s *settings) registryClient() (*sr.Client, error) {
	if s.registry == nil {
		return nil, errors.New("schema_registry.url is not set")
	}
	// An http.Client of its own: sr sets the TLS transport into the client it is given.
	return sr.NewClient(append([]sr.ClientOpt{sr.HTTPClient(webhook.NoRedirects(&http.Client{Timeout: registryTimeout}))}, s.registry...)...)
}

// certPool reads a PEM bundle of certificate authorities.
func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
