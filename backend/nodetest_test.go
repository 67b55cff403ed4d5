package backend

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"toolkit/internal/testref"
	"toolkit/onnx"
	"toolkit/onnx/onnxpb"
)

// nodeTestDir holds the ONNX backend node tests of Debian's libonnx-testdata.
const nodeTestDir = "/usr/share/libonnx-testdata/data/node"

// The node tests the backend claims, and those of its ops it does not, are two committed
// lists (see testdata/nodetests/README.md). Every node test whose ops the backend supports
// is on exactly one of them: a claimed test must pass, an excluded one must still fail
// (it is run, and one that passes must move to the claimed list), and a test on neither
// list fails the suite, so that support cannot shrink or grow without the lists saying so.
const (
	claimedFile  = "testdata/nodetests/claimed.txt"
	excludedFile = "testdata/nodetests/excluded.txt"
)

// nodeTestLists is the content of the two lists: the claimed names in file order, and
// the reason for each excluded name.
type nodeTestLists struct {
	claimed  []string
	excluded map[string]string
}

// readNodeTestLists reads the lists. Blank lines and lines starting with '#' are
// skipped; a claimed line is a test name, an excluded line a name, then the reason.
func readNodeTestLists(t *testing.T) nodeTestLists {
	t.Helper()
	lists := nodeTestLists{excluded: map[string]string{}}
	where := map[string]string{}
	note := func(name, at string) {
		if prev, dup := where[name]; dup {
			t.Errorf("%s: %s is already listed at %s", at, name, prev)
		}
		where[name] = at
	}
	for _, file := range []string{claimedFile, excludedFile} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			at := fmt.Sprintf("%s:%d", file, i+1)
			name, reason := line, ""
			if i := strings.IndexAny(line, " \t"); i >= 0 {
				name, reason = line[:i], strings.TrimSpace(line[i:])
			}
			if !strings.HasPrefix(name, "test_") {
				t.Errorf("%s: %q is not a node test name (test_...)", at, name)
				continue
			}
			note(name, at)
			if file == claimedFile {
				if reason != "" {
					t.Errorf("%s: a claimed line holds only the test name, found %q after it", at, reason)
				}
				lists.claimed = append(lists.claimed, name)
				continue
			}
			if reason == "" {
				t.Errorf("%s: excluded test %s has no reason", at, name)
			}
			lists.excluded[name] = reason
		}
	}
	return lists
}

type nodeTest struct {
	name, dir string
	// ops are the op types of the graph's nodes (domain-qualified outside ai.onnx),
	// read from the protobuf so that they are known for models onnx.Read rejects.
	ops []string
	// model is the model as onnx.Read gives it, nil when it rejects the file (readErr).
	model   *onnx.Model
	readErr error
}

// supported reports whether the backend supports every op of the test's graph, and
// names the first it does not.
func (nt *nodeTest) supported() (bool, string) {
	for _, op := range nt.ops {
		if !Supports(op) {
			return false, op
		}
	}
	return true, ""
}

