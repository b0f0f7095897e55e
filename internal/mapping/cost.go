package mapping

import (
	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types/ref"
)

// costLimit bounds the work of one expression on one record, so that a rule cannot stall
// a partition (a comprehension over a huge list fails instead).
const costLimit = 1_000_000

// sizeBuckets are the input sizes a program's worst-case cost is estimated for.
var sizeBuckets = []uint64{16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}

// program is one expression, run under the cost limit. Tracking the cost of every step
// costs about a fifth of an evaluation, so a record whose inputs are short enough that the
// expression's worst case (CEL's static estimate, each list, map and string of the
// record, its key and headers at most that long) stays within the limit runs untracked:
// the limit holds either way, and deterministically, by the record's own sizes.
type program struct {
	tracked cel.Program
	fast    cel.Program // nil: no bucket stays within the limit
	// fastUpTo is the largest input size whose worst case stays within the limit.
	fastUpTo uint64
}

func newProgram(env *cel.Env, ast *cel.Ast) (*program, error) {
	tracked, err := env.Program(ast, cel.CostLimit(costLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	p := &program{tracked: tracked}
	for _, n := range sizeBuckets {
		est, err := env.EstimateCost(ast, inputSizes(n))
		if err != nil || est.Max > costLimit {
			break
		}
		p.fastUpTo = n
	}
	if p.fastUpTo > 0 {
		if p.fast, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// eval runs the program on a record whose inputs are at most size long (inputSize).
func (p *program) eval(vars any, size uint64) (ref.Val, error) {
	if p.fast != nil && size <= p.fastUpTo {
		out, _, err := p.fast.Eval(vars)
		return out, err
	}
	out, _, err := p.tracked.Eval(vars)
	return out, err
}

// inputSizes bounds every list, map and string read from the variables (a path from one
// of them) by n; what expressions compute, CEL's estimate sizes itself, unbounded when
// it cannot tell.
type inputSizes uint64

func (inputSizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

func (n inputSizes) EstimateSize(e cost.AstNode) *cost.SizeEstimate {
	if e.Path() == nil {
		return nil
	}
	return &cost.SizeEstimate{Min: 0, Max: uint64(n)}
}

// inputSize is the length of the longest list, map or string a rule can read of the
// record: its value at any depth, key, headers, record name and topic.
func inputSize(in Input) uint64 {
	n := max(len(in.Key), len(in.Topic), len(in.Record.Name), len(in.Headers))
	for k, v := range in.Headers {
		n = max(n, len(k), len(v))
	}
	return uint64(max(n, longest(in.Record.Value)))
}

func longest(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []byte:
		return len(x)
	case []any:
		n := len(x)
		for _, e := range x {
			n = max(n, longest(e))
		}
		return n
	case map[string]any:
		n := len(x)
		for k, e := range x {
			n = max(n, len(k), longest(e))
		}
		return n
	}
	return 0
}
