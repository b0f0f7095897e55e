package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ucprelay/ucprelay/internal/config"
)

// Every scalar key has a description, a flag on the commands that use it (and on no
// other), and a place in docs/config.example.yaml.
func TestEveryKeyHasAFlag(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd(nil, nil, nil)
	runCmd, _, err := root.Find([]string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	replay, _, err := root.Find([]string{"dlq", "replay"})
	if err != nil {
		t.Fatal(err)
	}
	keys := config.Keys()
	if len(keys) < 40 {
		t.Fatalf("%d scalar keys", len(keys))
	}
	for _, k := range keys {
		if k.Help == "" {
			t.Errorf("%s has no description", k.Name)
		}
		if runCmd.Flags().Lookup(k.Name) == nil {
			t.Errorf("run has no flag --%s", k.Name)
		}
		leaf := k.Name[strings.LastIndexByte(k.Name, '.')+1:]
		if !regexp.MustCompile(`(?m)^[ #]*` + regexp.QuoteMeta(leaf) + `:`).Match(example) {
			t.Errorf("docs/config.example.yaml does not describe %s", k.Name)
		}
		if got := replay.Flags().Lookup(k.Name) != nil; got == runOnly(k.Name) {
			t.Errorf("dlq replay has a flag --%s: %v, want %v", k.Name, got, !runOnly(k.Name))
		}
	}
}

// A command refuses a flag of a key it does not use.
func TestCommandsRefuseFlagsTheyIgnore(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"dlq", "replay", "--telemetry.listen=:9090"},
		{"state", "inspect", "ord_1", "--kafka.transactional_id=x"},
		{"topics", "create", "--delivery.max_attempts=3"},
	} {
		out, err := run(t, nil, args...)
		if err == nil || !strings.Contains(err.Error()+out, "unknown flag") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}

// Every key, the ones under partners.<id> and in the lists included, is described in
// docs/config.example.yaml (set or in a comment) and named in the README.
func TestEveryKeyIsDocumented(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, prefix string) {
		for ty.Kind() == reflect.Map || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Pointer {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || ty == reflect.TypeFor[time.Duration]() {
			return
		}
		for i := range ty.NumField() {
			f := ty.Field(i)
			tag := f.Tag.Get("koanf")
			if tag == "" || !f.IsExported() {
				continue
			}
			names = append(names, prefix+tag)
			walk(f.Type, prefix+tag+".")
		}
	}
	walk(reflect.TypeFor[config.Config](), "")
	if len(names) < 80 {
		t.Fatalf("%d keys", len(names))
	}
	for _, name := range names {
		leaf := name[strings.LastIndexByte(name, '.')+1:]
		if !regexp.MustCompile(`(?m)^[ #\-]*` + regexp.QuoteMeta(leaf) + `:`).Match(example) {
			t.Errorf("docs/config.example.yaml does not describe %s", name)
		}
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(leaf) + `\b`).Match(readme) {
			t.Errorf("the README does not name %s", name)
		}
	}
}
