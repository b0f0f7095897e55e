package testshared_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/internal/testshared"
)

// The module's copy of the UCP examples is found from any package's directory.
func TestDirFindsTheModulesCopy(t *testing.T) {
	t.Parallel()
	dir := testshared.Dir(t, "ucp-examples")
	if filepath.Base(filepath.Dir(dir)) != "testdata" {
		t.Fatalf("Dir = %s, want <module>/testdata/ucp-examples", dir)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "..", "go.mod")); err != nil {
		t.Fatalf("testdata is not at the module root: %v", err)
	}
	for _, name := range []string{"README.md", "order-created.json", "partially-shipped.json", "fully-delivered.json",
		"partially-cancelled.json", "fully-cancelled.json", "refunded-returned.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("the copy lacks %s: %v", name, err)
		}
	}
}

type recorder struct{ failed []string }

func (*recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

// A folder the module does not hold fails the test (it is never skipped).
func TestDirFailsOnAMissingFolder(t *testing.T) {
	t.Parallel()
	var r recorder
	testshared.Dir(&r, "no-such-folder")
	if len(r.failed) != 1 || !strings.Contains(r.failed[0], filepath.Join("testdata", "no-such-folder")) {
		t.Fatalf("failures %q, want one naming testdata/no-such-folder", r.failed)
	}
}
