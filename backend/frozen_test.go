package backend

import (
	"strings"
	"testing"

	"toolkit/onnx"
)

// countGradOps counts the backward ops of a program whose forward op name contains kind.
func countGradOps(p *Program, kind string) int {
	n := 0
	for _, node := range p.p.g.AllNodes() {
		if g, ok := node.Op().(*gradOp[float32]); ok && strings.Contains(g.op.name, kind) {
			n++
		}
	}
	return n
}

// TestFrozenLayersCostNoBackwardWork checks that a program training only the classifier
// builds no backward op for the convolutions below it, and that training the last
// convolution builds its weight gradient but no gradient for the input.
func TestFrozenLayersCostNoBackwardWork(t *testing.T) {
	ir, err := onnx.Read(parityDir + "/vgg_classifier_opset13/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	build := func(trainable ...string) *Program {
		p, err := m.Program(Options{Batch: 2, Trainable: trainable, Loss: WeightedSum})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := build("classifier.3.weight", "classifier.3.bias")
	if n := countGradOps(head, "Conv"); n != 0 {
		t.Errorf("training the classifier builds %d convolution backward ops, want 0", n)
	}
	if n := countGradOps(head, "MaxPool"); n != 0 {
		t.Errorf("training the classifier builds %d max-pool backward ops, want 0", n)
	}
	last := build("features.3.weight", "features.3.bias", "classifier.3.weight")
	// The last convolution: gradients of its weight and bias, not of its input, and
	// nothing for the first convolution.
	if n := countGradOps(last, "Conv(/features/features.3/Conv)"); n != 2 {
		t.Errorf("training the last convolution builds %d backward ops for it, want 2 (weight, bias)", n)
	}
	if n := countGradOps(last, "Conv(/features/features.0/Conv)"); n != 0 {
		t.Errorf("the first convolution is frozen but has %d backward ops", n)
	}
}
