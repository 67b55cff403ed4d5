package crosscheck

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"toolkit/backend"
	"toolkit/npy"
	"toolkit/onnx"
)

const (
	// parityDir holds the PyTorch parity fixtures (tools/make_parity_fixtures.py).
	parityDir = "../testdata/parity"
	// nodeTestDir holds the ONNX backend node tests of Debian's libonnx-testdata.
	nodeTestDir = "/usr/share/libonnx-testdata/data/node"
	// tolerance bounds max|ours - reference| / max|reference| over each output.
	tolerance = 1e-5
)

// fixture is one PyTorch parity fixture: a model.onnx with one float input.
type fixture struct {
	name, dir string
}

// parityFixtures lists the <name>_opset<k> fixtures and bn_train (a training-mode
// BatchNormalization: both runtimes normalise with the statistics of the batch they are
// given, so it is comparable at any batch size too).
func parityFixtures(t *testing.T) []fixture {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(parityDir, "*_opset*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatalf("no parity fixtures under %s (regenerate with /usr/bin/python3 tools/make_parity_fixtures.py)", parityDir)
	}
	dirs = append(dirs, filepath.Join(parityDir, "bn_train"))
	sort.Strings(dirs)
	var fs []fixture
	for _, d := range dirs {
		fs = append(fs, fixture{name: filepath.Base(d), dir: d})
	}
	return fs
}

func readIR(t *testing.T, path string) *onnx.Model {
	t.Helper()
	m, err := onnx.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readNPY(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func writeNPY(t *testing.T, path string, a *npy.Array) {
	t.Helper()
	if err := npy.WriteFile(path, a); err != nil {
		t.Fatal(err)
	}
}

// runToolkit runs a single-input model with the toolkit's backend in inference mode.
func runToolkit(ir *onnx.Model, x *npy.Array) (*npy.Array, error) {
	m, err := backend.NewModel(ir)
	if err != nil {
		return nil, err
	}
	return runBackend(m, x)
}

// runBackend runs a backend model, single input, in inference mode.
func runBackend(m *backend.Model, x *npy.Array) (*npy.Array, error) {
	ins := m.Inputs()
	if len(ins) != 1 {
		return nil, fmt.Errorf("the model has %d inputs, want 1", len(ins))
	}
	p, err := m.Program(backend.Options{InputShapes: map[string][]int{ins[0].Name: x.Shape}})
	if err != nil {
		return nil, err
	}
	if err := p.Run([][]float32{x.Data}, nil); err != nil {
		return nil, err
	}
	return &npy.Array{
		Shape: append([]int(nil), p.OutputShape(0)...),
		Data:  append([]float32(nil), p.Output(0)...),
	}, nil
}

// diff compares got with a reference: the largest absolute difference, and that divided
// by the largest absolute reference value (the absolute difference when the reference is
// all zero). NaN anywhere makes both NaN unless both sides have NaN at the same place.
// Infinite and NaN reference values do not count in the scale (an infinity both sides
// agree on would make every other difference look like 0, a NaN every one NaN); one side
// infinite where the other is not is an infinite difference.
func diff(got, want []float32) (rel, abs float64) {
	var scale float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) && math.IsNaN(w) || g == w {
			if !math.IsInf(w, 0) && !math.IsNaN(w) {
				scale = math.Max(scale, math.Abs(w))
			}
			continue
		}
		d := math.Abs(g - w)
		if math.IsNaN(d) {
			return math.NaN(), math.NaN()
		}
		abs = math.Max(abs, d)
		if !math.IsInf(w, 0) {
			scale = math.Max(scale, math.Abs(w))
		}
	}
	if scale == 0 {
		return abs, abs
	}
	return abs / scale, abs
}

// compare reports an error unless got matches want in shape and within tolerance, and
// records the difference in w.
func compare(t *testing.T, w *worst, what string, got, want *npy.Array, tol float64) {
	t.Helper()
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		t.Errorf("%s: shape %v, reference %v", what, got.Shape, want.Shape)
		return
	}
	rel, abs := diff(got.Data, want.Data)
	w.record(what, rel, abs)
	if !(rel <= tol) {
		i := argmaxDiff(got.Data, want.Data)
		t.Errorf("%s: relative difference %.3g (max |diff| %.3g) exceeds %g; worst at flat index %d: %v vs reference %v",
			what, rel, abs, tol, i, got.Data[i], want.Data[i])
	}
}

func argmaxDiff(got, want []float32) int {
	at, best := 0, -1.0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return i
		}
		if d > best {
			at, best = i, d
		}
	}
	return at
}

// worst keeps the largest difference seen by a test, for its log.
type worst struct {
	mu       sync.Mutex
	rel, abs float64
	relAt    string
	absAt    string
	n        int
}

func (w *worst) record(what string, rel, abs float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if rel > w.rel || math.IsNaN(rel) {
		w.rel, w.relAt = rel, what
	}
	if abs > w.abs || math.IsNaN(abs) {
		w.abs, w.absAt = abs, what
	}
}

func (w *worst) log(t *testing.T, against string) {
	t.Helper()
	if w.abs == 0 {
		t.Logf("%d comparisons against %s: all bit-identical", w.n, against)
		return
	}
	t.Logf("%d comparisons against %s: largest relative difference %.3g (%s), largest absolute %.3g (%s)",
		w.n, against, w.rel, w.relAt, w.abs, w.absAt)
}

// randomInput returns a seeded N(0, 1) array of the given shape.
func randomInput(shape []int, seed uint64) *npy.Array {
	n := 1
	for _, d := range shape {
		n *= d
	}
	rng := rand.New(rand.NewPCG(seed, 0x63726f7373636865))
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	return &npy.Array{Shape: append([]int(nil), shape...), Data: data}
}

// withBatch returns shape with its first dimension replaced by n.
func withBatch(shape []int, n int) []int {
	s := append([]int(nil), shape...)
	s[0] = n
	return s
}
