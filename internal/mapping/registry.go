package mapping

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"
)

// SchemaLister is the part of *sr.Client that finds a topic's writer schemas.
type SchemaLister interface {
	Subjects(ctx context.Context) ([]string, error)
	Schemas(ctx context.Context, subject string) ([]sr.SubjectSchema, error)
}

// RegistryWriters returns every version of the Avro schemas the registry holds for the
// topics' values: the subject <topic>-value (TopicNameStrategy) and <topic>-<record>
// whose schema is that record (TopicRecordNameStrategy). Subjects named by the record
// alone (RecordNameStrategy) belong to no topic and are left out.
func RegistryWriters(ctx context.Context, reg SchemaLister, topics []string) ([]Writer, error) {
	subjects, err := reg.Subjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("mapping: list the registry's subjects: %w", err)
	}
	slices.Sort(subjects)
	var out []Writer
	for _, topic := range topics {
		for _, subject := range subjects {
			suffix, ok := strings.CutPrefix(subject, topic+"-")
			if !ok || suffix == "key" || strings.HasSuffix(suffix, "-key") {
				continue
			}
			versions, err := reg.Schemas(ctx, subject)
			if err != nil {
				return nil, fmt.Errorf("mapping: the versions of subject %s: %w", subject, err)
			}
			for _, v := range versions {
				if v.Type != sr.TypeAvro || (suffix != "value" && schemaRecordName(v.Schema.Schema) != suffix) {
					continue // another format, or another topic's subject (a topic named <topic>-…)
				}
				out = append(out, Writer{Topic: topic, Source: fmt.Sprintf("subject %s version %d", subject, v.Version), Schema: v.Schema.Schema})
			}
		}
	}
	return out, nil
}

// schemaRecordName is the full name of a schema's top-level record ("" for another type).
func schemaRecordName(schema string) string {
	var head struct {
		Type      any    `json:"type"`
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	if json.Unmarshal([]byte(schema), &head) != nil || head.Type != "record" {
		return ""
	}
	return fullName(head.Name, head.Namespace)
}
