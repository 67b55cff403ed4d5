package onnx

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestHeadlessCut(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		// torch.flatten after the last MaxPool.
		{"tiny_vgg.onnx", "/features/features.7/MaxPool_output_0"},
		// x.view(x.size(0), -1) after a ceil-mode average pool, exported as Pad and
		// AveragePool: the pooling is the first classifier op after the last Conv.
		{"view_net.onnx", "/Relu_output_0"},
		// ResNet-like: the GlobalAveragePool's input.
		{"gap_net.onnx", "/Relu_1_output_0"},
	} {
		m := mustRead(t, testdata(c.file))
		got, err := HeadlessCut(m)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.file, got, err, c.want)
		}
		if IsHeadless(m) {
			t.Errorf("%s: full model reported headless", c.file)
		}
		base, err := Cut(m, got)
		if err != nil {
			t.Fatal(err)
		}
		if !IsHeadless(base) {
			t.Errorf("%s: base not headless", c.file)
		}
		if _, err := HeadlessCut(base); !errors.Is(err, ErrHeadless) {
			t.Errorf("%s: HeadlessCut of the base: %v", c.file, err)
		}
	}
	m := mustRead(t, testdata("unsorted.onnx"))
	if _, err := HeadlessCut(m); err == nil || err.Error() != "headless cut: the model has no Conv layer" {
		t.Errorf("no conv: %v", err)
	}
}

func TestCut(t *testing.T) {
	m := mustRead(t, testdata("tiny_vgg.onnx"))
	facts := readFacts(t, "tiny_vgg")
	nodes := len(m.Graph.Nodes)
	base, err := Cut(m, "/features/features.7/MaxPool")
	if err != nil {
		t.Fatal(err)
	}
	g := base.Graph
	if len(g.Outputs) != 1 || g.Outputs[0].Name != "/features/features.7/MaxPool_output_0" {
		t.Fatalf("outputs %+v", g.Outputs)
	}
	// The output shape: PyTorch's for the last pooling module, batch symbolic as "N".
	want := facts.ModuleOutputShapes["features.7"]
	out := g.Outputs[0]
	if !out.HasShape || out.ElemType != Float || FormatShape(out.Shape) != FormatShape([]Dim{{Param: "N"}, {Value: want[1]}, {Value: want[2]}, {Value: want[3]}}) {
		t.Errorf("output %s %s, want [N %v]", out.ElemType, FormatShape(out.Shape), want[1:])
	}
	for _, n := range g.Nodes {
		if n.OpType == "Gemm" || n.OpType == "Flatten" {
			t.Errorf("cut kept classifier node %s", n.Name)
		}
	}
	for _, init := range g.Initializers {
		if strings.HasPrefix(init.Name, "classifier") {
			t.Errorf("cut kept initializer %s", init.Name)
		}
	}
	if len(g.Initializers) != 6 || base.Opset("") != 13 || base.ProducerName != "pytorch" {
		t.Errorf("%d initializers, opset %d, producer %q", len(g.Initializers), base.Opset(""), base.ProducerName)
	}
	// Cutting by tensor name gives the same model.
	byTensor, err := Cut(m, "/features/features.7/MaxPool_output_0")
	if err != nil || len(byTensor.Graph.Nodes) != len(g.Nodes) {
		t.Errorf("cut by tensor: %v", err)
	}
	// The original is untouched.
	if len(m.Graph.Nodes) != nodes || m.Graph.Outputs[0].Name != "output" {
		t.Errorf("Cut changed the original: %d nodes", len(m.Graph.Nodes))
	}
	// The cut model survives a round trip and still infers.
	back := roundTrip(t, base)
	shapes, err := InferShapes(back, map[string][]int64{"input": {2, 3, 16, 16}})
	if err != nil || !slices.Equal(shapes.Dims[out.Name], want) {
		t.Errorf("inferred %v, %v; PyTorch %v", shapes.Dims[out.Name], err, want)
	}
	_, err = Cut(m, "/features/features.3/Rellu")
	wantErr := `cut: "/features/features.3/Rellu" is neither a node nor a tensor a node produces; nearest node names: "/features/features.3/Relu", "/features/features.1/Relu", "/features/features.6/Relu", "/features/features.0/Conv", "/features/features.2/Conv"`
	if err == nil || err.Error() != wantErr {
		t.Errorf("unknown name: %v\nwant %s", err, wantErr)
	}
}

func TestBlocks(t *testing.T) {
	m := mustRead(t, testdata("tiny_vgg.onnx"))
	blocks := Blocks(m)
	var names []string
	for _, b := range blocks {
		names = append(names, b.Name)
	}
	if !slices.Equal(names, []string{"block1", "block2", "classifier"}) {
		t.Fatalf("blocks %v", names)
	}
	if want := []string{"features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias"}; !slices.Equal(blocks[0].Params, want) {
		t.Errorf("block1 params %v, want %v", blocks[0].Params, want)
	}
	if want := []string{"features.5.weight", "features.5.bias"}; !slices.Equal(blocks[1].Params, want) {
		t.Errorf("block2 params %v, want %v", blocks[1].Params, want)
	}
	if want := []string{"classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias"}; !slices.Equal(blocks[2].Params, want) {
		t.Errorf("classifier params %v, want %v", blocks[2].Params, want)
	}
	// The MaxPool halves the resolution: it begins block2 (its output's resolution).
	if blocks[1].Nodes[0] != "/features/features.4/MaxPool" {
		t.Errorf("block2 starts at %s", blocks[1].Nodes[0])
	}
	total := 0
	for _, b := range blocks {
		total += len(b.Nodes)
	}
	if total != len(m.Graph.Nodes) {
		t.Errorf("blocks hold %d nodes, the graph %d", total, len(m.Graph.Nodes))
	}
	// conv1, MaxPool, a residual conv2: the pooling halves the resolution and begins
	// the second stage; the stages are named after their modules.
	m = mustRead(t, testdata("gap_net.onnx"))
	cut, _ := HeadlessCut(m)
	base, err := Cut(m, cut)
	if err != nil {
		t.Fatal(err)
	}
	blocks = Blocks(base)
	if len(blocks) != 2 || blocks[0].Name != "conv1" || blocks[1].Name != "conv2" ||
		!slices.Equal(blocks[1].Params, []string{"conv2.weight", "conv2.bias"}) || blocks[1].Nodes[0] != "/MaxPool" {
		t.Errorf("gap_net base blocks %+v", blocks)
	}
}