// loadNodeTests reads every node test in nodeTestDir, by name.
func loadNodeTests(t *testing.T) map[string]*nodeTest {
	t.Helper()
	if _, err := os.Stat(nodeTestDir); err != nil {
		testref.Missing(t, "the ONNX node tests are missing (%v): install Debian's libonnx-testdata (.ci/run does)", err)
	}
	dirs, err := filepath.Glob(filepath.Join(nodeTestDir, "test_*"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]*nodeTest{}
	for _, dir := range dirs {
		path := filepath.Join(dir, "model.onnx")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var mp onnxpb.ModelProto
		if err := mp.Unmarshal(data); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		nt := &nodeTest{name: filepath.Base(dir), dir: dir}
		for _, n := range mp.GetGraph().GetNode() {
			op := n.GetOpType()
			if d := n.GetDomain(); d != "" && d != "ai.onnx" {
				op = d + "." + op
			}
			nt.ops = append(nt.ops, op)
		}
		nt.model, nt.readErr = onnx.Read(path)
		tests[nt.name] = nt
	}
	return tests
}

// claimedNodeTests returns the claimed tests in list order, failing t for each that is
// missing from the test data or uses an op the backend does not support.
func claimedNodeTests(t *testing.T, tests map[string]*nodeTest, lists nodeTestLists) []*nodeTest {
	t.Helper()
	var claimed []*nodeTest
	for _, name := range lists.claimed {
		nt, ok := tests[name]
		if !ok {
			t.Errorf("claimed node test %s is not in %s (libonnx-testdata changed?)", name, nodeTestDir)
			continue
		}
		if ok, op := nt.supported(); !ok {
			t.Errorf("claimed node test %s uses op %s, which the backend does not support", name, op)
			continue
		}
		claimed = append(claimed, nt)
	}
	return claimed
}

// prepared is a node test's model with its integer inputs turned into initializers,
// and its float inputs and expected outputs.
type prepared struct {
	model   *onnx.Model
	inputs  map[string]*onnx.Tensor
	outputs []*onnx.Tensor
}

func prepare(nt *nodeTest, set string) (*prepared, error) {
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

// TestNodeTests runs every claimed ONNX backend node test and compares the outputs with
// the test's, at the ONNX runner's tolerance (rtol 1e-3, atol 1e-7). It also runs every
// excluded test, which must still fail, and fails for any test of supported ops that is
// on neither list.
func TestNodeTests(t *testing.T) {
	lists := readNodeTestLists(t)
	tests := loadNodeTests(t)
	claimed := claimedNodeTests(t, tests, lists)
	for _, nt := range claimed {
		t.Run(nt.name, func(t *testing.T) {
			if err := runNodeTest(nt); err != nil {
				t.Error(err)
			}
		})
	}

	excluded := make([]string, 0, len(lists.excluded))
	for name := range lists.excluded {
		excluded = append(excluded, name)
	}
	sort.Strings(excluded)
	for _, name := range excluded {
		nt, ok := tests[name]
		if !ok {
			t.Errorf("excluded node test %s is not in %s: remove it from %s", name, nodeTestDir, excludedFile)
			continue
		}
		if ok, op := nt.supported(); !ok {
			t.Errorf("excluded node test %s uses op %s, which the backend does not support: "+
				"only tests of supported ops are listed; remove it from %s", name, op, excludedFile)
			continue
		}
		if err := runNodeTest(nt); err == nil {
			t.Errorf("excluded node test %s (%s) passes now: move it to %s", name, lists.excluded[name], claimedFile)
		}
	}

	names := make([]string, 0, len(tests))
	for name := range tests {
		names = append(names, name)
	}
	sort.Strings(names)
	unsupported := 0
	for _, name := range names {
		nt := tests[name]
		if ok, _ := nt.supported(); !ok {
			unsupported++
			continue
		}
		if _, ok := lists.excluded[name]; ok || slices.Contains(lists.claimed, name) {
			continue
		}
		status := "passes"
		if err := runNodeTest(nt); err != nil {
			status = "fails: " + err.Error()
		}
		t.Errorf("node test %s uses only supported ops (%s) and is on neither list; it %s. "+
			"Add it to %s if it passes, or to %s with the reason it cannot",
			name, strings.Join(nt.ops, ", "), status, claimedFile, excludedFile)
	}
	t.Logf("node tests: %d claimed, %d excluded, %d of unsupported ops", len(claimed), len(excluded), unsupported)
}

// runNodeTest runs every data set of a node test and returns the first mismatch.
func runNodeTest(nt *nodeTest) error {
	if nt.readErr != nil {
		return nt.readErr
	}
	sets, _ := filepath.Glob(filepath.Join(nt.dir, "test_data_set_*"))
	if len(sets) == 0 {
		return fmt.Errorf("%s: no test data sets", nt.dir)
	}
	for _, set := range sets {
		if err := runNodeTestSet(nt, set); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(set), err)
		}
	}
	return nil
}

func runNodeTestSet(nt *nodeTest, set string) error {
	p, err := prepare(nt, set)
	if err != nil {
		return err
	}
	m, err := NewModel(p.model)
	if err != nil {
		return err
	}
	prog, err := newProgram(m, p.options(), m.params)
	if err != nil {
		return err
	}
	if err := prog.run(p.orderedInputs(m), nil); err != nil {
		return err
	}
	var errs []error
	for j, vi := range p.model.Graph.Outputs {
		want := p.outputs[j]
		if c, ok := prog.consts[vi.Name]; ok {
			if !slices.Equal(c.Dims, want.Dims) || fmt.Sprint(c.Ints) != fmt.Sprint(want.Ints) || fmt.Sprint(c.Floats) != fmt.Sprint(want.Floats) {
				errs = append(errs, fmt.Errorf("output %q: got %v %v%v, want %v %v%v", vi.Name, c.Dims, c.Ints, c.Floats, want.Dims, want.Ints, want.Floats))
			}
			continue
		}
		idx := indexOf(prog.outNames, vi.Name)
		if idx < 0 {
			errs = append(errs, fmt.Errorf("output %q not computed", vi.Name))
			continue
		}
		if got := []int(prog.outputs[idx].Shape()); fmt.Sprint(got) != fmt.Sprint(intsOf(want.Dims)) {
			errs = append(errs, fmt.Errorf("output %q: shape %v, want %v", vi.Name, got, want.Dims))
			continue
		}
		if err := allClose(prog.output(idx), want.Floats, 1e-3, 1e-7); err != nil {
			errs = append(errs, fmt.Errorf("output %q: %v", vi.Name, err))
		}
	}
	return errors.Join(errs...)
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
	claimed := claimedNodeTests(t, loadNodeTests(t), readNodeTestLists(t))
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
	checkGradientsMode(t, m, p, false)
}

// checkGradientsMode is checkGradients of a training program (batch statistics) when
// training is set.
func checkGradientsMode(t *testing.T, m *Model, p *prepared, training bool) {
	params := map[string][]float64{}
	for name, v := range m.params {
		params[name] = to64(v)
	}
	opts := p.options()
	opts.Training = training
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
			continue
		}
		// No gradient: every node that reads the input must read it where the ONNX
		// specification says no gradient flows (an index, a shape, a running mean).
		for _, n := range m.IR().Graph.Nodes {
			s := onnx.SchemaOf(n)
			for j, name := range n.Inputs {
				if name == in.Name && (s == nil || s.IsDifferentiable(j)) {
					t.Errorf("input %s: no gradient computed, but it is input %d of %s (%s), through which a gradient flows", in.Name, j, n.Name, n.OpType)
				}
			}
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
