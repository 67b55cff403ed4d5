package backend

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"toolkit/internal/familyfixtures"
	"toolkit/onnx"
)

// TestFamiliesPyTorchParity runs every torchvision family fixture (random weights,
// perturbed BatchNorm statistics, eval mode; see tools/make_family_fixtures.py) at opsets
// 13 and 17, exported with its BatchNormalization nodes and parameter names, and in the
// default export that folds them into the convolutions: the output, the gradient of
// L = sum(output * R) with respect to the input and, for the unfolded exports, with
// respect to every parameter must match PyTorch's (float64) within 1e-4 relative. It
// logs the table of the largest errors per family.
func TestFamiliesPyTorchParity(t *testing.T) {
	fx := familyfixtures.Load(t)
	type row struct {
		family, file       string
		out, input, params float64
		worstParam         string
	}
	var rows []row
	for _, name := range fx.Names() {
		f := fx.Families[name]
		for _, file := range f.ModelFiles() {
			info := f.Models[file]
			t.Run(name+"/"+strings.TrimSuffix(file, ".onnx"), func(t *testing.T) {
				r := row{family: name, file: file}
				checkFamily(t, f, file, !info.Fused, func(what string, e float64) {
					switch {
					case what == "output":
						r.out = e
					case what == "input gradient":
						r.input = e
					case e > r.params:
						r.params, r.worstParam = e, what
					}
				})
				rows = append(rows, r)
			})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].family+rows[i].file < rows[j].family+rows[j].file })
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s %-26s %10s %10s %10s  %s\n", "family", "model", "output", "d input", "d params", "worst parameter")
	for _, r := range rows {
		params := fmt.Sprintf("%10.2e", r.params)
		if r.worstParam == "" {
			params = fmt.Sprintf("%10s", "-")
		}
		fmt.Fprintf(&b, "%-20s %-26s %10.2e %10.2e %s  %s\n", r.family, r.file, r.out, r.input, params, r.worstParam)
	}
	t.Logf("largest relative errors against PyTorch (max|ours - torch| / max|torch| per tensor):\n%s", b.String())
}

// checkFamily is checkTorchFixture for the layout of a family fixture: one folder, the
// model file given, the gradients of the parameters (when params is set) under grads/.
func checkFamily(t *testing.T, f *familyfixtures.Family, file string, params bool, record func(what string, err float64)) {
	t.Helper()
	ir, err := onnx.Read(f.Path(file))
	if err != nil {
		t.Fatal(err)
	}
	m, err := AdoptModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	x := readNPY(t, f.Path("input.npy"))
	want := readNPY(t, f.Path("output.npy"))
	target := readNPY(t, f.Path("loss_weight.npy"))
	in := m.Inputs()[0].Name
	opts := Options{InputShapes: map[string][]int{in: x.Shape}, InputGrads: true, Loss: WeightedSum}
	if params {
		opts.Trainable = m.TrainableNames()
	}
	p, err := m.Program(opts)
	if err != nil {
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
		record(what, e)
		if e > parityTolerance {
			t.Errorf("%s: relative error %.3g against PyTorch", what, e)
		}
	}
	check("output", p.Output(0), want.Data)
	check("input gradient", p.Grad(in), readNPY(t, f.Path("grad_input.npy")).Data)
	if !params {
		return
	}
	trainable := map[string]bool{}
	for _, n := range m.TrainableNames() {
		trainable[n] = true
	}
	for _, name := range f.Params {
		if !trainable[name] {
			t.Errorf("parameter %s: not trainable in the model (the export has %d trainable parameters)", name, len(trainable))
			continue
		}
		got := p.Grad(name)
		if got == nil {
			t.Errorf("parameter %s: no gradient computed", name)
			continue
		}
		check(name, got, readNPY(t, filepath.Join(f.Dir, "grads", f.GradFiles[name])).Data)
	}
	if len(trainable) != len(f.Params) {
		t.Errorf("PyTorch has %d parameters, the model %d trainable ones", len(f.Params), len(trainable))
	}
}
