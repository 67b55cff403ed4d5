package backend

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"toolkit/internal/familyfixtures"
	"toolkit/npy"
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
	_, m, x, want := loadFamilyModel(t, f, file, nil)
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

// TestFamiliesTrainingModeBatchNorm runs the families with train() references
// (resnet18, mobilenet_v2) in training programs that train every parameter, so that
// the BatchNormalization layers normalise with the batch's statistics and update their
// running averages, against PyTorch's train() mode in float64:
//
//   - in float64 (the kernels the float32 programs run, in double precision): the
//     output, the gradients of the input and of every parameter, and the running
//     statistics after the pass, within 1e-5;
//   - in float32, as training runs: the output and the running statistics within 1e-4
//     (or three times the distance of PyTorch's own float32 pass, where larger), and the
//     gradients of every tensor PyTorch's own float32 pass gets within 1e-5 of float64.
//     The others are ill-conditioned in float32 (mobilenet_v2's: ReLU6 masks flip under
//     the rounding of small-batch statistics, PyTorch's float32 input gradient is 6e-3
//     from its float64 one), and are checked by the float64 program only.
func TestFamiliesTrainingModeBatchNorm(t *testing.T) {
	fx := familyfixtures.Load(t)
	checked := 0
	for _, name := range fx.Names() {
		f := fx.Families[name]
		if !f.TrainReferences {
			continue
		}
		for _, file := range []string{"model_opset13.onnx", "model_opset17.onnx"} {
			t.Run(name+"/"+file, func(t *testing.T) {
				x := readNPY(t, f.Path("train_input.npy"))
				target := readNPY(t, f.Path("train_loss_weight.npy"))
				want := map[string][]float32{
					"output":         readNPY(t, f.Path("train_output.npy")).Data,
					"input gradient": readNPY(t, f.Path("train_grad_input.npy")).Data,
				}
				for _, p := range f.Params {
					want[p] = readNPY(t, filepath.Join(f.Dir, "train_grads", f.GradFiles[p])).Data
				}
				stats, _ := filepath.Glob(filepath.Join(f.Dir, "train_running", "*.npy"))
				var statNames []string
				for _, s := range stats {
					name := strings.TrimSuffix(filepath.Base(s), ".npy")
					statNames = append(statNames, name)
					want[name] = readNPY(t, s).Data
				}
				if len(stats) == 0 {
					t.Fatal("no running statistics in the fixture")
				}
				// A gradient PyTorch finds zero up to rounding (a BatchNormalization shift
				// whose channel the next training-mode BatchNormalization centres away) is
				// measured against a floor: 1e-7 of the largest gradient of the model.
				var largest float64
				for what, w := range want {
					if what != "output" && !slices.Contains(statNames, what) {
						largest = max(largest, maxAbs(w))
					}
				}
				floor := 1e-7 * largest
				for _, double := range []bool{true, false} {
					got, err := trainPass(f.Path(file), x.Shape, x.Data, target.Data, f.Params, statNames, double)
					if err != nil {
						t.Fatal(err)
					}
					worst, compared := 0.0, 0
					for what, w := range want {
						torch32 := f.TrainFloat32Error[what]
						tol := 1e-5
						if !double {
							tol = max(parityTolerance, 3*torch32)
							isGrad := what == "input gradient" || slices.Contains(f.Params, what)
							if isGrad && torch32 > 1e-5 {
								continue // ill-conditioned in float32: the float64 pass checks it
							}
						}
						e := relErrFloor(got[what], w, floor)
						worst = max(worst, e)
						compared++
						if e > tol {
							t.Errorf("float64 %v: %s: relative error %.3g against PyTorch's train() mode (tolerance %.3g; PyTorch's float32: %.3g)",
								double, what, e, tol, torch32)
						}
					}
					t.Logf("float64 %v: %d of %d tensors compared, largest relative error %.3g", double, compared, len(want), worst)
				}
				checked++
			})
		}
	}
	if checked == 0 {
		t.Error("no family fixture has train() references")
	}
}

