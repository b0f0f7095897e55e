package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
