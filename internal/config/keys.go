package config

import (
	"reflect"
	"strings"
	"time"
)

// Key is one scalar configuration key outside maps and lists: each has a flag named
// after it (--kafka.group) and a UCPRELAY_* variable (UCPRELAY_KAFKA__GROUP).
// Keys under partners.<id> and in lists (mapping, signing.keys) are set in the file or
// by the variable form alone.
type Key struct {
	// Name is the dotted key.
	Name string
	// Type is the field's Go type: string, bool, int, uint32, time.Duration or []string.
	Type reflect.Type
	// Help is the one-line description the flag shows.
	Help string
}

// Env is the key's environment variable.
func (k Key) Env() string { return envName(k.Name) }

// help describes every scalar key; a test keeps it, the Config type and
// docs/config.example.yaml in step.
var help = map[string]string{
	"kafka.brokers":                            "seed brokers, comma-separated",
	"kafka.client_id":                          "client id in broker logs and quotas",
	"kafka.group":                              "consumer group id",
	"kafka.input_topic":                        "order-domain event topic (Avro, key = order id)",
	"kafka.state_topic":                        "compacted state topic, co-partitioned with the input",
	"kafka.repartition_topic":                  "topic of the re-keyed records of mapping topics with rekey: true",
	"kafka.dead_letter_topic":                  "dead-letter topic",
	"kafka.transactional_id":                   "this replica's transactional id (stable across its restarts, unique among replicas)",
	"kafka.transactional_id_prefix":            "start of the default transactional id: prefix + kafka.instance_id, else prefix + host name",
	"kafka.instance_id":                        "static group membership id (KIP-345), e.g. the StatefulSet pod name; also names the default transactional id",
	"kafka.session_timeout":                    "how long the group waits for a silent member, e.g. 45s",
	"kafka.group_protocol":                     "classic or consumer (KIP-848)",
	"kafka.partitioner":                        "how the input's producers place keys: murmur2, sarama or crc32",
	"kafka.rack":                               "this replica's rack, to fetch from the nearest replica (KIP-392)",
	"kafka.tls.enabled":                        "TLS to the brokers",
	"kafka.tls.ca_file":                        "PEM bundle of the brokers' certificate authorities",
	"kafka.tls.cert_file":                      "client certificate (PEM) for mutual TLS",
	"kafka.tls.key_file":                       "client key (PEM) for mutual TLS",
	"kafka.tls.server_name":                    "name checked in the brokers' certificates",
	"kafka.sasl.mechanism":                     "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
	"kafka.sasl.username":                      "SASL user name",
	"kafka.sasl.password_file":                 "file holding the SASL password",
	"kafka.sasl.password_env":                  "environment variable holding the SASL password",
	"schema_registry.url":                      "Confluent-compatible schema registry URL(s), comma-separated",
	"schema_registry.tls.enabled":              "TLS to the registry (implied by an https:// URL)",
	"schema_registry.tls.ca_file":              "PEM bundle of the registry's certificate authorities",
	"schema_registry.tls.cert_file":            "client certificate (PEM) for mutual TLS to the registry",
	"schema_registry.tls.key_file":             "client key (PEM) for mutual TLS to the registry",
	"schema_registry.tls.server_name":          "name checked in the registry's certificate",
	"schema_registry.basic_auth.username":      "registry user name (HTTP basic authentication)",
	"schema_registry.basic_auth.password_file": "file holding the registry password",
	"schema_registry.basic_auth.password_env":  "environment variable holding the registry password",
	"schema_registry.bearer_token_file":        "file holding a bearer token for the registry (not with basic_auth)",
	"default_partner":                          "partner of every order whose events name none (unset: such orders are not the relay's)",
	"delivery.max_attempts":                    "attempts per snapshot before it is dead-lettered",
	"delivery.attempt_timeout":                 "bound of one POST, e.g. 10s",
	"delivery.backoff_initial":                 "cap of the first retry's jittered delay",
	"delivery.backoff_max":                     "cap of every retry delay",
	"delivery.max_retry_after":                 "cap of a partner's Retry-After",
	"delivery.max_retry_time":                  "time one snapshot may spend on attempts and backoff",
	"delivery.max_clock_skew":                  "how far a freshness stamp may run ahead of the clock",
	"delivery.max_pending":                     "orders waiting for delivery above which fetching pauses",
	"delivery.breaker.failures_to_trip":        "consecutive failures that open a partner's breaker",
	"delivery.breaker.open_for":                "how long the breaker stays open before one probe",
	"delivery.breaker.hold":                    "how long a delivery waits on a down endpoint before it is dead-lettered",
	"log.level":                                "debug, info, warn or error",
	"telemetry.listen":                         "address of /metrics, /healthz and /readyz; empty turns the server off",
	"telemetry.otlp_endpoint":                  "OTLP/HTTP endpoint of traces and metrics, e.g. http://otel-collector:4318",
	"state.orphan_after":                       "how long events wait for their order's placement before they are dead-lettered as orphan; 0: forever",
	"reload.interval":                          "interval between looks at the configuration and key files; 0: on SIGHUP only",
}

// Keys lists every scalar key in the order of the Config type.
func Keys() []Key {
	var out []Key
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("koanf")
			if tag == "" || !f.IsExported() {
				continue
			}
			name := prefix + tag
			switch {
			case f.Type == reflect.TypeFor[time.Duration]():
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, name+".")
				continue
			case f.Type.Kind() == reflect.Map, f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() != reflect.String:
				continue
			}
			out = append(out, Key{Name: name, Type: f.Type, Help: help[name]})
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// isList reports whether a dotted key holds a list of strings (comma-separated in a
// variable or a flag).
func isList(key string) bool {
	t := typeAt(reflect.TypeFor[Config](), key)
	return t != nil && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String && !strings.Contains(key, "[")
}
