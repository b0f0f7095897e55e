package ucpschema_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/internal/testshared"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

func examples(t *testing.T) map[string][]byte {
	t.Helper()
	dir := testshared.Dir(t, "ucp-examples")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 6 {
		t.Fatalf("want the 6 examples, found %d", len(files))
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestExamplesValidate(t *testing.T) {
	t.Parallel()
	v, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range examples(t) {
		if err := v.Validate(body); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestBrokenBodiesFail(t *testing.T) {
	t.Parallel()
	v, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	base := examples(t)["order-created.json"]
	cases := map[string]func(m map[string]any){
		"missing currency": func(m map[string]any) { delete(m, "currency") },
		"missing ucp":      func(m map[string]any) { delete(m, "ucp") },
		"bad permalink":    func(m map[string]any) { m["permalink_url"] = "not a uri" },
		"bad status": func(m map[string]any) {
			m["line_items"].([]any)[0].(map[string]any)["status"] = "shipped"
		},
		"negative quantity": func(m map[string]any) {
			m["line_items"].([]any)[0].(map[string]any)["quantity"].(map[string]any)["total"] = -1
		},
		"positive discount": func(m map[string]any) {
			m["totals"] = append(m["totals"].([]any), map[string]any{"type": "discount", "amount": 100})
		},
		"negative tax": func(m map[string]any) {
			m["totals"].([]any)[2].(map[string]any)["amount"] = -5
		},
		"bad date-time": func(m map[string]any) {
			m["adjustments"] = []any{map[string]any{"id": "a", "type": "refund", "status": "completed", "occurred_at": "yesterday"}}
		},
	}
	for name, mutate := range cases {
		var m map[string]any
		if err := json.Unmarshal(base, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		b, _ := json.Marshal(m)
		if err := v.Validate(b); !errors.Is(err, ucpschema.ErrInvalid) {
			t.Errorf("%s: want ErrInvalid, got %v", name, err)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty error", name)
		}
	}
	if err := v.Validate([]byte("{nope")); !errors.Is(err, ucpschema.ErrInvalid) {
		t.Errorf("non-JSON: got %v", err)
	}
}

func TestVersions(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"2026-01-01", "2026-01-11", "2026-01-23", "2026-04-08"} {
		if _, err := ucpschema.New(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ucpschema.New("2025-01-01"); err == nil {
		t.Error("unknown version accepted")
	}
}
