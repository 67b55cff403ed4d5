package onnx

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// torchFacts are the facts make_testdata.py recorded from PyTorch for an exported module.
type torchFacts struct {
	Params             int64              `json:"params"`
	InputShape         []int64            `json:"input_shape"`
	OutputShape        []int64            `json:"output_shape"`
	ModuleOutputShapes map[string][]int64 `json:"module_output_shapes"`
}

func readFacts(t *testing.T, name string) torchFacts {
	t.Helper()
	data, err := os.ReadFile(testdata(name + ".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f torchFacts
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestInferShapesMatchesPyTorch infers the exported fixtures' shapes for batch 2 and
// compares them with the output shapes PyTorch's modules produced.
func TestInferShapesMatchesPyTorch(t *testing.T) {
	for _, name := range []string{"tiny_vgg", "view_net", "gap_net"} {
		facts := readFacts(t, name)
		m := mustRead(t, testdata(name+".onnx"))
		shapes, err := InferShapes(m, map[string][]int64{"input": facts.InputShape})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := shapes.Dims["output"]; !slices.Equal(got, facts.OutputShape) {
			t.Errorf("%s: output %v, PyTorch %v", name, got, facts.OutputShape)
		}
		matched := 0
		for _, n := range m.Graph.Nodes {
			parts := strings.Split(n.Name, "/")
			if len(parts) < 3 {
				continue
			}
			want, ok := facts.ModuleOutputShapes[parts[len(parts)-2]]
			if !ok {
				continue
			}
			matched++
			if got := shapes.Dims[n.Outputs[0]]; !slices.Equal(got, want) {
				t.Errorf("%s: node %s: %v, PyTorch module %v", name, n.Name, got, want)
			}
		}
		if matched < 2 {
			t.Errorf("%s: only %d nodes matched a PyTorch module", name, matched)
		}
	}
}

// TestFoldFlattenChain checks that the Shape -> Gather -> Unsqueeze -> Concat chain of
// a PyTorch view(x.size(0), -1) folds into a constant target shape for the Reshape.
func TestFoldFlattenChain(t *testing.T) {
	m := mustRead(t, testdata("view_net.onnx"))
	for _, batch := range []int64{1, 5} {
		shapes, err := InferShapes(m, map[string][]int64{"input": {batch, 3, 16, 16}})
		if err != nil {
			t.Fatal(err)
		}
		var reshape *Node
		for _, n := range m.Graph.Nodes {
			if n.OpType == "Reshape" {
				reshape = n
			}
		}
		target := shapes.Consts[reshape.Inputs[1]]
		if target == nil || !slices.Equal(target.Ints, []int64{batch, -1}) || target.DataType != Int64 {
			t.Fatalf("batch %d: Reshape target %+v, want [%d -1]", batch, target, batch)
		}
		if got := shapes.Dims[reshape.Outputs[0]]; !slices.Equal(got, []int64{batch, 64}) {
			t.Errorf("batch %d: Reshape output %v", batch, got)
		}
		if _, ok := shapes.Consts[reshape.Outputs[0]]; ok {
			t.Error("the Reshape of a feature map was folded")
		}
	}
}

func TestInferShapesErrors(t *testing.T) {
	for _, c := range []struct {
		file   string
		inputs map[string][]int64
		want   string
	}{
		{"unknown_op.onnx", map[string][]int64{"x": {2, 4}}, `node "weird" (Einsum): operator Einsum is not supported by shape inference`},
		{"gemm_mismatch.onnx", map[string][]int64{"x": {8, 4}}, `node "Gemm_12" (Gemm): A is [8 4], B is [5 3]: inner dimensions 4 and 5 differ`},
		{"tiny_vgg.onnx", nil, `infer shapes: input "input": declared shape [N 3 16 16] is not fixed: give a concrete shape`},
		{"tiny_vgg.onnx", map[string][]int64{"input": {2, 3, 16}}, `infer shapes: input "input": shape [2 3 16] has rank 3, the model declares [N 3 16 16]`},
		{"tiny_vgg.onnx", map[string][]int64{"input": {2, 3, 32, 32}}, `infer shapes: input "input": shape [2 3 32 32] does not fit the declared [N 3 16 16]`},
		{"tiny_vgg.onnx", map[string][]int64{"input": {2, 3, 16, 16}, "features.0.weight": {1}}, `infer shapes: "features.0.weight" is not a graph input fed by the caller`},
	} {
		_, err := InferShapes(mustRead(t, testdata(c.file)), c.inputs)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: got %v\nwant %s", c.file, err, c.want)
		}
	}
	// A Conv whose weight does not fit the input's channels.
	m := mustRead(t, testdata("tiny_vgg.onnx"))
	m.Graph.Inputs[0].Shape[1] = Dim{Param: "C"}
	_, err := InferShapes(m, map[string][]int64{"input": {2, 5, 16, 16}})
	want := `node "/features/features.0/Conv" (Conv): X is [2 5 16 16] with 5 channels, W is [4 3 3 3] and expects 3 (group 1)`
	if err == nil || err.Error() != want {
		t.Errorf("conv mismatch: got %v\nwant %s", err, want)
	}
}

func node(op string, attrs ...*Attribute) *Node {
	return &Node{Name: op + "_1", OpType: op, Attributes: attrs}
}

func ints(name string, v ...int64) *Attribute {
	return &Attribute{Name: name, Type: AttrInts, Ints: v}
}

func str(name, v string) *Attribute { return &Attribute{Name: name, Type: AttrString, String: v} }

func intAttr(name string, v int64) *Attribute { return &Attribute{Name: name, Type: AttrInt, Int: v} }

// TestWindows checks ConvWindow and PoolWindow against sizes PyTorch's and the ONNX
// specification's formulas give (the node tests cover the same rules end to end).
func TestWindows(t *testing.T) {
	for _, c := range []struct {
		name string
		n    *Node
		x    []int64
		w    []int64
		want Window2D
	}{
		{"vgg conv", node("Conv", ints("kernel_shape", 3, 3), ints("pads", 1, 1, 1, 1)), []int64{1, 3, 224, 224}, []int64{64, 3, 3, 3},
			Window2D{Kernel: [2]int{3, 3}, Strides: [2]int{1, 1}, Dilations: [2]int{1, 1}, PadBegin: [2]int{1, 1}, PadEnd: [2]int{1, 1}, Out: [2]int{224, 224}}},
		// torch.nn.Conv2d(3, 8, 3, stride=2, padding=1) on 20x20 gives 10x10.
		{"strided conv", node("Conv", ints("strides", 2, 2), ints("pads", 1, 1, 1, 1)), []int64{1, 3, 20, 20}, []int64{8, 3, 3, 3},
			Window2D{Kernel: [2]int{3, 3}, Strides: [2]int{2, 2}, Dilations: [2]int{1, 1}, PadBegin: [2]int{1, 1}, PadEnd: [2]int{1, 1}, Out: [2]int{10, 10}}},
		// SAME_LOWER, height 5, kernel 3, stride 2: out ceil(5/2) = 3, total pad
		// 2*2+3-5 = 2: 1 before, 1 after. Width 6, kernel 4, stride 1: out 6, total pad
		// 3: SAME_LOWER puts the extra one first: 2 before, 1 after.
		{"same", node("Conv", str("auto_pad", "SAME_LOWER"), ints("strides", 2, 1)), []int64{1, 1, 5, 6}, []int64{1, 1, 3, 4},
			Window2D{Kernel: [2]int{3, 4}, Strides: [2]int{2, 1}, Dilations: [2]int{1, 1}, PadBegin: [2]int{1, 2}, PadEnd: [2]int{1, 1}, Out: [2]int{3, 6}}},
		{"dilated valid", node("Conv", str("auto_pad", "VALID"), ints("dilations", 2, 2)), []int64{1, 1, 7, 7}, []int64{1, 1, 3, 3},
			Window2D{Kernel: [2]int{3, 3}, Strides: [2]int{1, 1}, Dilations: [2]int{2, 2}, Out: [2]int{3, 3}}},
	} {
		got, err := ConvWindow(c.n, c.x, c.w)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v\nwant %+v", c.name, got, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		n    *Node
		x    []int64
		want Window2D
	}{
		// torch.nn.MaxPool2d(2, 2, ceil_mode=True) on 7x7 gives 4x4.
		{"ceil", node("MaxPool", ints("kernel_shape", 2, 2), ints("strides", 2, 2), intAttr("ceil_mode", 1)), []int64{1, 1, 7, 7},
			Window2D{Kernel: [2]int{2, 2}, Strides: [2]int{2, 2}, Dilations: [2]int{1, 1}, Out: [2]int{4, 4}, CeilMode: true}},
		// Kernel 3, stride 2, pad 1, ceil. On 6: ceil((6+2-3)/2)+1 = 4, and the last
		// window starts at 3*2 = 6 < 6+1, inside the input: 4. On 5: ceil(4/2)+1 = 3,
		// last start 4 < 5+1: 3.
		{"ceil padded", node("AveragePool", ints("kernel_shape", 3, 3), ints("strides", 2, 2), ints("pads", 1, 1, 1, 1), intAttr("ceil_mode", 1), intAttr("count_include_pad", 1)),
			[]int64{1, 1, 6, 5},
			Window2D{Kernel: [2]int{3, 3}, Strides: [2]int{2, 2}, Dilations: [2]int{1, 1}, PadBegin: [2]int{1, 1}, PadEnd: [2]int{1, 1}, Out: [2]int{4, 3}, CeilMode: true, CountIncludePad: true}},
		// PyTorch drops a last window starting in the right padding: kernel 2, stride
		// 2, pad 1 on 4 with ceil: ceil((4+2-2)/2)+1 = 3, start 4 < 4+1: 3. On 3:
		// ceil((3+2-2)/2)+1 = 3, start 4 >= 3+1: 2.
		{"ceil drop", node("MaxPool", ints("kernel_shape", 2, 2), ints("strides", 2, 2), ints("pads", 1, 1, 1, 1), intAttr("ceil_mode", 1)), []int64{1, 1, 4, 3},
			Window2D{Kernel: [2]int{2, 2}, Strides: [2]int{2, 2}, Dilations: [2]int{1, 1}, PadBegin: [2]int{1, 1}, PadEnd: [2]int{1, 1}, Out: [2]int{3, 2}, CeilMode: true}},
		{"asymmetric", node("MaxPool", ints("kernel_shape", 3, 3), ints("pads", 0, 1, 2, 0)), []int64{1, 1, 5, 5},
			Window2D{Kernel: [2]int{3, 3}, Strides: [2]int{1, 1}, Dilations: [2]int{1, 1}, PadBegin: [2]int{0, 1}, PadEnd: [2]int{2, 0}, Out: [2]int{5, 4}}},
	} {
		got, err := PoolWindow(c.n, c.x)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v\nwant %+v", c.name, got, err, c.want)
		}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{func() error {
			_, err := PoolWindow(node("MaxPool", ints("kernel_shape", 2)), []int64{1, 1, 8})
			return err
		}(),
			`node "MaxPool_1" (MaxPool): only 2-D spatial pooling (4-D NCHW input) is supported, input is [1 1 8]`},
		{func() error {
			_, err := ConvWindow(node("Conv"), []int64{1, 1, 4, 4, 4}, []int64{1, 1, 3, 3, 3})
			return err
		}(), `node "Conv_1" (Conv): only 2-D spatial convolutions (4-D NCHW input) are supported, input is [1 1 4 4 4]`},
		{func() error {
			_, err := PoolWindow(node("MaxPool", ints("kernel_shape", 5, 5)), []int64{1, 1, 4, 4})
			return err
		}(),
			`node "MaxPool_1" (MaxPool): window 5 (kernel 5, dilation 1) is larger than the padded input 4 on spatial axis 0`},
		{func() error { _, err := PoolWindow(node("MaxPool"), []int64{1, 1, 4, 4}); return err }(),
			`node "MaxPool_1" (MaxPool): kernel_shape attribute missing`},
		{func() error {
			_, err := PoolWindow(node("MaxPool", ints("kernel_shape", 2, 2), str("auto_pad", "SAME")), []int64{1, 1, 4, 4})
			return err
		}(), `node "MaxPool_1" (MaxPool): auto_pad "SAME": want NOTSET, VALID, SAME_UPPER or SAME_LOWER`},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("got %v\nwant %s", c.err, c.want)
		}
	}
}
