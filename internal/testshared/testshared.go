// Package testshared locates, for tests, the module's own copies of the project's shared
// reference files: testdata/<sub> at the module root (testdata/ucp-examples holds the
// UCP example bodies and their README). The UCP schemas need no copy here: they are
// embedded in pkg/ucpschema (ucpschema.New). Tests never skip for want of these files: a
// missing copy fails the test. `make shared-check` compares the copies with ../shared
// byte for byte. Only test code imports it.
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
}

// Dir returns testdata/<sub> at the module root, e.g. Dir(t, "ucp-examples"). It fails
// the test when the folder is missing.
func Dir(t TB, sub string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("testshared: %v", err)
	}
	dir := wd
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testshared: no go.mod above %s", wd)
			return ""
		}
		dir = parent
	}
	p := filepath.Join(dir, "testdata", sub)
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		t.Fatalf("testshared: %s is not a folder of the module's test data (%v)", p, err)
	}
	return p
}

var _ TB = (*testing.T)(nil)
