package mapping

import (
	"testing"

	"cel.dev/cel-go/cel"

	"github.com/ucprelay/ucprelay/pkg/avrocodec"
)

// The estimate that lets a record run untracked is an upper bound: at the largest size
// allowed untracked, the tracked evaluation's actual cost is within it, and within the
// limit.
func TestUntrackedOnlyWithinTheLimit(t *testing.T) {
	t.Parallel()
	env, err := newEnv(cel.DynType)
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{
		`value.items.map(i, value.items.map(j, i.n + j.n)).size()`,
		`value.items.map(i, {"id": i.s + value.id, "n": i.n * 2}).filter(x, x.n > 2).size()`,
		`value.id.replace("a", "bb") + value.items.map(i, i.s).join(",")`,
	} {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatal(iss.Err())
		}
		p, err := newProgram(env, ast)
		if err != nil {
			t.Fatal(err)
		}
		if p.fast == nil {
			t.Errorf("%s: never untracked", expr)
			continue
		}
		n := int(p.fastUpTo)
		t.Logf("%s: untracked up to %d", expr, n)
		items := make([]any, n)
		long := string(make([]byte, n))
		for i := range items {
			items[i] = map[string]any{"n": int64(i), "s": long}
		}
		vars := map[string]any{"value": map[string]any{"id": long, "items": items}}
		in := Input{Record: avrocodec.Generic{Value: vars["value"]}}
		if got := inputSize(in); got != uint64(n) {
			t.Fatalf("input size %d, want %d", got, n)
		}
		_, det, err := p.tracked.Eval(vars)
		if err != nil {
			t.Fatalf("%s at %d: %v", expr, n, err)
		}
		est, _ := env.EstimateCost(ast, inputSizes(n))
		if c := det.ActualCost(); c == nil || *c > est.Max || *c > costLimit {
			t.Errorf("%s at %d: actual cost %v, estimate %d, limit %d", expr, n, c, est.Max, costLimit)
		}
	}
}
