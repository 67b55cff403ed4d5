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

// TestBatchNormTrainedThroughIdentity checks that a BatchNormalization layer whose scale
// and shift reach it through Identity nodes (as torch.onnx writes initializers it merged,
// the equal scales and shifts of a randomly initialised network) trains as one that reads
// them directly: batch statistics (each channel of the output has mean 0 where the
// input's does not), the same outputs and the same gradients of the scale and shift.
func TestBatchNormTrainedThroughIdentity(t *testing.T) {
	c := func(name string, v ...float32) *onnx.Tensor {
		return &onnx.Tensor{Name: name, DataType: onnx.Float, Dims: []int64{int64(len(v))}, Floats: v}
	}
	model := func(identity bool) *onnx.Model {
		nodes := []*onnx.Node{{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"x", "s", "b", "rm", "rv"}, Outputs: []string{"y"}}}
		if identity {
			nodes = append([]*onnx.Node{
				{Name: "is", OpType: "Identity", Inputs: []string{"s0"}, Outputs: []string{"s"}},
				{Name: "ib", OpType: "Identity", Inputs: []string{"b0"}, Outputs: []string{"b"}},
			}, nodes...)
		}
		sName, bName := "s", "b"
		if identity {
			sName, bName = "s0", "b0"
		}
		return tinyModel(nodes, []*onnx.Tensor{c(sName, 1, 1.5), c(bName, 0, 0.5), c("rm", 0, 0), c("rv", 1, 1)}, []int64{3, 2, 2, 2})
	}
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}
	target := make([]float32, len(x))
	for i := range target {
		target[i] = float32(i%5) - 2
	}
	run := func(identity bool) ([]float32, []float32, []float32) {
		m, err := NewModel(model(identity))
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.Program(Options{Batch: 3, Training: true, Trainable: m.TrainableNames(), Loss: WeightedSum})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run([][]float32{x}, target); err != nil {
			t.Fatal(err)
		}
		names := m.TrainableNames()
		return slices.Clone(p.Output(0)), slices.Clone(p.Grad(names[0])), slices.Clone(p.Grad(names[1]))
	}
	y, ds, db := run(true)
	for ch := 0; ch < 2; ch++ {
		var mean float64
		for n := 0; n < 3; n++ {
			for _, v := range y[(n*2+ch)*4 : (n*2+ch+1)*4] {
				mean += float64(v) / 12
			}
		}
		if want := []float64{0, 0.5}[ch]; mean-want > 1e-5 || want-mean > 1e-5 {
			t.Errorf("channel %d: output mean %g, want the shift %g (batch statistics)", ch, mean, want)
		}
	}
	y2, ds2, db2 := run(false)
	if !slices.Equal(y, y2) || !slices.Equal(ds, ds2) || !slices.Equal(db, db2) {
		t.Errorf("through Identity: y %v, d scale %v, d shift %v; directly %v, %v, %v", y, ds, db, y2, ds2, db2)
	}
}
