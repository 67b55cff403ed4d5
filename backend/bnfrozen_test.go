package backend

import (
	"slices"
	"testing"

	"toolkit/onnx"
)

// TestFrozenBatchNormStaysInInference checks that a training program that does not train
// a BatchNormalization layer's scale and shift runs it with its running statistics and
// leaves them alone, and that one that trains them uses batch statistics and updates them.
func TestFrozenBatchNormStaysInInference(t *testing.T) {
	ir, err := onnx.Read(parityDir + "/vgg_bn_opset13/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	x := readNPY(t, parityDir+"/vgg_bn_opset13/input.npy")
	target := readNPY(t, parityDir+"/vgg_bn_opset13/loss_weight.npy")
	in := map[string][]int{m.Inputs()[0].Name: x.Shape}
	stats := func() []float32 {
		return slices.Concat(m.Param("features.1.running_mean"), m.Param("features.1.running_var"))
	}
	before := stats()

	frozen, err := m.Program(Options{InputShapes: in, Training: true, Trainable: []string{"fc.weight", "fc.bias"}, Loss: WeightedSum})
	if err != nil {
		t.Fatal(err)
	}
	if err := frozen.Run([][]float32{x.Data}, target.Data); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, stats()) {
		t.Error("a frozen BatchNormalization layer changed its running statistics")
	}
	if e := relErr(frozen.Output(0), readNPY(t, parityDir+"/vgg_bn_opset13/output.npy").Data); e > parityTolerance {
		t.Errorf("with its layers frozen the network should compute its inference output; relative error %.3g", e)
	}

	trained, err := m.Program(Options{InputShapes: in, Training: true, Trainable: m.TrainableNames(), Loss: WeightedSum})
	if err != nil {
		t.Fatal(err)
	}
	if err := trained.Run([][]float32{x.Data}, target.Data); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(before, stats()) {
		t.Error("a trained BatchNormalization layer did not update its running statistics")
	}
}