// trainPass runs one training pass of the model file (every parameter trained, the
// loss sum(output * target)) in float64 or float32 and returns the output, the input
// gradient, the parameters' gradients and the running statistics after the pass.
func trainPass(file string, shape []int, x, target []float32, params, stats []string, double bool) (map[string][]float32, error) {
	ir, err := onnx.Read(file)
	if err != nil {
		return nil, err
	}
	m, err := NewModel(ir)
	if err != nil {
		return nil, err
	}
	opts := Options{InputShapes: map[string][]int{m.Inputs()[0].Name: shape}, Training: true,
		Trainable: m.TrainableNames(), InputGrads: true, Loss: WeightedSum}
	out := map[string][]float32{}
	if !double {
		p, err := m.Program(opts)
		if err != nil {
			return nil, err
		}
		if err := p.Run([][]float32{x}, target); err != nil {
			return nil, err
		}
		out["output"], out["input gradient"] = p.Output(0), p.Grad(m.Inputs()[0].Name)
		for _, n := range params {
			out[n] = p.Grad(n)
		}
		for _, n := range stats {
			out[n] = m.Param(n)
		}
		return out, nil
	}
	p64 := map[string][]float64{}
	for n, v := range m.params {
		p64[n] = to64(v)
	}
	p, err := newProgram(m, opts, p64)
	if err != nil {
		return nil, err
	}
	if err := p.run([][]float64{to64(x)}, to64(target)); err != nil {
		return nil, err
	}
	out["output"], out["input gradient"] = to32(p.output(0)), to32(p.grad(m.Inputs()[0].Name))
	for _, n := range params {
		out[n] = to32(p.grad(n))
	}
	for _, n := range stats {
		out[n] = to32(p64[n])
	}
	return out, nil
}

func to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

// relErrFloor is relErr with the scale at least floor.
func relErrFloor(got, want []float32, floor float64) float64 {
	var diff float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-float64(want[i])))
	}
	return diff / max(maxAbs(want), floor)
}

// TestFamiliesConstantWeights runs every family fixture exported with its
// BatchNormalization nodes in an inference program with constant weights, which folds
// each normalization that follows a convolution into its weights and bias and keeps
// what the kernels derive from them: the output must match PyTorch's (eval mode) within
// the parity tolerance, every normalization after a convolution must be gone from the
// program's steps, and so must the Relu, the Clip (MobileNet's ReLU6) or the SiLU
// (EfficientNet's) after it, which the convolution stores. Each model runs twice: as exported, and with every convolution's
// weight passed through an Identity node, as torch.onnx writes initializers it merged
// (the weights are the model's parameters still, and must fold as well).
func TestFamiliesConstantWeights(t *testing.T) {
	fx := familyfixtures.Load(t)
	folded, joined, packed := 0, 0, 0
	for _, name := range fx.Names() {
		f := fx.Families[name]
		for _, file := range f.ModelFiles() {
			if f.Models[file].Fused {
				continue
			}
			for _, identity := range []bool{false, true} {
				label := name + "/" + strings.TrimSuffix(file, ".onnx")
				if identity {
					label += "/identity-weights"
				}
				t.Run(label, func(t *testing.T) {
					var rewrite func(*onnx.Model)
					if identity {
						rewrite = passWeightsThroughIdentity
					}
					ir, m, x, want := loadFamilyModel(t, f, file, rewrite)
					f, j, p := checkConstantWeightsFold(t, ir, m, x, want)
					folded, joined, packed = folded+f, joined+j, packed+p
				})
			}
		}
	}
	if fx.Names() != nil && folded == 0 {
		t.Fatal("no family folded a BatchNormalization")
	}
	if fx.Names() != nil && joined == 0 {
		t.Fatal("no family's convolution added a residual")
	}
	if fx.Names() != nil && packed == 0 {
		t.Fatal("no family's MatMul kept its constant weights packed")
	}
}

