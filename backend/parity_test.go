package backend

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/backend/kernels"
	"toolkit/npy"
	"toolkit/onnx"
)

// The parity fixtures are small VGG-style networks exported from PyTorch by
// tools/make_parity_fixtures.py, with PyTorch's outputs and its gradients of
// L = sum(output * loss_weight) with respect to the input and every parameter.
const parityDir = "../testdata/parity"

// parityTolerance bounds max|ours - torch| / max|torch| over each tensor.
const parityTolerance = 1e-4

func readNPY(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// relErr returns max|got-want| / max|want| (the absolute error when want is all zero).
func relErr(got, want []float32) float64 {
	var diff, scale float64
	for i := range want {
		diff = math.Max(diff, math.Abs(float64(got[i])-float64(want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

// forEachKernels runs f with each GEMM implementation the machine and build have
// (kernels.Implementations: the AVX-512 and AVX2 micro-kernels where the CPU has them,
// the portable one, gonum), so that every path the convolutions and products take is
// checked against the references; it restores the default afterwards.
func forEachKernels(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	orig := kernels.Current()
	defer func() {
		if err := kernels.Use(orig); err != nil {
			t.Error(err)
		}
	}()
	for _, name := range kernels.Implementations() {
		if err := kernels.Use(name); err != nil {
			t.Fatal(err)
		}
		t.Run(name, f)
	}
	t.Logf("ran on the GEMMs %v", kernels.Implementations())
}

func TestPyTorchParity(t *testing.T) {
	forEachKernels(t, testPyTorchParity)
}

func testPyTorchParity(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(parityDir, "*_opset*"))
	if len(dirs) == 0 {
		t.Fatalf("no parity fixtures under %s (regenerate with /usr/bin/python3 tools/make_parity_fixtures.py)", parityDir)
	}
	worst, worstAt := 0.0, ""
	record := func(what string, err float64) {
		if err > worst {
			worst, worstAt = err, what
		}
	}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			// BatchNormalization folded into the convolutions: the parameters are not
			// PyTorch's, so only the input gradient is comparable.
			checkTorchFixture(t, dir, !strings.Contains(name, "_fused"), record)
		})
	}
	t.Logf("largest relative error against PyTorch: %.3g (%s)", worst, worstAt)
}

// checkTorchFixture runs the fixture in dir (the layout of testdata/parity/README.md)
// and compares the output, the input gradient and, when params is set, every
// parameter's gradient with PyTorch's; record is told each relative error.
func checkTorchFixture(t *testing.T, dir string, params bool, record func(what string, err float64)) {
	t.Helper()
	name := filepath.Base(dir)
	ir, err := onnx.Read(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	x := readNPY(t, filepath.Join(dir, "input.npy"))
	want := readNPY(t, filepath.Join(dir, "output.npy"))
	target := readNPY(t, filepath.Join(dir, "loss_weight.npy"))
	in := m.Inputs()[0].Name
	p, err := m.Program(Options{
		InputShapes: map[string][]int{in: x.Shape},
		Trainable:   m.TrainableNames(),
		InputGrads:  true,
		Loss:        WeightedSum,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A first run on other values: the buffers the program reuses must carry nothing
	// into the next run.
	other := make([]float32, len(x.Data))
	for i, v := range x.Data {
		other[len(other)-1-i] = 2 * v
	}
	if err := p.Run([][]float32{other}, target.Data); err != nil {
		t.Fatal(err)
	}
	if err := p.Run([][]float32{x.Data}, target.Data); err != nil {
		t.Fatal(err)
	}
	if got := p.OutputShape(0); fmt.Sprint(got) != fmt.Sprint(want.Shape) {
		t.Fatalf("output shape %v, PyTorch %v", got, want.Shape)
	}
	check := func(what string, got, want []float32) {
		e := relErr(got, want)
		record(name+" "+what, e)
		if e > parityTolerance {
			t.Errorf("%s: relative error %.3g against PyTorch", what, e)
		}
	}
	check("output", p.Output(0), want.Data)
	check("input gradient", p.Grad(in), readNPY(t, filepath.Join(dir, "grad_input.npy")).Data)
	if !params {
		return
	}
	grads, _ := filepath.Glob(filepath.Join(dir, "grads", "*.npy"))
	for _, g := range grads {
		param := strings.TrimSuffix(filepath.Base(g), ".npy")
		got := p.Grad(param)
		if got == nil {
			t.Errorf("parameter %s: no gradient computed", param)
			continue
		}
		check("gradient of "+param, got, readNPY(t, g).Data)
	}
	if len(grads) != len(m.TrainableNames()) {
		t.Errorf("PyTorch has %d parameter gradients, the model %d trainable parameters", len(grads), len(m.TrainableNames()))
	}
}

// TestPyTorchBatchNormTraining checks a training-mode program against PyTorch's
// train() mode: batch statistics in the forward pass, gradients through them, and the
// running statistics' update (momentum 0.1, unbiased variance).
func TestPyTorchBatchNormTraining(t *testing.T) {
	dir := filepath.Join(parityDir, "bn_train")
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	ir, err := onnx.Read(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	// The export traced the module in training mode, which moved its running
	// statistics: start from the values PyTorch started from.
	starts, _ := filepath.Glob(filepath.Join(dir, "params", "*.npy"))
	for _, f := range starts {
		name := strings.TrimSuffix(filepath.Base(f), ".npy")
		if copy(m.Param(name), readNPY(t, f).Data) == 0 {
			t.Fatalf("the model has no parameter %s", name)
		}
	}
	x := readNPY(t, filepath.Join(dir, "input.npy"))
	target := readNPY(t, filepath.Join(dir, "loss_weight.npy"))
	p, err := m.Program(Options{
		InputShapes: map[string][]int{m.Inputs()[0].Name: x.Shape},
		Training:    true,
		Trainable:   m.TrainableNames(),
		InputGrads:  true,
		Loss:        WeightedSum,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run([][]float32{x.Data}, target.Data); err != nil {
		t.Fatal(err)
	}
	for what, pair := range map[string][2][]float32{
		"output":               {p.Output(0), readNPY(t, filepath.Join(dir, "output.npy")).Data},
		"input gradient":       {p.Grad(m.Inputs()[0].Name), readNPY(t, filepath.Join(dir, "grad_input.npy")).Data},
		"running mean":         {m.Param("bn.running_mean"), readNPY(t, filepath.Join(dir, "running_mean.npy")).Data},
		"running variance":     {m.Param("bn.running_var"), readNPY(t, filepath.Join(dir, "running_var.npy")).Data},
		"conv weight gradient": {p.Grad("conv.weight"), readNPY(t, filepath.Join(dir, "grads", "conv.weight.npy")).Data},
		"bn weight gradient":   {p.Grad("bn.weight"), readNPY(t, filepath.Join(dir, "grads", "bn.weight.npy")).Data},
		"bn bias gradient":     {p.Grad("bn.bias"), readNPY(t, filepath.Join(dir, "grads", "bn.bias.npy")).Data},
	} {
		if pair[0] == nil {
			t.Errorf("%s: not computed", what)
			continue
		}
		if e := relErr(pair[0], pair[1]); e > parityTolerance {
			t.Errorf("%s: relative error %.3g against PyTorch", what, e)
		}
	}
}
