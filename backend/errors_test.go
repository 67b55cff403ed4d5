package backend

import (
	"fmt"
	"strings"
	"testing"

	"toolkit/onnx"
)

func tinyModel(nodes []*onnx.Node, inits []*onnx.Tensor, in []int64) *onnx.Model {
	dims := make([]onnx.Dim, len(in))
	for i, d := range in {
		dims[i] = onnx.Dim{Value: d}
	}
	return &onnx.Model{
		IRVersion:    7,
		OpsetImports: []onnx.OpsetImport{{Version: 13}},
		Graph: &onnx.Graph{
			Name:         "tiny",
			Nodes:        nodes,
			Initializers: inits,
			Inputs:       []*onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: dims, HasShape: true}},
			Outputs:      []*onnx.ValueInfo{{Name: "y", ElemType: onnx.Float}},
		},
	}
}

func TestUnsupportedOpsAreNamedAtImport(t *testing.T) {
	m := tinyModel([]*onnx.Node{
		{Name: "a", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"r"}},
		{Name: "rnn", OpType: "LSTM", Inputs: []string{"r"}, Outputs: []string{"l"}},
		{Name: "b", OpType: "Einsum", Inputs: []string{"l"}, Outputs: []string{"y"}},
	}, nil, []int64{1, 4})
	_, err := NewModel(m)
	if err == nil {
		t.Fatal("no error for LSTM and Einsum")
	}
	for _, want := range []string{`LSTM (1): "rnn"`, `Einsum (1): "b"`, "2 node(s) use 2 op(s)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestShapeMismatchNamesTheNode(t *testing.T) {
	w := &onnx.Tensor{Name: "w", DataType: onnx.Float, Dims: []int64{5, 3}, Floats: make([]float32, 15)}
	m := tinyModel([]*onnx.Node{
		{Name: "fc", OpType: "Gemm", Inputs: []string{"x", "w"}, Outputs: []string{"y"}},
	}, []*onnx.Tensor{w}, []int64{2, 4})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bm.Program(Options{Batch: 2})
	if err == nil || !strings.Contains(err.Error(), `"fc"`) || !strings.Contains(err.Error(), "Gemm") {
		t.Errorf("got %v, want an error naming node fc (Gemm)", err)
	}
}