// checkConstantWeightsFold runs m in a program with constant weights (see
// TestFamiliesConstantWeights) and returns how many normalizations it folded, how many
// convolutions added the other branch of a residual join and how many MatMuls kept
// their constant weights packed.
func checkConstantWeightsFold(t *testing.T, ir *onnx.Model, m *Model, x, want *npy.Array) (folded, joined, packed int) {
	t.Helper()
	p, err := m.Program(Options{InputShapes: map[string][]int{m.Inputs()[0].Name: x.Shape}, ConstantWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	for run := range 2 { // the first run folds, the second takes the kept transforms
		if err := p.Run([][]float32{x.Data}, nil); err != nil {
			t.Fatal(err)
		}
		if e := relErr(p.Output(0), want.Data); e > parityTolerance {
			t.Fatalf("run %d: output relative error %.3g against PyTorch", run, e)
		}
	}
	producer := map[string]string{}
	sigmoidOf := map[string]string{} // a Sigmoid's output: its input
	for _, n := range ir.Graph.Nodes {
		for _, o := range n.Outputs {
			producer[o] = n.OpType
		}
		if n.OpType == "Sigmoid" {
			sigmoidOf[n.Outputs[0]] = n.Inputs[0]
		}
	}
	folds := map[string]bool{}     // "BatchNormalization(name)" of those that read a Conv's output
	stored := map[string]bool{}    // "Relu(name)" or "Clip(name)" of those that read one of them
	foldedOut := map[string]bool{} // their outputs
	for _, n := range ir.Graph.Nodes {
		if n.OpType == "BatchNormalization" && producer[n.Inputs[0]] == "Conv" {
			folds["BatchNormalization("+n.Name+")"] = true
			foldedOut[n.Outputs[0]] = true
		}
	}
	for _, n := range ir.Graph.Nodes {
		if (n.OpType == "Relu" || n.OpType == "Clip") && foldedOut[n.Inputs[0]] {
			stored[n.OpType+"("+n.Name+")"] = true
		}
		if n.OpType == "Mul" && len(n.Inputs) == 2 && foldedOut[n.Inputs[0]] && sigmoidOf[n.Inputs[1]] == n.Inputs[0] {
			stored["Mul("+n.Name+")"] = true // x·σ(x): a SiLU (EfficientNet's)
		}
	}
	// A residual join: an Add of two tensors of one shape, one of them a folded
	// normalization's output that it alone reads (planResidualAdds).
	uses := map[string]int{}
	for _, n := range ir.Graph.Nodes {
		for _, in := range n.Inputs {
			uses[in]++
		}
	}
	for _, o := range ir.Graph.Outputs {
		uses[o.Name]++
	}
	joins := map[string]bool{} // "Add(name)"
	for _, n := range ir.Graph.Nodes {
		if n.OpType != "Add" || len(n.Inputs) != 2 {
			continue
		}
		for _, in := range n.Inputs {
			if foldedOut[in] && uses[in] == 1 {
				joins["Add("+n.Name+")"] = true
			}
		}
	}
	for _, s := range p.p.steps {
		if folds[s.name] {
			t.Errorf("%s follows a convolution and is not folded into it", s.name)
		}
		if stored[s.name] {
			t.Errorf("%s follows a folded normalization and is not stored by the convolution", s.name)
		}
		if joins[s.name] {
			t.Errorf("%s joins a folded convolution's output to another branch and is not added by the convolution", s.name)
		}
		if c, ok := s.fwd.k.(*conv[float32]); ok && c.residual {
			joined++
		}
		if mm, ok := s.fwd.k.(*matMul[float32]); ok && mm.packedB != nil {
			packed++
		}
	}
	return len(folds), joined, packed
}

// passWeightsThroughIdentity rewrites ir so that every convolution reads its weight
// through an Identity node of its own.
func passWeightsThroughIdentity(ir *onnx.Model) {
	var nodes []*onnx.Node
	for _, n := range ir.Graph.Nodes {
		if n.OpType == "Conv" {
			w := n.Inputs[1] + "/identity/" + n.Name
			nodes = append(nodes, &onnx.Node{Name: n.Name + "/weight", OpType: "Identity", Inputs: []string{n.Inputs[1]}, Outputs: []string{w}})
			n.Inputs[1] = w
		}
		nodes = append(nodes, n)
	}
	ir.Graph.Nodes = nodes
}

// loadFamilyModel reads a family fixture's model file and its input and PyTorch
// output; rewrite, if not nil, changes the model before the backend takes it (which
// takes over its weights).
func loadFamilyModel(t *testing.T, f *familyfixtures.Family, file string, rewrite func(*onnx.Model)) (*onnx.Model, *Model, *npy.Array, *npy.Array) {
	t.Helper()
	ir, err := onnx.Read(f.Path(file))
	if err != nil {
		t.Fatal(err)
	}
	if rewrite != nil {
		rewrite(ir)
	}
	m, err := AdoptModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	return ir, m, readNPY(t, f.Path("input.npy")), readNPY(t, f.Path("output.npy"))
}
