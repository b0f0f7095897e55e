// Package testshared locates the project's shared reference files for tests: the
// published UCP JSON Schemas and example bodies in ../shared beside the checkout. With
// CI=true a missing folder fails the test; elsewhere the test is skipped with the reason.
// Only test code imports it.
package testshared

import (
	"os"
	"path/filepath"
	"testing"
)

// TB is the part of testing.TB the helper needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Dir returns ../shared/<sub> relative to the module root, e.g. Dir(t, "ucp-schemas").
func Dir(t TB, sub string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testshared: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testshared: no go.mod above %s", dir)
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", sub)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testshared: %s missing in CI: %v", p, err)
		}
		t.Skipf("testshared: %s missing (it sits beside the checkout): %v", p, err)
	}
	return p
}

var _ TB = (*testing.T)(nil)
