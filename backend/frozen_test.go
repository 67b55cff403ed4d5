package backend

import (
	"math"
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

// TestConstantWeightsSameOutputs checks that a program built with ConstantWeights (its
// Winograd filters and pointwise weights kept without checking the weights) gives the
// outputs of one built without it, bit for bit, on its first and later runs, at batch 1
// and 4, for a 3x3 convolution that takes Winograd and a pointwise one; and that a
// training program ignores the option (it would hold stale transforms of the weights it
// trains).
func TestConstantWeightsSameOutputs(t *testing.T) {
	attr := func(name string, ints ...int64) *onnx.Attribute {
		return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: ints}
	}
	m, err := NewModel(tinyModel([]*onnx.Node{
		{Name: "c1", OpType: "Conv", Inputs: []string{"x", "w1", "b1"}, Outputs: []string{"t1"}, Attributes: []*onnx.Attribute{attr("pads", 1, 1, 1, 1)}},
		{Name: "r1", OpType: "Relu", Inputs: []string{"t1"}, Outputs: []string{"t2"}},
		{Name: "c2", OpType: "Conv", Inputs: []string{"t2", "w2", "b2"}, Outputs: []string{"y"}},
	}, []*onnx.Tensor{
		patternTensor("w1", []int64{16, 16, 3, 3}, 1), patternTensor("b1", []int64{16}, 2), patternTensor("w2", []int64{24, 16, 1, 1}, 3), patternTensor("b2", []int64{24}, 4),
	}, []int64{-1, 16, 14, 14}))
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 4} {
		x := patternInput(batch * 16 * 14 * 14)
		checked, err := m.Program(Options{Batch: batch})
		if err != nil {
			t.Fatal(err)
		}
		constant, err := m.Program(Options{Batch: batch, ConstantWeights: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range constant.p.steps {
			if c, ok := s.fwd.k.(*conv[float32]); ok && !c.constant {
				t.Fatalf("batch %d: %s does not take its weights as constant", batch, s.name)
			}
		}
		for run := range 3 {
			if err := checked.Run([][]float32{x}, nil); err != nil {
				t.Fatal(err)
			}
			want := append([]float32(nil), checked.Output(0)...)
			if err := constant.Run([][]float32{x}, nil); err != nil {
				t.Fatal(err)
			}
			for i, v := range constant.Output(0) {
				if math.Float32bits(v) != math.Float32bits(want[i]) {
					t.Fatalf("batch %d, run %d: y[%d] = %v with constant weights, %v without", batch, run, i, v, want[i])
				}
			}
		}
	}
	p, err := m.Program(Options{Batch: 2, Training: true, Trainable: m.TrainableNames(), Loss: WeightedSum, ConstantWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.p.steps {
		if s.fwd != nil {
			if c, ok := s.fwd.k.(*conv[float32]); ok && c.constant {
				t.Fatalf("a training program's %s takes its weights as constant", s.name)
			}
		}
	}
}

// TestConstantWeightsOnlyFixedTensors checks which weights a program with constant
// weights takes as constant: a convolution's weight passed through an Identity node
// (torch.onnx's merged initializers) is the model's parameter still, so its
// normalization folds; a weight computed from an input of the graph (here the
// parameter times a scale the caller gives) changes between runs, so its convolution
// must neither keep what it derived from it nor fold the normalization after it. The
// outputs must follow the scale from run to run as a program without the option does.
func TestConstantWeightsOnlyFixedTensors(t *testing.T) {
	positive := func(name string, dims []int64, seed int) *onnx.Tensor {
		return testTensor(name, dims, func(i int) float32 { return 0.5 + float32((i*5+seed)%7)/10 })
	}
	bn := func(name, in, out string) (*onnx.Node, []*onnx.Tensor) {
		return &onnx.Node{Name: name, OpType: "BatchNormalization", Inputs: []string{in, name + ".s", name + ".b", name + ".m", name + ".v"}, Outputs: []string{out}},
			[]*onnx.Tensor{positive(name+".s", []int64{8}, 1), patternTensor(name+".b", []int64{8}, 2), patternTensor(name+".m", []int64{8}, 3), positive(name+".v", []int64{8}, 4)}
	}
	pads := &onnx.Attribute{Name: "pads", Type: onnx.AttrInts, Ints: []int64{1, 1, 1, 1}}
	bn1, bn1p := bn("bn1", "t1", "u1")
	bn2, bn2p := bn("bn2", "t2", "u2")
	nodes := []*onnx.Node{
		{Name: "id", OpType: "Identity", Inputs: []string{"w1"}, Outputs: []string{"w1.id"}},
		{Name: "c1", OpType: "Conv", Inputs: []string{"x", "w1.id", "b1"}, Outputs: []string{"t1"}, Attributes: []*onnx.Attribute{pads}},
		bn1,
		{Name: "r1", OpType: "Relu", Inputs: []string{"u1"}, Outputs: []string{"v1"}},
		{Name: "scaled", OpType: "Mul", Inputs: []string{"w2", "scale"}, Outputs: []string{"w2.scaled"}},
		{Name: "c2", OpType: "Conv", Inputs: []string{"v1", "w2.scaled", "b2"}, Outputs: []string{"t2"}, Attributes: []*onnx.Attribute{pads}},
		bn2,
		{Name: "r2", OpType: "Relu", Inputs: []string{"u2"}, Outputs: []string{"y"}},
	}
	inits := append([]*onnx.Tensor{patternTensor("w1", []int64{8, 8, 3, 3}, 5), patternTensor("b1", []int64{8}, 6), patternTensor("w2", []int64{8, 8, 3, 3}, 7), patternTensor("b2", []int64{8}, 8)},
		append(bn1p, bn2p...)...)
	ir := tinyModel(nodes, inits, []int64{2, 8, 10, 10})
	ir.Graph.Inputs = append(ir.Graph.Inputs, &onnx.ValueInfo{Name: "scale", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: 1}}, HasShape: true})
	m, err := NewModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{"x": {2, 8, 10, 10}, "scale": {1}}
	checked, err := m.Program(Options{InputShapes: shapes})
	if err != nil {
		t.Fatal(err)
	}
	constant, err := m.Program(Options{InputShapes: shapes, ConstantWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]bool{}
	for _, s := range constant.p.steps {
		steps[s.name] = true
		if c, ok := s.fwd.k.(*conv[float32]); ok && s.name != "Conv(c1)" && c.constant {
			t.Errorf("%s takes its weight, computed from the input scale, as constant", s.name)
		}
	}
	if steps["BatchNormalization(bn1)"] {
		t.Error("bn1 not folded into c1, whose weight is a parameter passed through Identity")
	}
	if !steps["BatchNormalization(bn2)"] {
		t.Error("bn2 folded into c2, whose weight is computed from the input scale")
	}
	x := patternInput(2 * 8 * 10 * 10)
	var first []float32
	for run, scale := range []float32{1, 2, -0.5} {
		inputs := [][]float32{x, {scale}}
		if err := checked.Run(inputs, nil); err != nil {
			t.Fatal(err)
		}
		want := append([]float32(nil), checked.Output(0)...)
		if err := constant.Run(inputs, nil); err != nil {
			t.Fatal(err)
		}
		if e := relErr(constant.Output(0), want); e > 1e-5 {
			t.Fatalf("run %d (scale %v): relative error %.3g against the program without constant weights", run, scale, e)
		}
		if run == 0 {
			first = want
		} else if relErr(want, first) < 1e-2 {
			t.Fatalf("run %d: the scale does not change the output; the test checks nothing", run)
		}
	}
}

// patternTensor is a weight of the constant-weight tests: small values in a pattern
// that seed shifts.
func patternTensor(name string, dims []int64, seed int) *onnx.Tensor {
	return testTensor(name, dims, func(i int) float32 { return float32((i*7+seed)%13-6) / 20 })
}

// patternInput is n input values of the constant-weight tests, in [-8/9, 8/9].
func patternInput(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%17-8) / 9
	}
	return x
}
