package onnx

import (
	"slices"
	"testing"
)

func TestMethods(t *testing.T) {
	m := &Model{
		IRVersion:    8,
		OpsetImports: []OpsetImport{{Domain: "ai.onnx", Version: 15}, {Domain: "com.microsoft", Version: 1}},
		Graph: &Graph{
			Inputs: []*ValueInfo{
				{Name: "x", ElemType: Float, HasShape: true, Shape: []Dim{{Param: "N"}, {Value: 4}}},
				{Name: "w", ElemType: Float, HasShape: true, Shape: []Dim{{Value: 4}, {Value: 4}}},
			},
			Initializers: []*Tensor{{Name: "w", DataType: Float, Dims: []int64{4, 4}, Floats: make([]float32, 16)}},
			Nodes: []*Node{
				{OpType: "Relu", Inputs: []string{"h"}, Outputs: []string{"y"}},
				{Name: "Relu_0", OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"h"}, Attributes: []*Attribute{
					{Name: "alpha", Type: AttrFloat, Float: 0.5},
					{Name: "mode", Type: AttrString, String: "fast"},
					{Name: "axes", Type: AttrInts, Ints: []int64{1, 2}},
					{Name: "k", Type: AttrInt, Int: 3},
				}},
			},
			Outputs: []*ValueInfo{{Name: "y", ElemType: Float, HasShape: true, Shape: []Dim{{Param: "N"}, {Value: 4}}}},
		},
	}
	if m.Opset("") != 15 || m.Opset("ai.onnx") != 15 || m.Opset("com.microsoft") != 1 || m.Opset("x") != 0 {
		t.Errorf("opsets: %d %d %d", m.Opset(""), m.Opset("com.microsoft"), m.Opset("x"))
	}
	if in := m.Graph.RealInputs(); len(in) != 1 || in[0].Name != "x" {
		t.Errorf("real inputs %v", in)
	}
	n := m.Graph.Nodes[1]
	if n.AttrFloat("alpha", 1) != 0.5 || n.AttrFloat("beta", 1) != 1 || n.AttrString("mode", "") != "fast" ||
		!slices.Equal(n.AttrInts("axes", nil), []int64{1, 2}) || n.AttrInt("k", 0) != 3 ||
		n.AttrInt("alpha", 9) != 9 || n.AttrInts("k", []int64{7})[0] != 7 {
		t.Error("attribute getters")
	}
	// Decoding names the unnamed node by its position, around the name already taken,
	// and sorts the nodes.
	back := roundTrip(t, m)
	var names []string
	for _, n := range back.Graph.Nodes {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"Relu_0", "Relu_0_1"}) || back.Graph.Nodes[1].OpType != "Relu" {
		t.Errorf("nodes %v", names)
	}
	if back.Graph.Producer("h").Name != "Relu_0" || len(back.Graph.Consumers("h")) != 1 {
		t.Error("producer/consumers")
	}
	if (&Tensor{Dims: []int64{2, 0, 3}}).NumElements() != 0 || (&Tensor{}).NumElements() != 1 || (&Tensor{Dims: []int64{-1}}).NumElements() != -1 {
		t.Error("NumElements")
	}
	shapes, err := InferShapes(back, map[string][]int64{"x": {3, 4}})
	if err != nil || !slices.Equal(shapes.Dims["y"], []int64{3, 4}) {
		t.Errorf("shapes %v, %v", shapes, err)
	}
}
