package models_test

import (
	"math"
	"testing"

	"toolkit/backend"
	"toolkit/npy"
	"toolkit/onnx"
)

// TestDemoBaseMatchesPyTorch runs the shipped demo base on the sample PyTorch saved
// with it (models/fmnist-vgg/train_base.py) and compares the feature maps.
func TestDemoBaseMatchesPyTorch(t *testing.T) {
	ir, err := onnx.Read("fmnist-vgg/base.onnx")
	if err != nil {
		t.Fatal(err)
	}
	x, err := npy.ReadFile("fmnist-vgg/sample_input.npy")
	if err != nil {
		t.Fatal(err)
	}
	want, err := npy.ReadFile("fmnist-vgg/sample_output.npy")
	if err != nil {
		t.Fatal(err)
	}
	m, err := backend.NewModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Program(backend.Options{InputShapes: map[string][]int{m.Inputs()[0].Name: x.Shape}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run([][]float32{x.Data}, nil); err != nil {
		t.Fatal(err)
	}
	got := p.Output(0)
	var diff, scale float64
	for i, w := range want.Data {
		diff = math.Max(diff, math.Abs(float64(got[i]-w)))
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	if diff > 1e-4*scale {
		t.Errorf("max |ours - PyTorch| = %.3g, max |PyTorch| = %.3g", diff, scale)
	}
}
