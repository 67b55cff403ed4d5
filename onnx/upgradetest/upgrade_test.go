package upgradetest

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"toolkit/internal/testref"

	"toolkit/backend"
	"toolkit/npy"
	"toolkit/onnx"
)

const (
	// parityDir holds the PyTorch parity fixtures (testdata/parity/README.md).
	parityDir = "../../testdata/parity"
	// defaultORTDir is the ONNX Runtime runner, node tools/ort/run.js MODEL IN.npy
	// OUT.npy; TOOLKIT_ORT_DIR names another folder with run.js and its node_modules.
	defaultORTDir = "../../tools/ort"
	// python is Debian's interpreter, which has onnx.
	python = "/usr/bin/python3"
	// torchTolerance bounds max|ours - PyTorch| on the fixtures' outputs.
	torchTolerance = 1e-5
	// sameTolerance bounds max|upgraded - original| when one runtime runs both.
	sameTolerance = 1e-6
)

// runBackend runs ir on x with the toolkit's backend and returns its first output.
func runBackend(ir *onnx.Model, x *npy.Array) (*npy.Array, error) {
	m, err := backend.NewModel(ir)
	if err != nil {
		return nil, err
	}
	in := m.Inputs()[0].Name
	p, err := m.Program(backend.Options{InputShapes: map[string][]int{in: x.Shape}})
	if err != nil {
		return nil, err
	}
	if err := p.Run([][]float32{x.Data}, nil); err != nil {
		return nil, err
	}
	return &npy.Array{Shape: p.OutputShape(0), Data: slices.Clone(p.Output(0))}, nil
}

// maxDiff returns max|got - want|, or +Inf when the shapes differ.
func maxDiff(got, want *npy.Array) float64 {
	if !slices.Equal(got.Shape, want.Shape) || len(got.Data) != len(want.Data) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range want.Data {
		d = math.Max(d, math.Abs(float64(got.Data[i])-float64(want.Data[i])))
	}
	return d
}

// ortJob is one ONNX Runtime run: model on the input file, first output to out.
type ortJob struct{ model, in, out string }

func ortDir() string {
	if d := os.Getenv("TOOLKIT_ORT_DIR"); d != "" {
		return d
	}
	return defaultORTDir
}

