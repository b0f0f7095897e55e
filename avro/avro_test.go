package avro_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/avro"
)

// The history is append-only: every shipped version is listed with its digest, numbered
// without gaps, and the newest is the current schema. Changing order_event.avsc without
// adding it as the next version fails here.
func TestHistoryIsNeverEdited(t *testing.T) {
	t.Parallel()
	h := avro.History()
	if len(h) < 2 {
		t.Fatalf("history holds %d versions", len(h))
	}
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(avro.HistorySums()), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		sums[f[1]] = f[0]
	}
	if len(sums) != len(h) {
		t.Errorf("SHA256SUMS lists %d files, history has %d", len(sums), len(h))
	}
	for i, v := range h {
		if v.N != i+1 {
			t.Errorf("version %d is numbered %d: versions are numbered from 1 without gaps", i+1, v.N)
		}
		d := sha256.Sum256([]byte(v.Schema))
		if got := hex.EncodeToString(d[:]); sums[v.File] != got {
			t.Errorf("%s: digest %s, SHA256SUMS says %q: a shipped version is never edited, add a new one", v.File, got, sums[v.File])
		}
	}
	if last := h[len(h)-1]; last.Schema != avro.OrderEvent {
		t.Errorf("order_event.avsc differs from %s: a changed schema is added to history/ as order_event.v%d.avsc (and to SHA256SUMS)", last.File, last.N+1)
	}
}

// Each version may follow the one before it by the rules of README.md.
func TestHistoryIsCompatible(t *testing.T) {
	t.Parallel()
	h := avro.History()
	for i := 1; i < len(h); i++ {
		if err := avro.Compatible(h[i-1].Schema, h[i].Schema); err != nil {
			t.Errorf("%s → %s: %v", h[i-1].File, h[i].File, err)
		}
	}
}

// The check refuses each kind of change the rules forbid and accepts the ones they allow.
func TestCompatibleRules(t *testing.T) {
	t.Parallel()
	const base = `{"type":"record","name":"E","namespace":"dev.t","fields":[
		{"name":"id","type":"string"},
		{"name":"n","type":"int"},
		{"name":"f","type":"float"},
		{"name":"note","type":["null","string"],"default":null},
		{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
		{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"tags","type":{"type":"array","items":"string"},"default":[]},
		{"name":"payload","type":[{"type":"record","name":"P1","fields":[{"name":"x","type":"long"}]},
			{"type":"record","name":"P2","fields":[{"name":"y","type":"string"}]}]},
		{"name":"again","type":"P1"}
	]}`
	edit := func(t *testing.T, f func(m map[string]any)) string {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(base), &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	fieldOf := func(m map[string]any, name string) map[string]any {
		for _, f := range m["fields"].([]any) {
			if fm := f.(map[string]any); fm["name"] == name {
				return fm
			}
		}
		panic(name)
	}
	removeField := func(m map[string]any, name string) {
		var kept []any
		for _, f := range m["fields"].([]any) {
			if f.(map[string]any)["name"] != name {
				kept = append(kept, f)
			}
		}
		m["fields"] = kept
	}
	addField := func(m map[string]any, f map[string]any) { m["fields"] = append(m["fields"].([]any), f) }
	union := func(m map[string]any) []any { return fieldOf(m, "payload")["type"].([]any) }
	cases := []struct {
		name string
		edit func(m map[string]any)
		want string // "" when compatible, else a part of the error
	}{
		{"unchanged", func(map[string]any) {}, ""},
		{"field added with a default", func(m map[string]any) {
			addField(m, map[string]any{"name": "extra", "type": []any{"null", "long"}, "default": nil})
		}, ""},
		{"field added without a default", func(m map[string]any) { addField(m, map[string]any{"name": "extra", "type": "long"}) }, "extra: field added without a default"},
		{"field with a default removed", func(m map[string]any) { removeField(m, "note") }, ""},
		{"field without a default removed", func(m map[string]any) { removeField(m, "n") }, "n: field removed"},
		{"int promoted to long", func(m map[string]any) { fieldOf(m, "n")["type"] = "long" }, ""},
		{"float promoted to double", func(m map[string]any) { fieldOf(m, "f")["type"] = "double" }, ""},
		{"string read as bytes", func(m map[string]any) { fieldOf(m, "id")["type"] = "bytes" }, ""},
		{"long narrowed to int", func(m map[string]any) {
			fieldOf(m, "payload")["type"].([]any)[0].(map[string]any)["fields"].([]any)[0].(map[string]any)["type"] = "int"
		}, "payload|dev.t.P1.x: type changed from long to int"},
		{"string made optional", func(m map[string]any) { fieldOf(m, "id")["type"] = []any{"null", "string"} }, "id: type changed"},
		{"logical type dropped", func(m map[string]any) { fieldOf(m, "at")["type"] = "long" }, "at: logical type changed"},
		{"field renamed with an alias", func(m map[string]any) {
			f := fieldOf(m, "id")
			f["name"], f["aliases"] = "event_id", []any{"id"}
		}, ""},
		{"field renamed without an alias", func(m map[string]any) { fieldOf(m, "id")["name"] = "event_id" }, "id: field removed"},
		{"default dropped", func(m map[string]any) { delete(fieldOf(m, "tags"), "default") }, "tags: field lost its default"},
		{"branch appended", func(m map[string]any) {
			fieldOf(m, "payload")["type"] = append(union(m), map[string]any{"type": "record", "name": "P3", "fields": []any{}})
		}, ""},
		{"branches reordered", func(m map[string]any) {
			u := union(m)
			u[0], u[1] = u[1], u[0]
		}, "union branch 0 changed from dev.t.P1 to dev.t.P2"},
		{"branch removed", func(m map[string]any) { fieldOf(m, "payload")["type"] = union(m)[:1] }, "union lost branches"},
		{"record renamed without an alias", func(m map[string]any) { m["name"] = "E2" }, "dev.t.E renamed to dev.t.E2"},
		{"record renamed with an alias", func(m map[string]any) { m["name"], m["aliases"] = "E2", []any{"E"} }, ""},
		{"enum symbol appended", func(m map[string]any) {
			fieldOf(m, "kind")["type"].(map[string]any)["symbols"] = []any{"A", "B", "C"}
		}, ""},
		{"enum symbol removed", func(m map[string]any) { fieldOf(m, "kind")["type"].(map[string]any)["symbols"] = []any{"A"} }, "enum symbols"},
		{"referenced record changed through its reference", func(m map[string]any) {
			removeField(union(m)[0].(map[string]any), "x")
		}, "P1.x: field removed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := avro.Compatible(base, edit(t, c.edit))
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Errorf("accepted, want %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Errorf("error %q, want it to name %q", err, c.want)
			}
		})
	}
	if err := avro.Compatible(base, "{"); err == nil {
		t.Error("a schema that does not parse is accepted")
	}
}
