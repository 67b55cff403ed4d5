package onnx

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSummarizeTinyVGG(t *testing.T) {
	facts := readFacts(t, "tiny_vgg")
	m := mustRead(t, testdata("tiny_vgg.onnx"))
	s, err := Summarize(m)
	if err != nil {
		t.Fatal(err)
	}
	if s.TotalParams != facts.Params {
		t.Errorf("total params %d, PyTorch counts %d", s.TotalParams, facts.Params)
	}
	if s.OpCounts["Conv"] != 3 || s.OpCounts["Relu"] != 4 || s.OpCounts["MaxPool"] != 2 || s.OpCounts["Gemm"] != 2 {
		t.Errorf("op counts %v", s.OpCounts)
	}
	if s.Headless || s.HeadlessCut != "/features/features.7/MaxPool_output_0" {
		t.Errorf("headless %v, cut %q", s.Headless, s.HeadlessCut)
	}
	if len(s.Inputs) != 1 || !slices.Equal(s.Inputs[0].Shape, []string{"N", "3", "16", "16"}) || s.Inputs[0].Layout != "NCHW" {
		t.Errorf("inputs %+v", s.Inputs)
	}
	if len(s.Outputs) != 1 || !slices.Equal(s.Outputs[0].Shape, []string{"N", "5"}) {
		t.Errorf("outputs %+v", s.Outputs)
	}
	if len(s.Opsets) != 1 || s.Opsets[0] != (OpsetInfo{"", 13}) || s.Producer != "pytorch" || s.IRVersion != 7 {
		t.Errorf("opsets %v, producer %q, IR %d", s.Opsets, s.Producer, s.IRVersion)
	}
	for _, l := range s.Layers {
		parts := strings.Split(l.Name, "/")
		if len(parts) < 3 {
			continue
		}
		if want, ok := facts.ModuleOutputShapes[parts[len(parts)-2]]; ok {
			w := []string{"N"}
			for _, d := range want[1:] {
				w = append(w, strconv.FormatInt(d, 10))
			}
			if !slices.Equal(l.Shape, w) {
				t.Errorf("layer %s shape %v, PyTorch %v", l.Name, l.Shape, w)
			}
		}
	}
	var text bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"Parameters:  " + thousands(facts.Params), "Conv 3", "/features/features.0/Conv", "[N 4 16 16]", "block1", "classifier", "Input:       input [N 3 16 16] NCHW"} {
		if !strings.Contains(out, want) {
			t.Errorf("text summary lacks %q:\n%s", want, out)
		}
	}
	if _, err := json.Marshal(s); err != nil {
		t.Error(err)
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 20024384: "20,024,384", -1234567: "-1,234,567"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%d) = %s, want %s", v, got, want)
		}
	}
}

func TestLayout(t *testing.T) {
	g := &Graph{}
	for _, c := range []struct {
		shape []Dim
		want  string
	}{
		{[]Dim{{Param: "N"}, {Value: 3}, {Value: 224}, {Value: 224}}, "NCHW"},
		{[]Dim{{Param: "N"}, {Value: 224}, {Value: 224}, {Value: 3}}, "NHWC"},
		{[]Dim{{Param: "N"}, {Value: 28}, {Value: 28}, {Value: 1}}, "NHWC"},
		{[]Dim{{Param: "N"}, {Value: 1}, {Value: 28}, {Value: 28}}, "NCHW"},
		{[]Dim{{Param: "N"}, {Value: 10}}, ""},
	} {
		if got := layout(g, &ValueInfo{Name: "x", Shape: c.shape}); got != c.want {
			t.Errorf("%s: %q, want %q", FormatShape(c.shape), got, c.want)
		}
	}
	g.Nodes = []*Node{{Name: "t", OpType: "Transpose", Inputs: []string{"x"}, Outputs: []string{"y"}, Attributes: []*Attribute{ints("perm", 0, 3, 1, 2)}}}
	if got := layout(g, &ValueInfo{Name: "x", Shape: []Dim{{Value: 1}, {Value: 3}, {Value: 8}, {Value: 8}}}); got != "NHWC" {
		t.Errorf("transposed input: %q", got)
	}
}

