package backend

import (
	"testing"

	"toolkit/onnx"
)

// TestResidualAddFused checks the residual joins fused into the convolution before them
// in a program with constant weights (planResidualAdds): a block whose last
// convolution's normalized output is added to the block's input, then a Relu (as
// ResNet's end), and a pointwise convolution whose output is added to its own input (as
// residualModel's join reads the convolution's input). The outputs are those of the
// program without constant weights (the Adds, Relus and normalizations computed apart),
// within float32 rounding, over two runs (the second from the kept weights); the Adds
// and the Relu after the first are no steps; the first convolution writes its output
// over the block's input, which nothing reads after it, and the second does not (it
// reads its input, the other operand, while it writes).
func TestResidualAddFused(t *testing.T) {
	attr := func(name string, ints ...int64) *onnx.Attribute {
		return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: ints}
	}
	m, err := AdoptModel(tinyModel([]*onnx.Node{
		{Name: "r0", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"t0"}},
		{Name: "c1", OpType: "Conv", Inputs: []string{"t0", "w1", "b1"}, Outputs: []string{"t1"}},
		{Name: "r1", OpType: "Relu", Inputs: []string{"t1"}, Outputs: []string{"t2"}},
		{Name: "c2", OpType: "Conv", Inputs: []string{"t2", "w2"}, Outputs: []string{"t3"}, Attributes: []*onnx.Attribute{attr("pads", 1, 1, 1, 1)}},
		{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"t3", "s", "bb", "rm", "rv"}, Outputs: []string{"t4"}},
		{Name: "add", OpType: "Add", Inputs: []string{"t4", "t0"}, Outputs: []string{"t5"}},
		{Name: "r2", OpType: "Relu", Inputs: []string{"t5"}, Outputs: []string{"t6"}},
		{Name: "c3", OpType: "Conv", Inputs: []string{"t6", "w3", "b3"}, Outputs: []string{"t7"}},
		{Name: "add2", OpType: "Add", Inputs: []string{"t6", "t7"}, Outputs: []string{"y"}},
	}, []*onnx.Tensor{
		patternTensor("w1", []int64{16, 16, 1, 1}, 1), patternTensor("b1", []int64{16}, 2),
		patternTensor("w2", []int64{16, 16, 3, 3}, 3),
		testTensor("s", []int64{16}, func(i int) float32 { return 0.5 + 0.1*float32(i) }),
		testTensor("bb", []int64{16}, func(i int) float32 { return 0.2*float32(i) - 1 }),
		testTensor("rm", []int64{16}, func(i int) float32 { return 0.05 * float32(i) }),
		testTensor("rv", []int64{16}, func(i int) float32 { return 1 + 0.25*float32(i) }),
		patternTensor("w3", []int64{16, 16, 1, 1}, 4), patternTensor("b3", []int64{16}, 5),
	}, []int64{-1, 16, 7, 7}))
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 3} {
		x := patternInput(batch * 16 * 7 * 7)
		plain, err := m.Program(Options{Batch: batch})
		if err != nil {
			t.Fatal(err)
		}
		fused, err := m.Program(Options{Batch: batch, ConstantWeights: true})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range fused.p.steps {
			names = append(names, s.name)
		}
		want := []string{"Relu(r0)", "Conv(c1)", "Conv(c2)", "Conv(c3)"}
		if len(names) != len(want) {
			t.Fatalf("batch %d: steps %v, want %v", batch, names, want)
		}
		for i := range want {
			if names[i] != want[i] {
				t.Fatalf("batch %d: steps %v, want %v", batch, names, want)
			}
		}
		off := map[string]int{}
		for _, v := range fused.p.vals {
			if v.kind == valArena {
				off[v.name] = v.off
			}
		}
		if off["t6"] != off["t0"] {
			t.Errorf("batch %d: c2's output t6 at %d, not over the block's input t0 at %d", batch, off["t6"], off["t0"])
		}
		if y, ok := off["y"]; !ok || y == off["t6"] {
			t.Errorf("batch %d: c3's output y (in the arena: %v) over its own input t6", batch, ok)
		}
		for run := range 2 {
			if err := plain.Run([][]float32{x}, nil); err != nil {
				t.Fatal(err)
			}
			if err := fused.Run([][]float32{x}, nil); err != nil {
				t.Fatal(err)
			}
			if e := relErr(fused.Output(0), plain.Output(0)); e > 1e-5 {
				t.Errorf("batch %d, run %d: relative error %.3g against the program without constant weights", batch, run, e)
			}
		}
	}
}