func TestGroupedConvolutionMismatchIsNamed(t *testing.T) {
	for _, tc := range []struct {
		w     []int64
		group int64
		want  string
	}{
		{[]int64{4, 3, 3, 3}, 2, "X is [1 4 8 8] with 4 channels, W is [4 3 3 3] and expects 6 (group 2)"},
		{[]int64{6, 2, 3, 3}, 2, ""}, // fine: 4 = 2 x 2 inputs, 6 outputs in 2 groups
		{[]int64{5, 2, 3, 3}, 2, "group 2 does not divide X's 4 channels and W's 5 filters"},
		{[]int64{4, 1, 3, 3}, 4, ""}, // depthwise
	} {
		n := int(tc.w[0] * tc.w[1] * tc.w[2] * tc.w[3])
		w := &onnx.Tensor{Name: "w", DataType: onnx.Float, Dims: tc.w, Floats: make([]float32, n)}
		m := tinyModel([]*onnx.Node{{
			Name: "dw", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"y"},
			Attributes: []*onnx.Attribute{{Name: "group", Type: onnx.AttrInt, Int: tc.group}},
		}}, []*onnx.Tensor{w}, []int64{1, 4, 8, 8})
		bm, err := NewModel(m)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bm.Program(Options{Batch: 1})
		if tc.want == "" {
			if err != nil {
				t.Errorf("W %v group %d: %v", tc.w, tc.group, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"dw"`) {
			t.Errorf("W %v group %d: got %v, want %q naming the node", tc.w, tc.group, err, tc.want)
		}
	}
}

func TestRunChecksInputSizes(t *testing.T) {
	m := tinyModel([]*onnx.Node{{Name: "r", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}}, nil, []int64{2, 3})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bm.Program(Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run([][]float32{make([]float32, 5)}, nil); err == nil || !strings.Contains(err.Error(), "want 6") {
		t.Errorf("got %v", err)
	}
	if err := p.Run(nil, nil); err == nil {
		t.Error("no error for a missing input")
	}
}

// TestComputedFromAWeightIsTrained checks that what is computed from a parameter alone
// (a Reshape and an Unsqueeze of a weight, which shape inference could fold into a
// constant) stays computed in the program, so that the weight gets its gradient:
// against finite differences, in float64.
func TestComputedFromAWeightIsTrained(t *testing.T) {
	w := &onnx.Tensor{Name: "w", DataType: onnx.Float, Dims: []int64{12}, Floats: make([]float32, 12)}
	for i := range w.Floats {
		w.Floats[i] = float32(i%5) - 2
	}
	shape := &onnx.Tensor{Name: "shape", DataType: onnx.Int64, Dims: []int64{2}, Ints: []int64{4, 3}}
	axes := &onnx.Tensor{Name: "axes", DataType: onnx.Int64, Dims: []int64{1}, Ints: []int64{0}}
	m := tinyModel([]*onnx.Node{
		{Name: "r", OpType: "Reshape", Inputs: []string{"w", "shape"}, Outputs: []string{"w2"}},
		{Name: "u", OpType: "Unsqueeze", Inputs: []string{"w2", "axes"}, Outputs: []string{"w3"}},
		{Name: "mm", OpType: "MatMul", Inputs: []string{"x", "w3"}, Outputs: []string{"y"}},
	}, []*onnx.Tensor{w, shape, axes}, []int64{2, 4})
	m.Graph.Inputs[0].Shape = []onnx.Dim{{Value: 1}, {Value: 2}, {Value: 4}}
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := bm.TrainableNames(); len(got) != 1 || got[0] != "w" {
		t.Fatalf("trainable %v, want [w]", got)
	}
	x := &onnx.Tensor{Name: "x", DataType: onnx.Float, Dims: []int64{1, 2, 4}, Floats: []float32{1, -2, 0.5, 3, -1, 2, 0.25, -0.5}}
	checkGradients(t, bm, &prepared{model: m, inputs: map[string]*onnx.Tensor{"x": x}})
}

// TestEveryUnsupportedNodeIsNamed checks that the refusal names every node of an op the
// backend lacks, however many there are.
func TestEveryUnsupportedNodeIsNamed(t *testing.T) {
	var nodes []*onnx.Node
	in := "x"
	for i := 0; i < 30; i++ {
		out := fmt.Sprintf("t%d", i)
		if i == 29 {
			out = "y"
		}
		nodes = append(nodes, &onnx.Node{Name: fmt.Sprintf("rnn%d", i), OpType: "LSTM", Inputs: []string{in}, Outputs: []string{out}})
		in = out
	}
	_, err := NewModel(tinyModel(nodes, nil, []int64{1, 4}))
	if err == nil {
		t.Fatal("no error")
	}
	for i := 0; i < 30; i++ {
		if !strings.Contains(err.Error(), fmt.Sprintf(`"rnn%d"`, i)) {
			t.Errorf("the error does not name node rnn%d: %v", i, err)
		}
	}
	if !strings.Contains(err.Error(), "LSTM (30): ") {
		t.Errorf("error %v", err)
	}
}

// TestMultiOutputAndGeluGradients checks against finite differences, in float64, two
// ops no ONNX node test differentiates: Split, whose every output sends a gradient back
// to its input (the node tests take the loss of the first output only), and Gelu (ONNX
// opset 20, no node tests in onnx 1.12), both of its approximations.
func TestMultiOutputAndGeluGradients(t *testing.T) {
	scale := func(name string, v float32) *onnx.Tensor {
		return &onnx.Tensor{Name: name, DataType: onnx.Float, Dims: []int64{1}, Floats: []float32{v}}
	}
	split := &onnx.Tensor{Name: "split", DataType: onnx.Int64, Dims: []int64{3}, Ints: []int64{1, 2, 3}}
	m := tinyModel([]*onnx.Node{
		{Name: "s", OpType: "Split", Inputs: []string{"x", "split"}, Outputs: []string{"a", "b", "c"},
			Attributes: []*onnx.Attribute{{Name: "axis", Type: onnx.AttrInt, Int: 1}}},
		{Name: "ga", OpType: "Gelu", Inputs: []string{"a"}, Outputs: []string{"a2"}},
		{Name: "gb", OpType: "Gelu", Inputs: []string{"b"}, Outputs: []string{"b2"},
			Attributes: []*onnx.Attribute{{Name: "approximate", Type: onnx.AttrString, String: "tanh"}}},
		{Name: "mc", OpType: "Mul", Inputs: []string{"c", "k"}, Outputs: []string{"c2"}},
		{Name: "cat", OpType: "Concat", Inputs: []string{"c2", "a2", "b2"}, Outputs: []string{"y"},
			Attributes: []*onnx.Attribute{{Name: "axis", Type: onnx.AttrInt, Int: 1}}},
	}, []*onnx.Tensor{split, scale("k", -1.5)}, []int64{2, 6})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	x := &onnx.Tensor{Name: "x", DataType: onnx.Float, Dims: []int64{2, 6},
		Floats: []float32{-2.5, -1, -0.3, 0.2, 0.9, 2.2, 1.7, -0.6, 0.4, -1.9, 3.1, -0.05}}
	checkGradients(t, bm, &prepared{model: m, inputs: map[string]*onnx.Tensor{"x": x}})
}