// needORT skips the test, or fails it under CI, unless tools/ort is installed.
func needORT(t *testing.T) {
	t.Helper()
	ortDir := ortDir()
	if _, err := os.Stat(filepath.Join(ortDir, "node_modules", "onnxruntime-node")); err != nil {
		testref.Missing(t, "ONNX Runtime is not installed under %s (npm ci --prefix tools/ort --ignore-scripts)", ortDir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		testref.Missing(t, "node is not installed, so ONNX Runtime cannot run (Debian's nodejs)")
	}
}

// runORT runs the jobs in one ONNX Runtime process, graph optimisations off so that
// the graph runs as written. A job that fails leaves no output file; its message is logged.
func runORT(t *testing.T, jobs []ortJob) {
	t.Helper()
	args := []string{filepath.Join(ortDir(), "run.js"), "--opt", "disabled", "--threads", "1"}
	for _, j := range jobs {
		args = append(args, j.model, j.in, j.out)
	}
	out, err := exec.Command("node", args...).CombinedOutput()
	if err != nil {
		t.Logf("ONNX Runtime: %v\n%s", err, out)
	}
}

// checkModels has the ONNX checker check the files, strict shape inference included.
// Without Python's onnx it skips the rest of the test, or fails it under CI.
func checkModels(t *testing.T, files []string) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		testref.Missing(t, "%s not found, so the ONNX checker cannot run", python)
	}
	if out, err := exec.Command(python, "-c", "import onnx").CombinedOutput(); err != nil {
		testref.Missing(t, "%s cannot import onnx (Debian's python3-onnx): %v: %s", python, err, out)
	}
	data, _ := json.Marshal(files)
	list := filepath.Join(t.TempDir(), "files.json")
	if err := os.WriteFile(list, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", `
import json, sys, onnx
bad = []
for f in json.load(open(sys.argv[1])):
    try:
        onnx.checker.check_model(onnx.load(f), full_check=True)
    except Exception as e:
        bad.append("%s: %s" % (f, str(e).strip().splitlines()[0]))
print(json.dumps(bad))
`, list)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ONNX checker: %v\n%s", err, stderr.String())
	}
	var bad []string
	if err := json.Unmarshal(out, &bad); err != nil {
		t.Fatalf("checker output %q: %v", out, err)
	}
	for _, b := range bad {
		t.Errorf("ONNX checker: %s", b)
	}
}

func mustRead(t *testing.T, path string) *onnx.Model {
	t.Helper()
	m, err := onnx.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustReadNPY(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestUpgradedParityFixtures upgrades every opset 9 parity fixture to opsets 13 and 17,
// has the ONNX checker check the results, runs the original and the upgraded models in
// the backend and compares them with each other and with PyTorch's output, and runs the
// upgraded models in ONNX Runtime where it is installed.
func TestUpgradedParityFixtures(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(parityDir, "*_opset9"))
	if len(dirs) < 6 {
		t.Fatalf("%d opset 9 parity fixtures under %s, want 6 (see its README.md)", len(dirs), parityDir)
	}
	tmp := t.TempDir()
	var files []string
	var jobs []ortJob
	want := map[string]*npy.Array{} // PyTorch's output, by ORT output file
	for _, dir := range dirs {
		name := filepath.Base(dir)
		orig := mustRead(t, filepath.Join(dir, "model.onnx"))
		x := mustReadNPY(t, filepath.Join(dir, "input.npy"))
		torch := mustReadNPY(t, filepath.Join(dir, "output.npy"))
		base, err := runBackend(orig, x)
		if err != nil {
			t.Fatalf("%s: backend on the original: %v", name, err)
		}
		if d := maxDiff(base, torch); d > torchTolerance {
			t.Errorf("%s: original in the backend: max |diff| %.3g against PyTorch", name, d)
		}
		for _, target := range []int64{13, 17} {
			u, err := onnx.UpgradeOpset(orig, target)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			label := fmt.Sprintf("%s to %d", name, target)
			p := filepath.Join(tmp, fmt.Sprintf("%s_to%d.onnx", name, target))
			if err := onnx.Write(p, u); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
			back := mustRead(t, p)
			got, err := runBackend(back, x)
			if err != nil {
				t.Errorf("%s: backend: %v", label, err)
				continue
			}
			if d := maxDiff(got, base); d > sameTolerance {
				t.Errorf("%s: backend: max |upgraded - original| %.3g", label, d)
			}
			if d := maxDiff(got, torch); d > torchTolerance {
				t.Errorf("%s: backend: max |diff| %.3g against PyTorch", label, d)
			}
			out := strings.TrimSuffix(p, ".onnx") + "_ort.npy"
			jobs = append(jobs, ortJob{p, filepath.Join(dir, "input.npy"), out})
			want[out] = torch
		}
	}
	checkModels(t, files)
	needORT(t)
	runORT(t, jobs)
	for _, j := range jobs {
		got, err := npy.ReadFile(j.out)
		if err != nil {
			t.Errorf("ONNX Runtime did not run %s: %v", filepath.Base(j.model), err)
			continue
		}
		if d := maxDiff(got, want[j.out]); d > torchTolerance {
			t.Errorf("%s in ONNX Runtime: max |diff| %.3g against PyTorch", filepath.Base(j.model), d)
		}
	}
	t.Logf("ONNX Runtime ran %d upgraded fixtures", len(jobs))
}

// opCase is a small model at an old opset exercising one rewrite, with one float input
// x and one output y.
type opCase struct {
	name  string
	opset int64
	shape []int // of x
	// noShape hides x's shape (and y's) from the upgrade, so that it cannot know ranks;
	// the upgraded model gets them back for running and checking.
	noShape bool
	nodes   []*onnx.Node
	inits   []*onnx.Tensor
	// ref computes y from x by the old opset's definition; nil when ONNX Runtime
	// running the original is the only reference.
	ref func(x *npy.Array) *npy.Array
	// ortOrig, when set, says why ONNX Runtime's output for the original is not the
	// reference for the upgraded model's.
	ortOrig string
}

func (c opCase) model() *onnx.Model {
	ir := map[int64]int64{7: 4, 8: 4, 9: 4, 10: 5, 11: 6, 12: 7}[c.opset]
	x := &onnx.ValueInfo{Name: "x", ElemType: onnx.Float, HasShape: true}
	for _, d := range c.shape {
		x.Shape = append(x.Shape, onnx.Dim{Value: int64(d)})
	}
	m := &onnx.Model{
		IRVersion:    ir,
		ProducerName: "upgradetest",
		OpsetImports: []onnx.OpsetImport{{Version: c.opset}},
		Graph: &onnx.Graph{
			Name:         c.name,
			Nodes:        c.nodes,
			Initializers: c.inits,
			Inputs:       []*onnx.ValueInfo{x},
			Outputs:      []*onnx.ValueInfo{{Name: "y", ElemType: onnx.Float}},
		},
	}
	shape := make([]int64, len(c.shape))
	for i, d := range c.shape {
		shape[i] = int64(d)
	}
	if s, err := onnx.InferShapes(m, map[string][]int64{"x": shape}); err == nil {
		y := m.Graph.Outputs[0]
		y.HasShape = true
		for _, d := range s.Dims["y"] {
			y.Shape = append(y.Shape, onnx.Dim{Value: d})
		}
	}
	return m
}

// input is deterministic data of the case's shape, positive and negative.
func (c opCase) input() *npy.Array {
	n := 1
	for _, d := range c.shape {
		n *= d
	}
	a := &npy.Array{Shape: slices.Clone(c.shape), Data: make([]float32, n)}
	for i := range a.Data {
		a.Data[i] = float32(3 * math.Sin(0.731*float64(i)+0.2))
	}
	return a
}

func attrInt(name string, v int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInt, Int: v}
}

func attrInts(name string, v ...int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}

func attrFloat(name string, v float32) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrFloat, Float: v}
}

func attrString(name, v string) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrString, String: v}
}

func one(op string, attrs ...*onnx.Attribute) []*onnx.Node {
	return []*onnx.Node{{Name: op, OpType: op, Inputs: []string{"x"}, Outputs: []string{"y"}, Attributes: attrs}}
}

// coercedSoftmax is (Log)Softmax before opset 13: x as a matrix of the dimensions
// before axis by those from it, normalised along its rows.
func coercedSoftmax(axis int, log bool) func(x *npy.Array) *npy.Array {
	return func(x *npy.Array) *npy.Array {
		a := axis
		if a < 0 {
			a += len(x.Shape)
		}
		cols := 1
		for _, d := range x.Shape[a:] {
			cols *= d
		}
		y := &npy.Array{Shape: x.Shape, Data: make([]float32, len(x.Data))}
		for r := 0; r < len(x.Data); r += cols {
			row := x.Data[r : r+cols]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, float64(v))
			}
			sum := 0.0
			for _, v := range row {
				sum += math.Exp(float64(v) - mx)
			}
			for j, v := range row {
				if log {
					y.Data[r+j] = float32(float64(v) - mx - math.Log(sum))
				} else {
					y.Data[r+j] = float32(math.Exp(float64(v)-mx) / sum)
				}
			}
		}
		return y
	}
}

func identity(x *npy.Array) *npy.Array { return x }

func reshaped(shape ...int) func(x *npy.Array) *npy.Array {
	return func(x *npy.Array) *npy.Array { return &npy.Array{Shape: shape, Data: x.Data} }
}

func clipped(lo, hi float32) func(x *npy.Array) *npy.Array {
	return func(x *npy.Array) *npy.Array {
		y := &npy.Array{Shape: x.Shape, Data: make([]float32, len(x.Data))}
		for i, v := range x.Data {
			y.Data[i] = min(max(v, lo), hi)
		}
		return y
	}
}

func vec(name string, v ...float32) *onnx.Tensor {
	return &onnx.Tensor{Name: name, DataType: onnx.Float, Dims: []int64{int64(len(v))}, Floats: v}
}

// batchNorm is inference BatchNormalization over channel axis 1.
func batchNorm(scale, bias, mean, variance []float32, eps float64) func(x *npy.Array) *npy.Array {
	return func(x *npy.Array) *npy.Array {
		inner := 1
		for _, d := range x.Shape[2:] {
			inner *= d
		}
		y := &npy.Array{Shape: x.Shape, Data: make([]float32, len(x.Data))}
		for i, v := range x.Data {
			c := (i / inner) % x.Shape[1]
			y.Data[i] = float32((float64(v)-float64(mean[c]))/math.Sqrt(float64(variance[c])+eps)*float64(scale[c]) + float64(bias[c]))
		}
		return y
	}
}

func opCases() []opCase {
	bnInits := []*onnx.Tensor{vec("s", 1, 2, 0.5), vec("b", 0.1, -0.2, 0.3), vec("m", 0.5, -1, 0), vec("v", 1, 4, 0.25)}
	bnRef := func(eps float64) func(*npy.Array) *npy.Array {
		return batchNorm([]float32{1, 2, 0.5}, []float32{0.1, -0.2, 0.3}, []float32{0.5, -1, 0}, []float32{1, 4, 0.25}, eps)
	}
	bnIn := []string{"x", "s", "b", "m", "v"}
	return []opCase{
		{name: "softmax_default_rank3", opset: 11, shape: []int{2, 3, 4}, nodes: one("Softmax"), ref: coercedSoftmax(1, false)},
		{name: "softmax_axis0_rank3", opset: 11, shape: []int{2, 3, 4}, nodes: one("Softmax", attrInt("axis", 0)), ref: coercedSoftmax(0, false)},
		{name: "softmax_last_rank3", opset: 11, shape: []int{2, 3, 4}, nodes: one("Softmax", attrInt("axis", 2)), ref: coercedSoftmax(2, false)},
		{name: "softmax_axis-2_rank4", opset: 11, shape: []int{2, 3, 2, 2}, nodes: one("Softmax", attrInt("axis", -2)), ref: coercedSoftmax(-2, false)},
		{name: "softmax_default_rank2", opset: 9, shape: []int{3, 5}, nodes: one("Softmax"), ref: coercedSoftmax(1, false)},
		{name: "softmax_unknown_rank", opset: 9, shape: []int{2, 3, 4}, noShape: true, nodes: one("Softmax", attrInt("axis", 1)), ref: coercedSoftmax(1, false)},
		{name: "logsoftmax_axis1_rank4", opset: 11, shape: []int{2, 3, 2, 2}, nodes: one("LogSoftmax", attrInt("axis", 1)), ref: coercedSoftmax(1, true)},
		{name: "logsoftmax_axis-1_rank2", opset: 11, shape: []int{4, 6}, nodes: one("LogSoftmax", attrInt("axis", -1)), ref: coercedSoftmax(-1, true)},
		{name: "logsoftmax_after_flatten", opset: 9, shape: []int{2, 3, 2, 2}, nodes: []*onnx.Node{
			{Name: "flatten", OpType: "Flatten", Inputs: []string{"x"}, Outputs: []string{"f"}},
			{Name: "logsoftmax", OpType: "LogSoftmax", Inputs: []string{"f"}, Outputs: []string{"y"}},
		}, ref: func(x *npy.Array) *npy.Array { return coercedSoftmax(1, true)(reshaped(2, 12)(x)) }},
		{name: "squeeze_unsqueeze", opset: 11, shape: []int{2, 1, 3}, nodes: []*onnx.Node{
			{Name: "squeeze", OpType: "Squeeze", Inputs: []string{"x"}, Outputs: []string{"s"}, Attributes: []*onnx.Attribute{attrInts("axes", 1)}},
			{Name: "unsqueeze", OpType: "Unsqueeze", Inputs: []string{"s"}, Outputs: []string{"y"}, Attributes: []*onnx.Attribute{attrInts("axes", 0, 3)}},
		}, ref: reshaped(1, 2, 3, 1)},
		{name: "squeeze_all", opset: 9, shape: []int{1, 4, 1}, nodes: one("Squeeze"), ref: reshaped(4)},
		{name: "slice_axes", opset: 9, shape: []int{3, 4, 5}, nodes: one("Slice", attrInts("starts", 1, 0), attrInts("ends", 1000, -1), attrInts("axes", 0, 2))},
		{name: "slice", opset: 9, shape: []int{3, 4}, nodes: one("Slice", attrInts("starts", 0, 1), attrInts("ends", 2, 3))},
		{name: "clip", opset: 9, shape: []int{2, 5}, nodes: one("Clip", attrFloat("min", -0.5), attrFloat("max", 1)), ref: clipped(-0.5, 1)},
		{name: "clip_max", opset: 10, shape: []int{2, 5}, nodes: one("Clip", attrFloat("max", 0.5)), ref: clipped(-math.MaxFloat32, 0.5)},
		{name: "pad_constant", opset: 9, shape: []int{1, 2, 3, 3}, nodes: one("Pad", attrInts("pads", 0, 0, 1, 2, 0, 0, 2, 1), attrFloat("value", 1.5))},
		{name: "pad_reflect", opset: 10, shape: []int{1, 2, 3, 3}, nodes: one("Pad", attrString("mode", "reflect"), attrInts("pads", 0, 0, 1, 1, 0, 0, 1, 1))},
		{name: "dropout", opset: 10, shape: []int{2, 3}, nodes: []*onnx.Node{
			{Name: "dropout", OpType: "Dropout", Inputs: []string{"x"}, Outputs: []string{"y", "mask"}, Attributes: []*onnx.Attribute{attrFloat("ratio", 0.3)}},
		}, ref: identity},
		{name: "dropout_opset7", opset: 7, shape: []int{2, 3}, nodes: one("Dropout", attrFloat("ratio", 0.2)), ref: identity},
		{name: "batchnorm_opset7", opset: 7, shape: []int{2, 3, 2, 2}, inits: bnInits, nodes: []*onnx.Node{
			{Name: "bn", OpType: "BatchNormalization", Inputs: bnIn, Outputs: []string{"y"},
				Attributes: []*onnx.Attribute{attrFloat("epsilon", 1e-3), attrFloat("momentum", 0.8), attrInt("spatial", 1)}},
		}, ref: bnRef(1e-3)},
		{name: "batchnorm_opset9_outputs", opset: 9, shape: []int{2, 3, 2, 2}, inits: bnInits, nodes: []*onnx.Node{
			{Name: "bn", OpType: "BatchNormalization", Inputs: bnIn, Outputs: []string{"y", "mean", "var", "saved_mean", "saved_var"}},
		}, ref: bnRef(1e-5),
			ortOrig: "ONNX Runtime reads a BatchNormalization listing the statistics outputs as training mode (batch statistics); the upgrade makes it the inference form, as the backend reads it"},
	}
}

// upgrade upgrades m to target; with hideShapes, as if the shapes of its inputs and
// outputs were not declared, which the result then gets back.
func upgrade(m *onnx.Model, target int64, hideShapes bool) (*onnx.Model, error) {
	if !hideShapes {
		return onnx.UpgradeOpset(m, target)
	}
	hidden := *m
	g := *m.Graph
	hidden.Graph = &g
	g.Inputs, g.Outputs = nil, nil
	for _, v := range m.Graph.Inputs {
		g.Inputs = append(g.Inputs, &onnx.ValueInfo{Name: v.Name, ElemType: v.ElemType})
	}
	for _, v := range m.Graph.Outputs {
		g.Outputs = append(g.Outputs, &onnx.ValueInfo{Name: v.Name, ElemType: v.ElemType})
	}
	u, err := onnx.UpgradeOpset(&hidden, target)
	if err != nil {
		return nil, err
	}
	u.Graph.Inputs, u.Graph.Outputs = m.Graph.Inputs, m.Graph.Outputs
	return u, nil
}

// TestUpgradedOps upgrades small models that exercise each rewrite to opsets 13 and 17,
// has the ONNX checker check the originals and the results, and compares the outputs of
// the upgraded models with a reference for the old definition, with the original in
// the backend (where it runs the operator) and with the original in ONNX Runtime
// (where it is installed).
func TestUpgradedOps(t *testing.T) {
	tmp := t.TempDir()
	var files []string
	var jobs []ortJob
	type pair struct {
		orig, upgraded string
		want           *npy.Array
		ortOrig        string
	}
	var pairs []pair
	for _, c := range opCases() {
		orig := c.model()
		x := c.input()
		xFile := filepath.Join(tmp, c.name+"_x.npy")
		if err := npy.WriteFile(xFile, x); err != nil {
			t.Fatal(err)
		}
		origFile := filepath.Join(tmp, c.name+".onnx")
		if err := onnx.Write(origFile, orig); err != nil {
			t.Fatal(err)
		}
		files = append(files, origFile)
		origOut := strings.TrimSuffix(origFile, ".onnx") + "_ort.npy"
		jobs = append(jobs, ortJob{origFile, xFile, origOut})

		var want *npy.Array
		if c.ref != nil {
			want = c.ref(x)
		}
		base, baseErr := runBackend(orig, x)
		switch {
		case baseErr != nil:
			why, _, _ := strings.Cut(baseErr.Error(), "; supported ops")
			t.Logf("%s: the backend does not run the original (%s): comparing with the reference and ONNX Runtime only", c.name, why)
		case want != nil:
			if d := maxDiff(base, want); d > torchTolerance {
				t.Errorf("%s: original in the backend: max |diff| %.3g against the reference", c.name, d)
			}
		}
		for _, target := range []int64{13, 17} {
			label := fmt.Sprintf("%s to %d", c.name, target)
			u, err := upgrade(orig, target, c.noShape)
			if err != nil {
				t.Errorf("%s: %v", label, err)
				continue
			}
			p := filepath.Join(tmp, fmt.Sprintf("%s_to%d.onnx", c.name, target))
			if err := onnx.Write(p, u); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
			out := strings.TrimSuffix(p, ".onnx") + "_ort.npy"
			jobs = append(jobs, ortJob{p, xFile, out})
			pairs = append(pairs, pair{origOut, out, want, c.ortOrig})
			if baseErr != nil {
				continue
			}
			got, err := runBackend(mustRead(t, p), x)
			if err != nil {
				t.Errorf("%s: backend: %v", label, err)
				continue
			}
			if d := maxDiff(got, base); d > sameTolerance {
				t.Errorf("%s: backend: max |upgraded - original| %.3g (shapes %v, %v)", label, d, got.Shape, base.Shape)
			}
			if want != nil {
				if d := maxDiff(got, want); d > torchTolerance {
					t.Errorf("%s: backend: max |diff| %.3g against the reference", label, d)
				}
			}
		}
	}
	checkModels(t, files)
	needORT(t)
	runORT(t, jobs)
	for _, p := range pairs {
		got, err := npy.ReadFile(p.upgraded)
		if err != nil {
			t.Errorf("ONNX Runtime did not run %s: %v", filepath.Base(p.upgraded), err)
			continue
		}
		if p.want != nil {
			if d := maxDiff(got, p.want); d > torchTolerance {
				t.Errorf("%s in ONNX Runtime: max |diff| %.3g against the reference", filepath.Base(p.upgraded), d)
			}
		}
		orig, err := npy.ReadFile(p.orig)
		if err != nil {
			t.Errorf("ONNX Runtime did not run %s: %v", filepath.Base(p.orig), err)
			continue
		}
		if p.ortOrig != "" {
			t.Logf("%s: not compared with ONNX Runtime on the original: %s", filepath.Base(p.upgraded), p.ortOrig)
			continue
		}
		if d := maxDiff(got, orig); d > sameTolerance {
			t.Errorf("%s in ONNX Runtime: max |upgraded - original| %.3g (shapes %v, %v)", filepath.Base(p.upgraded), d, got.Shape, orig.Shape)
		}
	}
	t.Logf("ONNX Runtime ran %d models", len(jobs))
}

// nodeTestDir holds the ONNX backend node tests (Debian's libonnx-testdata).
const nodeTestDir = "/usr/share/libonnx-testdata/data/node"

// TestUpgradedNodeTests upgrades the ONNX node tests below opset 13 that use only the
// operators UpgradeOpset handles and take one float input, to opsets 13 and 17, and
// compares the upgraded models' outputs with the tests' expected outputs: in the
// backend where it runs the operator, and in ONNX Runtime where it is installed.
func TestUpgradedNodeTests(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(nodeTestDir, "test_*"))
	if len(dirs) == 0 {
		testref.Missing(t, "no ONNX node tests in %s", nodeTestDir)
	}
	handled := map[string]bool{}
	for _, op := range onnx.UpgradeOpsetOps() {
		handled[op] = true
	}
	tmp := t.TempDir()
	var jobs []ortJob
	want := map[string]*npy.Array{}
	var names []string
	inBackend := 0
	for _, dir := range dirs {
		m, err := onnx.Read(filepath.Join(dir, "model.onnx"))
		if err != nil || m.Opset("") >= 13 || len(m.Graph.RealInputs()) != 1 {
			continue
		}
		ok := true
		for _, n := range m.Graph.Nodes {
			ok = ok && handled[n.OpType] && n.Domain == ""
		}
		in, err1 := onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", "input_0.pb"))
		exp, err2 := onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", "output_0.pb"))
		if !ok || err1 != nil || err2 != nil || in.DataType != onnx.Float || exp.DataType != onnx.Float {
			continue
		}
		name := filepath.Base(dir)
		names = append(names, name)
		x := &npy.Array{Shape: intsOf(in.Dims), Data: in.Floats}
		expected := &npy.Array{Shape: intsOf(exp.Dims), Data: exp.Floats}
		xFile := filepath.Join(tmp, name+"_x.npy")
		if err := npy.WriteFile(xFile, x); err != nil {
			t.Fatal(err)
		}
		_, baseErr := runBackend(m, x)
		for _, target := range []int64{13, 17} {
			label := fmt.Sprintf("%s to %d", name, target)
			u, err := onnx.UpgradeOpset(m, target)
			if err != nil {
				t.Errorf("%s: %v", label, err)
				continue
			}
			p := filepath.Join(tmp, fmt.Sprintf("%s_to%d.onnx", name, target))
			if err := onnx.Write(p, u); err != nil {
				t.Fatal(err)
			}
			out := strings.TrimSuffix(p, ".onnx") + "_ort.npy"
			jobs = append(jobs, ortJob{p, xFile, out})
			want[out] = expected
			if baseErr != nil {
				continue
			}
			got, err := runBackend(u, x)
			if err != nil {
				t.Errorf("%s: the backend runs the original but not the upgraded model: %v", label, err)
				continue
			}
			inBackend++
			if d := maxDiff(got, expected); d > torchTolerance {
				t.Errorf("%s: backend: max |diff| %.3g against the expected output", label, d)
			}
		}
	}
	if len(names) < 30 {
		t.Errorf("only %d node tests below opset 13 with one float input use just the operators handled", len(names))
	}
	t.Logf("%d node tests, %d upgraded models run in the backend", len(names), inBackend)
	needORT(t)
	runORT(t, jobs)
	for _, j := range jobs {
		got, err := npy.ReadFile(j.out)
		if err != nil {
			t.Errorf("ONNX Runtime did not run %s: %v", filepath.Base(j.model), err)
			continue
		}
		if d := maxDiff(got, want[j.out]); d > torchTolerance {
			t.Errorf("%s in ONNX Runtime: max |diff| %.3g against the expected output", filepath.Base(j.model), d)
		}
	}
	t.Logf("ONNX Runtime ran %d upgraded node tests", len(jobs))
}

func intsOf(dims []int64) []int {
	out := make([]int, len(dims))
	for i, d := range dims {
		out[i] = int(d)
	}
	return out
}
