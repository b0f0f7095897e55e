package deadletter_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/internal/relay"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/ucp/fold"
)

// The packages that define dead-letter reasons, relative to this one, with the list each
// exports and the stage its reasons are all written with ("" when they vary).
var reasonSources = []struct {
	dir   string
	list  func() []string
	stage deadletter.Stage
}{
	{"../../pkg/avrocodec", avrocodec.Reasons, deadletter.StageDecode},
	{"../../pkg/ucp/fold", fold.Reasons, deadletter.StageFold},
	{"../relay", relay.Reasons, ""},
	{"../mapping", mapping.Reasons, deadletter.StageDecode},
}

// definedReasons reads the Go source (tests excluded) of dir and returns every reason it
// defines: the string value of each constant named Reason*, each string literal set as a
// Reason field (`Reason: "x"`, `x.Reason = "x"`), and the reasons of fold's `reasons`
// table (its entries' string literals). A new reason written any of these ways shows up
// here before anyone lists it.
func definedReasons(t *testing.T, dir string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{} // reason -> where
	add := func(n ast.Node, lit ast.Expr, what string) {
		bl, ok := lit.(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			t.Errorf("%s: %s is not a string literal; this test cannot read it", fset.Position(n.Pos()), what)
			return
		}
		v, err := strconv.Unquote(bl.Value)
		if err != nil {
			t.Fatal(err)
		}
		out[v] = fset.Position(n.Pos()).String()
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GenDecl:
				for _, s := range n.Specs {
					vs, ok := s.(*ast.ValueSpec)
					if !ok {
						continue
					}
					for i, id := range vs.Names {
						switch {
						case n.Tok == token.CONST && strings.HasPrefix(id.Name, "Reason") && i < len(vs.Values):
							add(vs, vs.Values[i], "const "+id.Name)
						case n.Tok == token.VAR && id.Name == "reasons" && i < len(vs.Values):
							table, ok := vs.Values[i].(*ast.CompositeLit)
							if !ok {
								t.Fatalf("%s: var reasons is no table", fset.Position(vs.Pos()))
							}
							for _, row := range table.Elts {
								cl, ok := row.(*ast.CompositeLit)
								if !ok || len(cl.Elts) != 2 {
									t.Fatalf("%s: a reasons entry is not {err, reason}", fset.Position(row.Pos()))
								}
								add(row, cl.Elts[1], "the entry's reason")
							}
						}
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Reason" {
					if _, lit := n.Value.(*ast.BasicLit); lit {
						add(n, n.Value, "Reason:")
					}
				}
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Reason" && i < len(n.Rhs) {
						if _, lit := n.Rhs[i].(*ast.BasicLit); lit {
							add(n, n.Rhs[i], ".Reason =")
						}
					}
				}
			}
			return true
		})
	}
	return out
}

// Every reason the code defines is in its package's list, and every listed reason is in
// deadletter's vocabulary or among those never written, and the other way round.
func TestVocabularyCoversEveryReason(t *testing.T) {
	t.Parallel()
	vocab := map[string]deadletter.Reason{}
	for _, r := range deadletter.Reasons() {
		vocab[r.Name] = r
	}
	never := deadletter.NotDeadLettered()
	defined := map[string]bool{}
	for _, src := range reasonSources {
		inSource := definedReasons(t, src.dir)
		listed := src.list()
		for r, where := range inSource {
			if !slices.Contains(listed, r) {
				t.Errorf("%s: reason %q is not in its package's Reasons()", where, r)
			}
		}
		for _, r := range listed {
			if _, ok := inSource[r]; !ok {
				t.Errorf("%s: Reasons() lists %q, which its source does not define", src.dir, r)
			}
			defined[r] = true
			v, inVocab := vocab[r]
			_, isNever := never[r]
			switch {
			case inVocab && isNever:
				t.Errorf("reason %q is both in deadletter.Reasons() and in NotDeadLettered()", r)
			case !inVocab && !isNever:
				t.Errorf("reason %q (%s) is neither in deadletter.Reasons() nor in NotDeadLettered(): document it", r, src.dir)
			case inVocab && src.stage != "" && !slices.Contains(v.Stages, src.stage):
				t.Errorf("reason %q of %s is documented for stages %v, not %s", r, src.dir, v.Stages, src.stage)
			}
		}
	}
	for _, r := range slices.Sorted(maps.Keys(vocab)) {
		if !defined[r] {
			t.Errorf("deadletter.Reasons() documents %q, which no package defines", r)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(never)) {
		if !defined[r] {
			t.Errorf("NotDeadLettered() names %q, which no package defines", r)
		}
	}
}

func TestVocabularyEntries(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[string]bool{}
	for _, r := range deadletter.Reasons() {
		if seen[r.Name] || !snake.MatchString(r.Name) {
			t.Errorf("reason %q: repeated or not snake_case", r.Name)
		}
		seen[r.Name] = true
		if len(r.Stages) == 0 || r.Meaning == "" || r.Action == "" {
			t.Errorf("reason %q: stage, meaning and action are all needed: %+v", r.Name, r)
		}
		for _, s := range r.Stages {
			if s != deadletter.StageDecode && s != deadletter.StageFold && s != deadletter.StageDeliver {
				t.Errorf("reason %q: unknown stage %q", r.Name, s)
			}
		}
	}
	for r, why := range deadletter.NotDeadLettered() {
		if why == "" {
			t.Errorf("NotDeadLettered()[%q] does not say why", r)
		}
	}
}

// README.md's "Dead-letter records" table has a row for each reason of the vocabulary,
// with its stages, and no other; the reasons never written are named in the section
// but have no row.
func TestReadmeTableMatchesVocabulary(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n## Dead-letter records\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Dead-letter records" section`)
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([a-z, ]+) \\| [^|]+ \\| [^|]+ \\|$")
	rows := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		if _, dup := rows[m[1]]; dup {
			t.Errorf("README.md: two rows for %q", m[1])
		}
		rows[m[1]] = m[2]
	}
	if !strings.Contains(section, "| reason | stage | meaning | what to do |") {
		t.Error("README.md: the reasons table lacks its header row (reason | stage | meaning | what to do)")
	}
	for _, r := range deadletter.Reasons() {
		stages := make([]string, len(r.Stages))
		for i, s := range r.Stages {
			stages[i] = string(s)
		}
		got, ok := rows[r.Name]
		switch {
		case !ok:
			t.Errorf("README.md: the dead-letter table has no row for %q", r.Name)
		case got != strings.Join(stages, ", "):
			t.Errorf("README.md: %q has stage %q, the vocabulary says %q", r.Name, got, strings.Join(stages, ", "))
		}
		delete(rows, r.Name)
	}
	for name := range rows {
		t.Errorf("README.md: row %q is not in deadletter.Reasons()", name)
	}
	for r := range deadletter.NotDeadLettered() {
		if !strings.Contains(section, "`"+r+"`") {
			t.Errorf("README.md: the section does not say that %q is never written", r)
		}
	}
}
