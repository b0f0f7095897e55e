// Package ucpschema validates a webhook body against the published UCP order schema
// (Draft 2020-12, format assertion on) of its version. The schemas of every supported
// version are embedded, unchanged copies of those published at https://ucp.dev/<version>/schemas/,
// and every $ref resolves locally: validation needs no network.
package ucpschema

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/ucprelay/ucprelay/pkg/ucp"
)

//go:embed schemas
var embedded embed.FS

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("ucpschema: body is not a valid UCP order")

// Validator checks bodies against one version's order schema. Safe for concurrent use.
type Validator struct {
	version ucp.Version
	schema  *jsonschema.Schema
}

var (
	cacheMu sync.Mutex
	cache   = map[ucp.Version]*Validator{}
)

// New returns the validator of a version ("2026-01-01" is read as 2026-01-11), compiled
// from the embedded schemas once per process.
func New(version string) (*Validator, error) {
	v, err := ucp.ParseVersion(version)
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if val, ok := cache[v]; ok {
		return val, nil
	}
	sub, err := fs.Sub(embedded, "schemas/"+string(v))
	if err != nil {
		return nil, fmt.Errorf("ucpschema: %w", err)
	}
	val, err := compile(sub, v)
	if err != nil {
		return nil, err
	}
	cache[v] = val
	return val, nil
}

func compile(fsys fs.FS, v ucp.Version) (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	base := "https://ucp.dev/" + string(v) + "/schemas/"
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return c.AddResource(base+p, doc)
	})
	if err != nil {
		return nil, fmt.Errorf("ucpschema: load %s schemas: %w", v, err)
	}
	s, err := c.Compile(base + "shopping/order.json")
	if err != nil {
		return nil, fmt.Errorf("ucpschema: compile %s order schema: %w", v, err)
	}
	return &Validator{version: v, schema: s}, nil
}

// Version returns the version the validator checks.
func (v *Validator) Version() ucp.Version { return v.version }

// maxErrText bounds the error text, which a sink returns to the sender.
const maxErrText = 600

// Validate checks body. The error wraps [ErrInvalid] and names the failing instance paths.
func (v *Validator) Validate(body []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: not JSON: %w", ErrInvalid, err)
	}
	if err := v.schema.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		msg := err.Error()
		if errors.As(err, &ve) {
			msg = describe(ve)
		}
		if len(msg) > maxErrText {
			msg = msg[:maxErrText] + "…"
		}
		return fmt.Errorf("%w (%s): %s", ErrInvalid, v.version, msg)
	}
	return nil
}

var printer = message.NewPrinter(language.English)

// describe lists the leaf causes as "path: message".
func describe(ve *jsonschema.ValidationError) string {
	var parts []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			parts = append(parts, "/"+strings.Join(e.InstanceLocation, "/")+": "+e.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(parts, "; ")
}
