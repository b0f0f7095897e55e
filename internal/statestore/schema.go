package statestore

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// systemKeyPrefix starts the keys of the records a state partition holds besides orders
// (the layout, the schemas). Order ids are never empty and never start with NUL.
const systemKeyPrefix = "\x00"

// schemaKeyPrefix starts the key of a schema record: the Avro schema a relay stores the
// events of this partition's orders with, under its fingerprint. Each relay writes its own
// before the first state record of a partition it restored without it, so any relay
// reading the partition (an older one after a rollback included) decodes every stored
// event with its writer schema. Schema records are never deleted (compaction keeps the
// one record per key).
const schemaKeyPrefix = "\x00ucprelay.schema/"

func isSystemKey(k []byte) bool { return strings.HasPrefix(string(k), systemKeyPrefix) }

func isSchemaKey(k string) bool { return strings.HasPrefix(k, schemaKeyPrefix) }

// SchemaKey is the key of the schema record of the schema with this fingerprint.
func SchemaKey(fingerprint uint64) string {
	return fmt.Sprintf("%s%016x", schemaKeyPrefix, fingerprint)
}

// SchemaRecord is the schema record of schema (fingerprint fp) for one state partition.
func SchemaRecord(topic string, partition int32, fp uint64, schema string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: partition, Key: []byte(SchemaKey(fp)), Value: []byte(schema)}
}
