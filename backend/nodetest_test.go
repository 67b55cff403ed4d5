package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"toolkit/onnx"
)

// nodeTestDir holds the ONNX backend node tests of Debian's libonnx-testdata.
const nodeTestDir = "/usr/share/libonnx-testdata/data/node"

// unclaimedPrefixes lists families of node tests the backend does not claim.
var unclaimedPrefixes = map[string]string{
	"test_cast_":     "casts between float16, double, bfloat16 and string: the backend computes in float32 and supports Cast on shape arithmetic",
	"test_castlike_": "casts between float16, double, bfloat16 and string: the backend computes in float32 and supports Cast on shape arithmetic",
}

func isUnclaimed(name string) bool {
	if _, ok := unclaimed[name]; ok {
		return true
	}
	for prefix := range unclaimedPrefixes {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// unclaimed lists the node tests of supported op types that the backend does not claim,
// with the reason. Every other test whose ops are all supported must pass.
var unclaimed = map[string]string{
	"test_averagepool_1d_default":                     "1-D pooling: only 2-D spatial pooling is supported",
	"test_averagepool_3d_default":                     "3-D pooling: only 2-D spatial pooling is supported",
	"test_maxpool_1d_default":                         "1-D pooling: only 2-D spatial pooling is supported",
	"test_maxpool_3d_default":                         "3-D pooling: only 2-D spatial pooling is supported",
	"test_maxpool_2d_uint8":                           "integer data: the backend computes in float",
	"test_maxpool_with_argmax_2d_precomputed_pads":    "the Indices output of MaxPool is not supported",
	"test_maxpool_with_argmax_2d_precomputed_strides": "the Indices output of MaxPool is not supported",
	"test_add_uint8":                                  "integer data: the backend computes in float",
	"test_sub_uint8":                                  "integer data: the backend computes in float",
	"test_mul_uint8":                                  "integer data: the backend computes in float",
	"test_div_uint8":                                  "integer data: the backend computes in float",
	"test_dropout_default_mask":                       "the boolean mask output of Dropout is not supported",
	"test_dropout_default_mask_ratio":                 "the boolean mask output of Dropout is not supported",
	"test_dropout_random_old":                         "random training-mode output: not comparable",
	"test_training_dropout":                           "random training-mode output: compared statistically elsewhere",
	"test_training_dropout_default":                   "random training-mode output: compared statistically elsewhere",
	"test_training_dropout_mask":                      "the boolean mask output of Dropout is not supported",
	"test_training_dropout_default_mask":              "the boolean mask output of Dropout is not supported",
	"test_training_dropout_zero_ratio":                "the boolean mask output of Dropout is not supported",
	"test_training_dropout_zero_ratio_mask":           "the boolean mask output of Dropout is not supported",
	"test_dropout_default_ratio":                      "the ratio is a run-time input: the backend needs a constant ratio",
	"test_reshape_allowzero_reordered":                "zero-sized tensors are not supported",
	"test_constant_pad":                               "the constant value is a run-time input: the backend needs a constant",
	"test_edge_pad":                                   "integer data: the backend computes in float",
	"test_reflect_pad":                                "integer data: the backend computes in float",
	"test_identity_opt":                               "optional types are not supported",
	"test_identity_sequence":                          "sequence types are not supported",
	"test_gemm_default_single_elem_vector_bias":       "",
}

type nodeTest struct {
	name, dir string
	model     *onnx.Model
}

func loadNodeTests(t *testing.T) (claimed []nodeTest, unsupported map[string][]string) {
	t.Helper()
	if _, err := os.Stat(nodeTestDir); err != nil {
		t.Fatalf("the ONNX node tests are missing (%v): install Debian's libonnx-testdata (.ci/run does)", err)
	}
	dirs, err := filepath.Glob(filepath.Join(nodeTestDir, "test_*"))
	if err != nil {
		t.Fatal(err)
	}
	unsupported = map[string][]string{}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		m, err := onnx.Read(filepath.Join(dir, "model.onnx"))
		if err != nil {
			unsupported["(unreadable)"] = append(unsupported["(unreadable)"], name)
			continue
		}
		supported := true
		for _, n := range m.Graph.Nodes {
			if !Supports(n.OpType) || (n.Domain != "" && n.Domain != "ai.onnx") {
				supported = false
				unsupported[n.OpType] = append(unsupported[n.OpType], name)
				break
			}
		}
		if !supported {
			continue
		}
		if isUnclaimed(name) {
			continue
		}
		claimed = append(claimed, nodeTest{name: name, dir: dir, model: m})
	}
	return claimed, unsupported
}

// prepared is a node test's model with its integer inputs turned into initializers,
// and its float inputs and expected outputs.
type prepared struct {
	model   *onnx.Model
	inputs  map[string]*onnx.Tensor
	outputs []*onnx.Tensor
}

func prepare(nt nodeTest, set string) (*prepared, error) {
	m := *nt.model
	g := *m.Graph
	m.Graph = &g
	g.Initializers = append([]*onnx.Tensor(nil), g.Initializers...)
	p := &prepared{model: &m, inputs: map[string]*onnx.Tensor{}}
	converted := map[string]bool{}
	for i, vi := range g.RealInputs() {
		tensor, err := onnx.ReadTensor(filepath.Join(set, fmt.Sprintf("input_%d.pb", i)))
		if err != nil {
			return nil, err
		}
		tensor.Name = vi.Name
		if tensor.DataType != onnx.Float {
			g.Initializers = append(g.Initializers, tensor)
			converted[vi.Name] = true
			continue
		}
		p.inputs[vi.Name] = tensor
	}
	var inputs []*onnx.ValueInfo
	for _, vi := range g.Inputs {
		if !converted[vi.Name] {
			inputs = append(inputs, vi)
		}
	}
	g.Inputs = inputs
	for j := range g.Outputs {
		tensor, err := onnx.ReadTensor(filepath.Join(set, fmt.Sprintf("output_%d.pb", j)))
		if err != nil {
			return nil, err
		}
		p.outputs = append(p.outputs, tensor)
	}
	return p, nil
}

func (p *prepared) options() Options {
	opts := Options{InputShapes: map[string][]int{}}
	for name, t := range p.inputs {
		opts.InputShapes[name] = intsOf(t.Dims)
	}
	return opts
}

func (p *prepared) orderedInputs(m *Model) [][]float32 {
	var ins [][]float32
	for _, in := range m.Inputs() {
		ins = append(ins, p.inputs[in.Name].Floats)
	}
	return ins
}

// TestNodeTests runs every ONNX backend node test whose ops the backend claims and
// compares the outputs with the test's, at the ONNX runner's tolerance (rtol 1e-3,
// atol 1e-7).
func TestNodeTests(t *testing.T) {
	claimed, unsupported := loadNodeTests(t)
	passed := 0
	for _, nt := range claimed {
		t.Run(nt.name, func(t *testing.T) {
			sets, _ := filepath.Glob(filepath.Join(nt.dir, "test_data_set_*"))
			if len(sets) == 0 {
				t.Fatal("no test data sets")
			}
			for _, set := range sets {
				p, err := prepare(nt, set)
				if err != nil {
					t.Fatal(err)
				}
				m, err := NewModel(p.model)
				if err != nil {
					t.Fatal(err)
				}
				prog, err := newProgram(m, p.options(), m.params)
				if err != nil {
					t.Fatal(err)
				}
				if err := prog.run(p.orderedInputs(m), nil); err != nil {
					t.Fatal(err)
				}
				for j, vi := range p.model.Graph.Outputs {
					want := p.outputs[j]
					if c, ok := prog.consts[vi.Name]; ok {
						if fmt.Sprint(c.Ints) != fmt.Sprint(want.Ints) || fmt.Sprint(c.Floats) != fmt.Sprint(want.Floats) {
							t.Errorf("output %q: got %v%v, want %v%v", vi.Name, c.Ints, c.Floats, want.Ints, want.Floats)
						}
						continue
					}
					idx := indexOf(prog.outNames, vi.Name)
					if idx < 0 {
						t.Fatalf("output %q not computed", vi.Name)
					}
					if got := []int(prog.outputs[idx].Shape()); fmt.Sprint(got) != fmt.Sprint(intsOf(want.Dims)) {
						t.Errorf("output %q: shape %v, want %v", vi.Name, got, want.Dims)
						continue
					}
					if err := allClose(prog.output(idx), want.Floats, 1e-3, 1e-7); err != nil {
						t.Errorf("output %q: %v", vi.Name, err)
					}
				}
			}
		})
		if !t.Failed() {
			passed++
		}
	}
	var ops []string
	for op := range unsupported {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	t.Logf("node tests: %d claimed, %d unclaimed by list; tests of unsupported ops: %d op types", len(claimed), len(unclaimed), len(ops))
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func allClose(got, want []float32, rtol, atol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d values, want %d", len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) && math.IsNaN(g) || g == w {
			continue
		}
		excess := math.Abs(g-w) - (atol + rtol*math.Abs(w))
		if excess > worst || math.IsNaN(excess) {
			worst, at = excess, i
		}
	}
	if at >= 0 {
		return fmt.Errorf("value %d: got %v, want %v (tolerance %g + %g*|want|)", at, got[at], want[at], atol, rtol)
	}
	return nil
}

// TestNodeTestGradients checks, in float64, the gradient of sum(output * R) with
// respect to every float input of every claimed node test against central finite
// differences.
func TestNodeTestGradients(t *testing.T) {
	claimed, _ := loadNodeTests(t)
	for _, nt := range claimed {
		t.Run(nt.name, func(t *testing.T) {
			p, err := prepare(nt, filepath.Join(nt.dir, "test_data_set_0"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewModel(p.model)
			if err != nil {
				t.Fatal(err)
			}
			checkGradients(t, m, p)
		})
	}
}

func checkGradients(t *testing.T, m *Model, p *prepared) {
	params := map[string][]float64{}
	for name, v := range m.params {
		params[name] = to64(v)
	}
	opts := p.options()
	opts.Loss = WeightedSum
	opts.InputGrads = true
	opts.Trainable = m.TrainableNames()
	prog, err := newProgram(m, opts, params)
	if err != nil {
		if strings.Contains(err.Error(), "no float output") {
			t.Skip("no float output to differentiate")
		}
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	target := make([]float64, numElements([]int(prog.outputs[0].Shape())))
	for i := range target {
		target[i] = rng.Float64()*2 - 1
	}
	var inputs [][]float64
	for _, in := range m.Inputs() {
		inputs = append(inputs, to64(p.inputs[in.Name].Floats))
	}
	if err := prog.run(inputs, target); err != nil {
		t.Fatal(err)
	}
	lossAt := func() float64 {
		if err := prog.run(inputs, target); err != nil {
			t.Fatal(err)
		}
		return prog.lossValue()
	}
	checked := 0
	check := func(what string, x []float64, analytic []float64) {
		analytic = append([]float64(nil), analytic...)
		center := lossAt()
		for _, i := range sampleIndices(len(x), 24, rng) {
			const h = 1e-6
			old := x[i]
			x[i] = old + h
			up := lossAt()
			x[i] = old - h
			down := lossAt()
			x[i] = old
			// A kink (Relu at 0, a MaxPool tie) shows as one-sided slopes that differ
			// by much more than the curvature of a smooth function allows: there the
			// derivative is not defined and nothing is checked.
			if math.Abs((up-center)-(center-down)) > 1e-3*h*math.Max(1, math.Abs(up-down)/h) {
				continue
			}
			numeric := (up - down) / (2 * h)
			checked++
			if d := math.Abs(numeric - analytic[i]); d > 1e-5*math.Max(1, math.Abs(numeric)) {
				t.Errorf("%s[%d]: analytic %.9g, finite difference %.9g", what, i, analytic[i], numeric)
			}
		}
	}
	grads := map[string][]float64{}
	for _, name := range prog.gradName {
		grads[name] = prog.grad(name)
	}
	for i, in := range m.Inputs() {
		if g, ok := grads[in.Name]; ok {
			check("input "+in.Name, inputs[i], g)
		}
	}
	for _, name := range opts.Trainable {
		g, ok := grads[name]
		if !ok {
			t.Errorf("parameter %s: no gradient computed", name)
			continue
		}
		check("parameter "+name, params[name], g)
	}
	if checked == 0 {
		t.Errorf("no gradient element was checked")
	}
}

func sampleIndices(n, k int, rng *rand.Rand) []int {
	if n <= k {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	return rng.Perm(n)[:k]
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