// TestVGG19 exports torchvision's VGG19 (architecture only, random weights) with
// PyTorch and checks the import against the architecture: 16 Conv, 16 Relu, 5 MaxPool,
// 20,024,384 parameters in the features, five blocks; and, for the full network,
// the headless cut and the cut base.
func TestVGG19(t *testing.T) {
	if testing.Short() {
		t.Skip("exports VGG19 with PyTorch")
	}
	needPython(t, "torch", "torchvision", "onnx")
	dir := t.TempDir()
	features := filepath.Join(dir, "vgg19-features.onnx")
	runPython(t, `
import sys, torch, torchvision
m = torchvision.models.vgg19().features.eval()
torch.onnx.export(m, torch.randn(1, 3, 224, 224), sys.argv[1], opset_version=13,
    input_names=['input'], output_names=['features'],
    dynamic_axes={'input': {0: 'N'}, 'features': {0: 'N'}})
print(sum(p.numel() for p in m.parameters()))
`, features)
	m := mustRead(t, features)
	s, err := Summarize(m)
	if err != nil {
		t.Fatal(err)
	}
	if s.OpCounts["Conv"] != 16 || s.OpCounts["Relu"] != 16 || s.OpCounts["MaxPool"] != 5 {
		t.Errorf("op counts %v, want 16 Conv, 16 Relu, 5 MaxPool", s.OpCounts)
	}
	if s.TotalParams != 20024384 {
		t.Errorf("parameters %d, want 20,024,384", s.TotalParams)
	}
	if !s.Headless || !slices.Equal(s.Outputs[0].Shape, []string{"N", "512", "7", "7"}) {
		t.Errorf("headless %v, output %v", s.Headless, s.Outputs[0].Shape)
	}
	blocks := Blocks(m)
	convs := []int{2, 2, 4, 4, 4}
	if len(blocks) != 5 {
		t.Fatalf("%d blocks, want 5", len(blocks))
	}
	for i, b := range blocks {
		if b.Name != "block"+strconv.Itoa(i+1) || len(b.Params) != 2*convs[i] {
			t.Errorf("block %d: %s with %d params, want %d", i, b.Name, len(b.Params), 2*convs[i])
		}
	}
	shapes, err := InferShapes(m, map[string][]int64{"input": {1, 3, 224, 224}})
	if err != nil || !slices.Equal(shapes.Dims["features"], []int64{1, 512, 7, 7}) {
		t.Errorf("features %v, %v", shapes.Dims["features"], err)
	}
	back := roundTrip(t, m)
	if s2, _ := Summarize(back); s2.TotalParams != s.TotalParams {
		t.Error("round trip changed the parameter count")
	}

	// torchvision initialises every conv bias to zero, so the exporter keeps a few of
	// them and aliases the rest with Identity nodes; untied, each conv has its own.
	if s.OpCounts["Identity"] == 0 {
		t.Error("the export has no Identity aliases: untying is not exercised")
	}
	nInits := len(m.Graph.Initializers)
	u := UntieInitializers(m)
	us, err := Summarize(u)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"Conv": 16, "Relu": 16, "MaxPool": 5}; !reflect.DeepEqual(us.OpCounts, want) {
		t.Errorf("untied op counts %v, want %v", us.OpCounts, want)
	}
	if us.TotalParams != 20024384 {
		t.Errorf("untied parameters %d, want 20,024,384", us.TotalParams)
	}
	biases := map[string]bool{}
	for _, n := range u.Graph.Nodes {
		if n.OpType != "Conv" {
			continue
		}
		if len(n.Inputs) != 3 || u.Graph.Initializer(n.Inputs[1]) == nil || u.Graph.Initializer(n.Inputs[2]) == nil {
			t.Errorf("conv %s: inputs %v are not all initializers", n.Name, n.Inputs)
			continue
		}
		biases[n.Inputs[2]] = true
	}
	if len(biases) != 16 {
		t.Errorf("%d distinct conv biases, want 16", len(biases))
	}
	var names []string
	for _, init := range u.Graph.Initializers {
		names = append(names, init.Name)
	}
	if len(names) != 32 || names[0] != "0.weight" || names[1] != "0.bias" || names[2] != "2.weight" || names[3] != "2.bias" || names[31] != "34.bias" {
		t.Errorf("untied initializers in the order %v", names)
	}
	for i, b := range Blocks(u) {
		if len(b.Params) != 2*convs[i] {
			t.Errorf("untied block %d: %d params, want %d", i, len(b.Params), 2*convs[i])
		}
	}
	if s, err := InferShapes(u, map[string][]int64{"input": {1, 3, 224, 224}}); err != nil || !slices.Equal(s.Dims["features"], []int64{1, 512, 7, 7}) {
		t.Errorf("untied features %v, %v", s.Dims["features"], err)
	}
	if s2, _ := Summarize(m); !reflect.DeepEqual(s2, s) || len(m.Graph.Initializers) != nInits {
		t.Error("UntieInitializers changed the original")
	}
}
