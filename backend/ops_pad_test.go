package backend

import (
	"path/filepath"
	"slices"
	"testing"

	"toolkit/npy"
	"toolkit/onnx"
)

// padDir holds PyTorch's float fixtures of Pad's edge and reflect modes, made by
// tools/make_pad_fixtures.py in the layout of testdata/parity.
const padDir = "../testdata/pad"

// TestPadPyTorch checks Pad's edge and reflect modes on float data against PyTorch
// (F.pad "replicate" and "reflect", 1-D and 2-D, edge pads larger than the input, and
// pads between convolutions), exported at opset 9 (pads attribute) and 13 (pads input
// computed by shape arithmetic): the outputs and the gradients of sum(output * R) with
// respect to the input and the parameters, then, in float64, against finite differences.
func TestPadPyTorch(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(padDir, "*_opset*"))
	if len(dirs) < 10 {
		t.Fatalf("%d Pad fixtures under %s, want 10 (regenerate with /usr/bin/python3 tools/make_pad_fixtures.py)", len(dirs), padDir)
	}
	modes := map[string]int{}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			checkTorchFixture(t, dir, true, func(string, float64) {})

			ir, err := onnx.Read(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range ir.Graph.Nodes {
				if n.OpType == "Pad" {
					modes[n.AttrString("mode", "constant")]++
				}
			}
			m, err := NewModel(ir)
			if err != nil {
				t.Fatal(err)
			}
			x := readNPY(t, filepath.Join(dir, "input.npy"))
			checkGradients(t, m, &prepared{model: ir, inputs: map[string]*onnx.Tensor{m.Inputs()[0].Name: floatTensor(x)}})
		})
	}
	if modes["edge"] == 0 || modes["reflect"] == 0 || modes["constant"] != 0 {
		t.Errorf("Pad modes in the fixtures: %v, want edge and reflect only", modes)
	}
}

// TestPadNodeTestsAsFloat runs ONNX's own edge and reflect node tests (int32 data, which
// the backend does not compute on) with their data converted to float: the values are
// small integers, exact in float32, so the outputs must match exactly. The gradients are
// checked against finite differences.
func TestPadNodeTestsAsFloat(t *testing.T) {
	tests := loadNodeTests(t)
	for _, name := range []string{"test_edge_pad", "test_reflect_pad"} {
		t.Run(name, func(t *testing.T) {
			nt, ok := tests[name]
			if !ok || nt.readErr != nil {
				t.Fatalf("node test %s is missing or unreadable (%v)", name, nt.readErr)
			}
			p, err := prepare(nt, filepath.Join(nt.dir, "test_data_set_0"))
			if err != nil {
				t.Fatal(err)
			}
			// prepare made the int32 data an initializer: make it a float graph input.
			g := p.model.Graph
			in := *nt.model.Graph.Inputs[0]
			at := slices.IndexFunc(g.Initializers, func(x *onnx.Tensor) bool { return x.Name == in.Name })
			if at < 0 || g.Initializers[at].DataType != onnx.Int32 {
				t.Fatalf("input %q: want INT32 data", in.Name)
			}
			x := g.Initializers[at]
			g.Initializers = slices.Delete(g.Initializers, at, at+1)
			in.ElemType = onnx.Float
			g.Inputs = append([]*onnx.ValueInfo{&in}, g.Inputs...)
			out := *g.Outputs[0]
			out.ElemType = onnx.Float
			g.Outputs = []*onnx.ValueInfo{&out}
			p.inputs[in.Name] = &onnx.Tensor{Name: in.Name, DataType: onnx.Float, Dims: x.Dims, Floats: floatsOf(x.Ints)}
			want := floatsOf(p.outputs[0].Ints)

			m, err := NewModel(p.model)
			if err != nil {
				t.Fatal(err)
			}
			prog, err := m.Program(p.options())
			if err != nil {
				t.Fatal(err)
			}
			if err := prog.Run(p.orderedInputs(m), nil); err != nil {
				t.Fatal(err)
			}
			if got := prog.OutputShape(0); !slices.Equal(got, intsOf(p.outputs[0].Dims)) {
				t.Fatalf("output shape %v, want %v", got, p.outputs[0].Dims)
			}
			if got := prog.Output(0); !slices.Equal(got, want) {
				t.Errorf("output %v, want %v", got, want)
			}
			checkGradients(t, m, p)
		})
	}
}

func floatTensor(a *npy.Array) *onnx.Tensor {
	dims := make([]int64, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = int64(d)
	}
	return &onnx.Tensor{DataType: onnx.Float, Dims: dims, Floats: a.Data}
}

func floatsOf(ints []int64) []float32 {
	out := make([]float32, len(ints))
	for i, v := range ints {
		out[i] = float32(v)
	}
	return out
}
