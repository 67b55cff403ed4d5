package onnx

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
)

func floatInit(name string, v ...float32) *Tensor {
	return &Tensor{Name: name, DataType: Float, Dims: []int64{int64(len(v))}, Floats: v}
}

func floatInput(name string, dims ...int64) *ValueInfo {
	v := &ValueInfo{Name: name, ElemType: Float, HasShape: true}
	for _, d := range dims {
		v.Shape = append(v.Shape, Dim{Value: d})
	}
	return v
}

// tiedModel is what PyTorch writes for two layers with bit-identical biases: the
// second bias is an Identity of the first, and a third is an Identity of that.
func tiedModel() *Model {
	return &Model{
		IRVersion:    7,
		OpsetImports: []OpsetImport{{Version: 13}},
		Graph: &Graph{
			Name: "tied",
			Nodes: []*Node{
				{Name: "alias_b2", OpType: "Identity", Inputs: []string{"b1"}, Outputs: []string{"b2"}},
				{Name: "alias_b3", OpType: "Identity", Inputs: []string{"b2"}, Outputs: []string{"b3"}},
				{Name: "alias_out", OpType: "Identity", Inputs: []string{"b1"}, Outputs: []string{"bias_out"}},
				{Name: "copy_x", OpType: "Identity", Inputs: []string{"x"}, Outputs: []string{"x2"}},
				{Name: "add1", OpType: "Add", Inputs: []string{"x2", "b1"}, Outputs: []string{"h1"}},
				{Name: "mul2", OpType: "Mul", Inputs: []string{"h1", "w2"}, Outputs: []string{"h2"}},
				{Name: "add2", OpType: "Add", Inputs: []string{"h2", "b2"}, Outputs: []string{"h3"}},
				{Name: "add3", OpType: "Add", Inputs: []string{"h3", "b3"}, Outputs: []string{"y"}},
			},
			Initializers: []*Tensor{floatInit("b1", 0, 0, 0), floatInit("w2", 1, 2, 3)},
			Inputs:       []*ValueInfo{floatInput("x", 2, 3)},
			Outputs:      []*ValueInfo{floatInput("y", 2, 3), floatInput("bias_out", 3)},
			ValueInfo:    []*ValueInfo{floatInput("b2", 3), floatInput("h1", 2, 3)},
		},
	}
}

func TestUntieInitializers(t *testing.T) {
	m := tiedModel()
	before, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	u := UntieInitializers(m)
	if after, _ := Encode(m); !bytes.Equal(before, after) {
		t.Error("UntieInitializers changed its argument")
	}
	var ops []string
	for _, n := range u.Graph.Nodes {
		ops = append(ops, n.Name)
	}
	// alias_out stays (its output is a graph output), copy_x stays (x is no initializer).
	if want := []string{"alias_out", "copy_x", "add1", "mul2", "add2", "add3"}; !slices.Equal(ops, want) {
		t.Errorf("nodes %v, want %v", ops, want)
	}
	var names []string
	for _, init := range u.Graph.Initializers {
		names = append(names, init.Name)
	}
	// No initializer comes before b2 and b3 among the inputs of their first consumers
	// (add2, add3): they go last, in node order.
	if want := []string{"b1", "w2", "b2", "b3"}; !slices.Equal(names, want) {
		t.Errorf("initializers %v, want %v", names, want)
	}
	b1, b2, b3 := u.Graph.Initializer("b1"), u.Graph.Initializer("b2"), u.Graph.Initializer("b3")
	if b1 != m.Graph.Initializers[0] {
		t.Error("the kept initializer is not shared with the original")
	}
	if !reflect.DeepEqual(b2.Floats, b1.Floats) || !reflect.DeepEqual(b3.Floats, b1.Floats) || !slices.Equal(b2.Dims, b1.Dims) {
		t.Errorf("copies %v %v of %v", b2, b3, b1)
	}
	b2.Floats[0] = 5
	if b1.Floats[0] != 0 || b3.Floats[0] != 0 {
		t.Error("the copies share their values")
	}
	if v := u.Graph.ValueInfoOf("b2"); v != nil {
		t.Error("value info of the new initializer b2 kept")
	}
	if u.Graph.ValueInfoOf("h1") == nil {
		t.Error("value info of h1 lost")
	}
	// The result is a valid model.
	back := roundTrip(t, u)
	if len(back.Graph.Nodes) != 6 {
		t.Errorf("after a round trip: %d nodes", len(back.Graph.Nodes))
	}
	if s, err := InferShapes(u, nil); err != nil || !slices.Equal(s.Dims["y"], []int64{2, 3}) {
		t.Errorf("shapes after untying: %v, %v", s, err)
	}

	// Anchoring: a Conv bias copy goes right after the Conv's weight.
	conv := &Model{IRVersion: 3, OpsetImports: []OpsetImport{{Version: 9}}, Graph: &Graph{
		Nodes: []*Node{
			{Name: "alias", OpType: "Identity", Inputs: []string{"0.bias"}, Outputs: []string{"2.bias"}},
			{Name: "c0", OpType: "Conv", Inputs: []string{"x", "0.weight", "0.bias"}, Outputs: []string{"h"}},
			{Name: "c2", OpType: "Conv", Inputs: []string{"h", "2.weight", "2.bias"}, Outputs: []string{"y"}},
		},
		Initializers: []*Tensor{floatInit("0.weight", 1), floatInit("0.bias", 0), floatInit("2.weight", 1), floatInit("3.weight", 7)},
		// IR version 3: the initializers are graph inputs too.
		Inputs:  []*ValueInfo{floatInput("x", 1, 1, 2, 2), floatInput("0.weight", 1), floatInput("0.bias", 1), floatInput("2.weight", 1)},
		Outputs: []*ValueInfo{floatInput("y", 1, 1, 2, 2)},
	}}
	uc := UntieInitializers(conv)
	names = nil
	for _, init := range uc.Graph.Initializers {
		names = append(names, init.Name)
	}
	if want := []string{"0.weight", "0.bias", "2.weight", "2.bias", "3.weight"}; !slices.Equal(names, want) {
		t.Errorf("initializers %v, want %v", names, want)
	}
	if v := uc.Graph.Inputs[len(uc.Graph.Inputs)-1]; v.Name != "2.bias" || v.ElemType != Float || FormatShape(v.Shape) != "[1]" {
		t.Errorf("graph input for the copy: %+v", v)
	}
	if len(uc.Graph.RealInputs()) != 1 {
		t.Errorf("real inputs %v", uc.Graph.RealInputs())
	}
	if len(conv.Graph.Nodes) != 3 || len(conv.Graph.Inputs) != 4 {
		t.Error("UntieInitializers changed its argument")
	}

	// Nothing to untie: an equal copy.
	plain := mustRead(t, testdata("tiny_vgg.onnx"))
	if cp := UntieInitializers(plain); cp == plain || !reflect.DeepEqual(cp, plain) {
		t.Error("a model without aliases is not returned as an equal copy")
	}
}
