package docs_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every row of the poison matrix has its row in RELIABILITY.md, and the page names no
// row the matrix does not have.
func TestReliabilityListsEveryPoisonRow(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../internal/relay/poison_test.go")
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("RELIABILITY.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`\{name: "([^"]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(rows) < 20 {
		t.Fatalf("found %d matrix rows in poison_test.go; is it still a table of {name: ...} rows?", len(rows))
	}
	matrix := map[string]bool{}
	for _, r := range rows {
		matrix[r[1]] = true
		if !strings.Contains(string(page), "\n| "+r[1]+" |") {
			t.Errorf("RELIABILITY.md has no row for the poison matrix row %q", r[1])
		}
	}
	section := string(page)
	if i := strings.Index(section, "## The poison matrix"); i >= 0 {
		section = section[i:]
		if j := strings.Index(section[1:], "\n## "); j >= 0 {
			section = section[:j+1]
		}
	}
	for _, m := range regexp.MustCompile(`\n\| ([^|]+) \| [^|]+ \| [^|]+ \| [^|]+ \|`).FindAllStringSubmatch(section, -1) {
		if name := m[1]; name != "row" && !strings.HasPrefix(name, "---") && !matrix[name] {
			t.Errorf("RELIABILITY.md lists %q, which the poison matrix does not test", name)
		}
	}
}
