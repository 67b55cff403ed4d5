package onnx

import (
	"fmt"
	"testing"
)

func TestCutPoints(t *testing.T) {
	vi := func(name string) *ValueInfo { return &ValueInfo{Name: name, ElemType: Float} }
	init := func(name string) *Tensor {
		return &Tensor{Name: name, DataType: Float, Dims: []int64{1}, Floats: []float32{1}}
	}
	// x -> conv1 -> a -> relu -> b -> conv2 -> c --+-> add -> d -> conv3 -> y
	//                                 b -----------+   (a skip connection from b)
	g := &Graph{
		Inputs:       []*ValueInfo{vi("x"), vi("w1"), vi("w2"), vi("w3")},
		Outputs:      []*ValueInfo{vi("y")},
		Initializers: []*Tensor{init("w1"), init("w2"), init("w3")},
		Nodes: []*Node{
			{Name: "conv1", OpType: "Conv", Inputs: []string{"x", "w1"}, Outputs: []string{"a"}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"a"}, Outputs: []string{"b"}},
			{Name: "conv2", OpType: "Conv", Inputs: []string{"b", "w2"}, Outputs: []string{"c"}},
			{Name: "add", OpType: "Add", Inputs: []string{"c", "b"}, Outputs: []string{"d"}},
			{Name: "conv3", OpType: "Conv", Inputs: []string{"d", "w3"}, Outputs: []string{"y"}},
		},
	}
	cuts := CutPoints(&Model{Graph: g})
	got := ""
	for _, c := range cuts {
		got += fmt.Sprintf("%s@%d%v%v ", c.Tensor, c.Node, c.PrefixParams, c.PrefixOps)
	}
	// No cut after conv2: both c and b are still needed.
	want := "a@0[w1][Conv] b@1[w1][Conv Relu] d@3[w1 w2][Conv Relu Conv Add] "
	if got != want {
		t.Errorf("cut points\n got %s\nwant %s", got, want)
	}
}
