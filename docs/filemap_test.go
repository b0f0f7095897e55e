package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every source file (Go outside tests, shell scripts, Avro schemas) is named in the file
// map of DESIGN.md: in the row of the folder that holds it, or of a folder above it,
// written relative to that folder.
func TestFileMapNamesEveryFile(t *testing.T) {
	t.Parallel()
	design, err := os.ReadFile("DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // folder (with a trailing slash) -> its row
	for _, line := range strings.Split(string(design), "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 && strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = line
		}
	}
	if len(rows) < 10 {
		t.Fatalf("DESIGN.md: found %d file map rows; is the map still a table of `folder/` rows?", len(rows))
	}
	root := ".."
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case rel != "." && strings.HasPrefix(d.Name(), "."), d.Name() == "testdata", rel == "pkg/ucpschema/schemas", rel == "helm/ucprelay", rel == "bin":
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(rel)
		if ext != ".go" && ext != ".sh" && ext != ".avsc" || strings.HasSuffix(rel, "_test.go") || !strings.Contains(rel, "/") {
			return nil
		}
		n++
		for dir := filepath.Dir(rel); dir != "."; dir = filepath.Dir(dir) {
			if row, ok := rows[dir+"/"]; ok && strings.Contains(row, "`"+strings.TrimPrefix(rel, dir+"/")+"`") {
				return nil
			}
		}
		t.Errorf("DESIGN.md's file map does not name %s", rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Errorf("checked only %d files: is the walk still rooted at the repository?", n)
	}
}
