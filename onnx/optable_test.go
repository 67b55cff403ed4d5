package onnx

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// specSchemas prints, for each operator named on the command line, the since_version
// of each of its ai.onnx definitions and the differentiation category of each input of
// its newest definition up to opset 17, as onnx.defs (the ONNX specification compiled
// into the onnx package) records them. Operators onnx 1.12 does not define are left out.
const specSchemas = `
import json, sys
import onnx.defs as d
hist = {}
for s in d.get_all_schemas_with_history():
    if s.domain == '':
        hist.setdefault(s.name, set()).add(s.since_version)
out = {}
for op in sys.argv[1:]:
    if op not in hist:
        continue
    since = sorted(v for v in hist[op] if v <= 17)
    if not since:
        out[op] = {'since': sorted(hist[op]), 'inputs': [], 'variadic': False}
        continue
    s = d.get_schema(op, 17)
    out[op] = {'since': since,
               'inputs': [str(i.differentiationCategory).split('.')[-1] for i in s.inputs],
               'variadic': bool(s.inputs) and str(s.inputs[-1].option).endswith('Variadic')}
print(json.dumps(out))
`

// notTrainable lists the inputs the specification calls differentiable that the op
// table does not, with the reason: BatchNormalization's running statistics are
// statistics of the data, not parameters a gradient trains.
var notTrainable = map[string][]int{"BatchNormalization": {3, 4}}

// TestSchemasAgainstSpec checks every schema of the op table against the ONNX
// specification: its opset history (the opsets at which the definition changed, up to
// 17) and, input by input, whether a gradient flows through it where the
// specification says whether one does.
func TestSchemasAgainstSpec(t *testing.T) {
	needPython(t, "onnx")
	ops := KnownOps()
	var spec map[string]struct {
		Since    []int64  `json:"since"`
		Inputs   []string `json:"inputs"`
		Variadic bool     `json:"variadic"`
	}
	if err := json.Unmarshal(runPython(t, specSchemas, ops...), &spec); err != nil {
		t.Fatal(err)
	}
	var absent []string
	for _, op := range ops {
		s := Schema(op)
		sp, ok := spec[op]
		if !ok {
			absent = append(absent, op)
			if s.since[0] <= 17 {
				t.Errorf("%s: onnx 1.12 does not define it, the op table dates it from opset %d", op, s.since[0])
			}
			continue
		}
		var mine []int64
		for _, v := range s.since {
			if v <= 17 {
				mine = append(mine, v)
			}
		}
		if !slices.Equal(mine, sp.Since) {
			t.Errorf("%s: opset history %v, the specification's %v", op, mine, sp.Since)
		}
		for i, cat := range sp.Inputs {
			idx := []int{i}
			if sp.Variadic && i == len(sp.Inputs)-1 {
				idx = []int{i, i + 1, i + 5} // the variadic tail
			}
			for _, j := range idx {
				got := s.IsDifferentiable(j)
				switch {
				case cat == "Differentiable" && !got && !slices.Contains(notTrainable[op], j):
					t.Errorf("%s input %d: the specification says differentiable, the op table does not", op, j)
				case cat == "NonDifferentiable" && got:
					t.Errorf("%s input %d: the specification says not differentiable, the op table says it is", op, j)
				case cat == "Differentiable" && got && slices.Contains(notTrainable[op], j):
					t.Errorf("%s input %d: listed in notTrainable, but the op table makes it differentiable", op, j)
				}
			}
		}
	}
	t.Logf("%d schemas checked; not in onnx 1.12 (newer than opset 17): %s", len(ops)-len(absent), strings.Join(absent, ", "))
}
