package backend

import (
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
		{Name: "b", OpType: "Erf", Inputs: []string{"l"}, Outputs: []string{"y"}},
	}, nil, []int64{1, 4})
	_, err := NewModel(m)
	if err == nil {
		t.Fatal("no error for LSTM and Erf")
	}
	for _, want := range []string{`"rnn" (LSTM)`, `"b" (Erf)`, "2 node(s)"} {
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

func TestGroupedConvolutionIsRejectedClearly(t *testing.T) {
	w := &onnx.Tensor{Name: "w", DataType: onnx.Float, Dims: []int64{4, 2, 3, 3}, Floats: make([]float32, 72)}
	m := tinyModel([]*onnx.Node{{
		Name: "dw", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"y"},
		Attributes: []*onnx.Attribute{{Name: "group", Type: onnx.AttrInt, Int: 2}},
	}}, []*onnx.Tensor{w}, []int64{1, 4, 8, 8})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bm.Program(Options{Batch: 1})
	if err == nil || !strings.Contains(err.Error(), "group=2 is not supported") || !strings.Contains(err.Error(), `"dw"`) {
		t.Errorf("got %v", err)
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
