package backend

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"toolkit/backend/kernels"
	"toolkit/internal/familyfixtures"
	"toolkit/onnx"
)

// residualModel is a small network with what the planner must get right: a
// convolution, a BatchNormalization in training, Relus, a MaxPool, a residual Add
// (a tensor with two readers, whose gradients are summed), a global pooling, a Flatten
// and a Gemm.
//
//	x -c1-> t1 -bn-> t2 -r1-> t3 -mp-> t4 -c2-> t5 -add(t5, t4)-> t6 -r2-> t7 -gap-> t8 -fl-> t9 -fc-> y
func residualModel() *onnx.Model { return residualModelSized(8) }

// residualModelSized is residualModel on inputs of side h.
func residualModelSized(h int64) *onnx.Model {
	ten := func(name string, dims []int64, v float32) *onnx.Tensor {
		return testTensor(name, dims, func(i int) float32 { return v * float32(i%7-3) })
	}
	attr := func(name string, ints ...int64) *onnx.Attribute {
		return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: ints}
	}
	m := tinyModel([]*onnx.Node{
		{Name: "c1", OpType: "Conv", Inputs: []string{"x", "w1", "b1"}, Outputs: []string{"t1"}, Attributes: []*onnx.Attribute{attr("pads", 1, 1, 1, 1)}},
		{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"t1", "s", "bb", "rm", "rv"}, Outputs: []string{"t2"}},
		{Name: "r1", OpType: "Relu", Inputs: []string{"t2"}, Outputs: []string{"t3"}},
		{Name: "mp", OpType: "MaxPool", Inputs: []string{"t3"}, Outputs: []string{"t4"}, Attributes: []*onnx.Attribute{attr("kernel_shape", 2, 2), attr("strides", 2, 2)}},
		{Name: "c2", OpType: "Conv", Inputs: []string{"t4", "w2"}, Outputs: []string{"t5"}, Attributes: []*onnx.Attribute{attr("pads", 1, 1, 1, 1)}},
		{Name: "add", OpType: "Add", Inputs: []string{"t5", "t4"}, Outputs: []string{"t6"}},
		{Name: "r2", OpType: "Relu", Inputs: []string{"t6"}, Outputs: []string{"t7"}},
		{Name: "gap", OpType: "GlobalAveragePool", Inputs: []string{"t7"}, Outputs: []string{"t8"}},
		{Name: "fl", OpType: "Flatten", Inputs: []string{"t8"}, Outputs: []string{"t9"}},
		{Name: "fc", OpType: "Gemm", Inputs: []string{"t9", "wf", "bf"}, Outputs: []string{"y"}, Attributes: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, Int: 1}}},
	}, []*onnx.Tensor{
		ten("w1", []int64{4, 3, 3, 3}, 0.1), ten("b1", []int64{4}, 0.01),
		ten("s", []int64{4}, 0.3), ten("bb", []int64{4}, 0.1), ten("rm", []int64{4}, 0), ten("rv", []int64{4}, 0),
		ten("w2", []int64{4, 4, 3, 3}, 0.05), ten("wf", []int64{3, 4}, 0.2), ten("bf", []int64{3}, 0.1),
	}, []int64{2, 3, h, h})
	for _, t := range m.Graph.Initializers {
		if t.Name == "rv" {
			for i := range t.Floats {
				t.Floats[i] = 1
			}
		}
	}
	return m
}

// TestMemoryPlanLiveValues checks the plan of a training step of residualModel: which
// values are alive in the arena at each step. The expected sets follow from what each
// backward pass reads (a convolution's data gradient its weights, its weight gradient its
// input; BatchNormalization's its input; a Relu's its output; a MaxPool's its input; an
// Add's, a Flatten's and a global pooling's nothing), from the in-place steps (a Relu over a
// value nothing else reads, the Add over its first operand, Flatten, the Relus' and the
// Flatten's gradients over their output's gradient, the residual's gradient sum over its
// first term), and from the asynchronous weight gradients, whose arguments live until
// the next one (or the end) waits for them, or a step planned to wait for them: here
// the max pooling's gradient, where the second convolution's weight gradient would
// otherwise have kept t4 and dt5@add alive through the peak (planWaits). The program's output y stays in the arena
// until the end of the run; the loss and the parameters' gradients have buffers of their
// own.
func TestMemoryPlanLiveValues(t *testing.T) {
	_, p := residualTraining(t)
	want := []struct {
		step string
		live string
	}{
		{"Conv(c1)", "t1"},
		{"BatchNormalization(bn)", "t1 t3"}, // with r1 fused: t3 = Relu(bn(t1))
		{"MaxPool(mp)", "t1 t3 t4"},
		{"Conv(c2)", "t1 t3 t4 t5"},
		{"Add(add)", "t1 t3 t4 t5 t6"}, // t6 over t5
		{"Relu(r2)", "t1 t3 t4 t6 t7"}, // t7 over t6
		{"GlobalAveragePool(gap)", "t1 t3 t4 t7 t8"},
		{"Flatten(fl)", "t1 t3 t4 t7 t8 t9"}, // t9 over t8
		{"Gemm(fc)", "t1 t3 t4 t7 t9 y"},
		{"loss", "t1 t3 t4 t7 t9 y"},
		{"dloss/d#0", "t1 t3 t4 t7 t9 dy@loss y"},
		{"dGemm(fc)/d#0", "t1 t3 t4 t7 t9 dy@loss dt9@fc y"},
		{"dGemm(fc)/d#1", "t1 t3 t4 t7 t9 dy@loss dt9@fc y"},
		{"dGemm(fc)/d#2", "t1 t3 t4 t7 dy@loss dt9@fc y"},
		{"dFlatten(fl)/d#0", "t1 t3 t4 t7 dt9@fc dt8@fl y"}, // over dt9@fc
		{"dGlobalAveragePool(gap)/d#0", "t1 t3 t4 t7 dt8@fl dt7@gap y"},
		{"dRelu(r2)/d#0", "t1 t3 t4 t7 dt7@gap dt6@r2 y"}, // over dt7@gap
		{"dAdd(add)/d#0", "t1 t3 t4 dt6@r2 dt5@add y"},
		{"dAdd(add)/d#1", "t1 t3 t4 dt6@r2 dt5@add dt4@add y"}, // over dt6@r2
		{"dConv(c2)/d#0", "t1 t3 t4 dt5@add dt4@add dt4@c2 y"},
		{"dConv(c2)/d#1", "t1 t3 t4 dt5@add dt4@add dt4@c2 y"},   // async: t4 and dt5@add until dMaxPool(mp)/d#0 waits
		{"+ false", "t1 t3 t4 dt5@add dt4@add dt4@c2 dt4 y"},     // the sum, over dt4@add
		{"dMaxPool(mp)/d#0", "t1 t3 dt4 dt3@mp y"},               // waits for dConv(c2)/d#1 first (planWaits)
		{"dBatchNormalization(bn)/d#0", "t1 t3 dt3@mp dt1@bn y"}, // t3: the Relu's mask
		{"dBatchNormalization(bn)/d#1", "t1 t3 dt3@mp dt1@bn y"},
		{"dBatchNormalization(bn)/d#2", "t3 dt3@mp dt1@bn y"},
		{"dConv(c1)/d#1", "dt1@bn y"}, // async: dt1@bn until the end
		{"dConv(c1)/d#2", "dt1@bn y"},
	}
	steps := p.p.steps
	if len(steps) != len(want) {
		var names []string
		for _, s := range steps {
			names = append(names, s.name)
		}
		t.Fatalf("%d steps %q, want %d", len(steps), names, len(want))
	}
	for i, w := range want {
		if steps[i].name != w.step {
			t.Errorf("step %d is %s, want %s", i, steps[i].name, w.step)
			continue
		}
		got := p.p.liveAt(i)
		exp := strings.Fields(w.live)
		slices.Sort(got)
		slices.Sort(exp)
		if !slices.Equal(got, exp) {
			t.Errorf("step %d %s: alive %v, want %v", i, w.step, got, exp)
		}
	}
	// In place: the pairs share a buffer; and no two values alive at the same step
	// overlap in the arena otherwise.
	off := map[string]value[float32]{}
	for _, v := range p.p.vals {
		if v.kind == valArena {
			off[v.name] = v
		}
	}
	for _, pair := range [][2]string{{"t5", "t6"}, {"t6", "t7"}, {"t8", "t9"}, {"dt9@fc", "dt8@fl"},
		{"dt7@gap", "dt6@r2"}, {"dt6@r2", "dt4@add"}, {"dt4@add", "dt4"}} {
		if a, b := off[pair[0]], off[pair[1]]; a.off != b.off {
			t.Errorf("%s (at %d) and %s (at %d) do not share a buffer", pair[0], a.off, pair[1], b.off)
		}
	}
	shares := func(a, b value[float32]) bool {
		for _, s := range [][2]string{{"t5", "t6"}, {"t6", "t7"}, {"t5", "t7"}, {"t8", "t9"}, {"dt9@fc", "dt8@fl"},
			{"dt7@gap", "dt6@r2"}, {"dt6@r2", "dt4@add"}, {"dt4@add", "dt4"}, {"dt6@r2", "dt4"}} {
			if a.name == s[0] && b.name == s[1] || a.name == s[1] && b.name == s[0] {
				return true
			}
		}
		return false
	}
	peak := 0
	for i := range steps {
		live := p.p.liveAt(i)
		sum := 0
		counted := map[int]bool{} // values in place share their buffer
		for j, a := range live {
			if !counted[off[a].off] {
				sum += off[a].size
				counted[off[a].off] = true
			}
			for _, b := range live[j+1:] {
				va, vb := off[a], off[b]
				if va.off < vb.off+vb.size && vb.off < va.off+va.size && !shares(va, vb) {
					t.Errorf("step %d: %s [%d, %d) and %s [%d, %d) overlap", i, a, va.off, va.off+va.size, b, vb.off, vb.off+vb.size)
				}
			}
		}
		peak = max(peak, sum)
	}
	if p.p.mem.size < peak {
		t.Errorf("arena of %d elements, but %d are alive at once", p.p.mem.size, peak)
	}
}

// TestPackArena checks the placement on a case worked by hand: buffers placed largest
// first (sizes rounded up to 16 elements), each in the smallest gap that fits among the
// buffers already placed that are alive at the same step, or after the last of them.
func TestPackArena(t *testing.T) {
	bufs := []interval{
		{first: 0, last: 2, size: 64},  // a
		{first: 1, last: 3, size: 32},  // b
		{first: 3, last: 5, size: 48},  // c
		{first: 4, last: 6, size: 16},  // d
		{first: 6, last: 7, size: 100}, // e: 112 with the alignment
		{first: 0, last: 9, size: 0},   // merged into another: no room
	}
	// e first: nothing placed, at 0. a: alive with nothing placed (e starts at 6), at 0.
	// c (3..5): alive with neither a (..2) nor e (6..), at 0. b (1..3): alive with a
	// [0, 64) and c [0, 48): no gap below 64, so at 64. d (4..6): alive with c [0, 48)
	// and e [0, 112): at 112. The arena ends with d at 128.
	offs, size := packArena(bufs)
	want := []int{0, 64, 0, 112, 0, 0}
	if !slices.Equal(offs, want) || size != 128 {
		t.Errorf("offsets %v, size %d; want %v, 128", offs, size, want)
	}
	// Best fit: A [0, 64), B [64, 96) (steps 0..1 only), C [96, 112), D [112, 128)
	// (0..1), E [128, 144) go one after the other; F (2..9) is alive with A, C and E,
	// between which the gaps [64, 96) and [112, 128) are free: the smaller one fits.
	offs, size = packArena([]interval{
		{0, 9, 64}, // A
		{0, 1, 32}, // B
		{0, 9, 16}, // C
		{0, 1, 16}, // D
		{0, 9, 16}, // E
		{2, 9, 16}, // F
	})
	if want := []int{0, 64, 96, 112, 128, 112}; !slices.Equal(offs, want) || size != 144 {
		t.Errorf("offsets %v, size %d; want %v, 144", offs, size, want)
	}
}

// TestExecutorMatchesTapeMachine runs training programs of the family fixtures (every
// op family of the torchvision networks) on the toolkit's executor, with its planned
// arena, values written in place and asynchronous weight gradients, and on gorgonia's
// TapeMachine over the same graph, which gives every node a buffer of its own: the
// outputs, the loss and every gradient must be the same bits.
func TestExecutorMatchesTapeMachine(t *testing.T) {
	fx := familyfixtures.Load(t)
	for _, name := range fx.Names() {
		f := fx.Families[name]
		t.Run(name, func(t *testing.T) {
			ir, err := onnx.Read(f.Path("model_opset17.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := AdoptModel(ir)
			if err != nil {
				t.Fatal(err)
			}
			x := readNPY(t, f.Path("input.npy"))
			target := readNPY(t, f.Path("loss_weight.npy"))
			in := m.Inputs()[0].Name
			p, err := m.Program(Options{InputShapes: map[string][]int{in: x.Shape}, Training: true,
				Trainable: m.TrainableNames(), InputGrads: true, Loss: WeightedSum})
			if err != nil {
				t.Fatal(err)
			}
			// The running statistics change at every training pass: both runs start
			// from the same ones.
			saved := map[string][]float32{}
			for _, n := range m.ParamNames() {
				saved[n] = slices.Clone(m.Param(n))
			}
			if err := p.Run([][]float32{x.Data}, target.Data); err != nil {
				t.Fatal(err)
			}
			got := map[string][]float32{"output": slices.Clone(p.Output(0)), "loss": {float32(p.Loss())}}
			for _, n := range p.p.gradName {
				got["d"+n] = slices.Clone(p.Grad(n))
			}
			for n, v := range saved {
				copy(m.Param(n), v)
			}
			vm := gorgonia.NewTapeMachine(p.p.g)
			defer vm.Close()
			if err := gorgonia.Let(p.p.inputs[0], tensor.New(tensor.WithShape(x.Shape...), tensor.WithBacking(slices.Clone(x.Data)))); err != nil {
				t.Fatal(err)
			}
			if err := gorgonia.Let(p.p.target, tensor.New(tensor.WithShape(p.OutputShape(0)...), tensor.WithBacking(target.Data))); err != nil {
				t.Fatal(err)
			}
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			ref := map[string][]float32{"output": nodeValues(t, p.p.outputs[0]), "loss": nodeValues(t, p.p.loss)}
			for _, n := range p.p.gradName {
				ref["d"+n] = nodeValues(t, p.p.grads[n])
			}
			for k, w := range ref {
				g := got[k]
				if len(g) != len(w) {
					t.Errorf("%s: %d values, the TapeMachine %d", k, len(g), len(w))
					continue
				}
				for i := range w {
					if g[i] != w[i] && !(g[i] != g[i] && w[i] != w[i]) {
						t.Errorf("%s[%d]: %v, the TapeMachine %v", k, i, g[i], w[i])
						break
					}
				}
			}
			t.Logf("%d steps, arena %.1f MB", len(p.p.steps), float64(p.p.mem.size)*4/1e6)
		})
	}
}

func nodeValues(t *testing.T, n *gorgonia.Node) []float32 {
	t.Helper()
	s, err := sliceOf[float32](n.Value())
	if err != nil {
		t.Fatal(fmt.Errorf("%s: %w", n.Name(), err))
	}
	return slices.Clone(s)
}

// TestSiLUFusion checks that x·σ(x), as exporters write SiLU (a Sigmoid and a Mul by its
// input, in either order), is built as one op, and a Sigmoid whose output has another
// reader is not; and the gradients of both against finite differences, in float64.
//
//	s1 = σ(x); m1 = s1·x (fused); s2 = σ(m1); m2 = m1·s2; y = s2 + m2 (s2 read twice: not fused)
func TestSiLUFusion(t *testing.T) {
	m := tinyModel([]*onnx.Node{
		{Name: "s1", OpType: "Sigmoid", Inputs: []string{"x"}, Outputs: []string{"s1"}},
		{Name: "m1", OpType: "Mul", Inputs: []string{"s1", "x"}, Outputs: []string{"m1"}},
		{Name: "s2", OpType: "Sigmoid", Inputs: []string{"m1"}, Outputs: []string{"s2"}},
		{Name: "m2", OpType: "Mul", Inputs: []string{"m1", "s2"}, Outputs: []string{"m2"}},
		{Name: "add", OpType: "Add", Inputs: []string{"s2", "m2"}, Outputs: []string{"y"}},
	}, nil, []int64{2, 5})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bm.Program(Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range p.p.steps {
		names = append(names, s.name)
	}
	if want := []string{"Mul(m1)", "Sigmoid(s2)", "Mul(m2)", "Add(add)"}; !slices.Equal(names, want) {
		t.Errorf("steps %v, want %v", names, want)
	}
	x := &onnx.Tensor{Name: "x", DataType: onnx.Float, Dims: []int64{2, 5},
		Floats: []float32{-6, -2.5, -1.28, -0.3, 0, 0.4, 1, 2.2, 4.5, 9}}
	if err := p.Run([][]float32{x.Floats}, nil); err != nil {
		t.Fatal(err)
	}
	for i, v := range x.Floats {
		f := float64(v)
		m1 := f / (1 + math.Exp(-f))
		s2 := 1 / (1 + math.Exp(-m1))
		if want := s2 + m1*s2; math.Abs(float64(p.Output(0)[i])-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("y(%g) = %g, want %g", f, p.Output(0)[i], want)
		}
	}
	checkGradients(t, bm, &prepared{model: m, inputs: map[string]*onnx.Tensor{"x": x}})
}

// TestBatchNormSiLUFusion checks that a BatchNormalization whose output only a SiLU
// reads (x·σ(x), a Sigmoid and a Mul) is built as one op with it in training and
// inference programs, not in a constant-weight one (where the normalization folds into
// a convolution instead), and the gradients of the fused op (which recomputes the
// normalization's output for the SiLU's derivative) against finite differences in
// float64, in training (batch statistics) and in inference (running statistics).
func TestBatchNormSiLUFusion(t *testing.T) {
	c := int64(3)
	param := func(name string, f func(i int) float32) *onnx.Tensor { return testTensor(name, []int64{c}, f) }
	m := tinyModel([]*onnx.Node{
		{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"x", "s", "bb", "rm", "rv"}, Outputs: []string{"t"}},
		{Name: "sig", OpType: "Sigmoid", Inputs: []string{"t"}, Outputs: []string{"u"}},
		{Name: "silu", OpType: "Mul", Inputs: []string{"t", "u"}, Outputs: []string{"y"}},
	}, []*onnx.Tensor{
		param("s", func(i int) float32 { return 0.5 + float32(i) }),
		param("bb", func(i int) float32 { return float32(i) - 1 }),
		param("rm", func(i int) float32 { return 0.1 * float32(i) }),
		param("rv", func(i int) float32 { return 1 + 0.5*float32(i) }),
	}, []int64{2, c, 3, 4})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{Batch: 2}, {Batch: 2, Training: true, Trainable: []string{"s", "bb"}, Loss: WeightedSum}, {Batch: 2, ConstantWeights: true}} {
		p, err := bm.Program(opts)
		if err != nil {
			t.Fatal(err)
		}
		var names []string // the forward pass's
		for _, s := range p.p.steps {
			if s.name == "loss" {
				break
			}
			names = append(names, s.name)
		}
		want := []string{"BatchNormalization(bn)"}
		if opts.ConstantWeights {
			want = []string{"BatchNormalization(bn)", "Mul(silu)"}
		}
		if !slices.Equal(names, want) {
			t.Errorf("%+v: steps %v, want %v", opts, names, want)
		}
	}
	x := testTensor("x", []int64{2, c, 3, 4}, func(i int) float32 { return float32(math.Sin(float64(i)*1.7)) * 3 })
	in := &prepared{model: m, inputs: map[string]*onnx.Tensor{"x": x}}
	checkGradientsMode(t, bm, in, false)
	checkGradientsMode(t, bm, in, true)
}

// TestProbes checks that a program tells its probes' values as a run computes them,
// without keeping them: a probe of a Relu in the middle of residualModel's training
// step is told once per run with the Relu's output (max(t2, 0) of the BatchNormalization's
// output, which a program with t2 and t3 as outputs gives), and stays planned as in a
// program without probes.
func TestProbes(t *testing.T) {
	m, err := NewModel(residualModel())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Batch: 2, Training: true, Trainable: m.TrainableNames(), Loss: CrossEntropy}
	plain, err := m.Program(opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Probes = []string{"t3", "x", "w1", "nope"} // an input, a weight and no tensor: ignored
	p, err := m.Program(opts)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := p.Memory(), plain.Memory(); a != b {
		t.Errorf("with a probe the plan is %+v, without %+v", a, b)
	}
	x := make([]float32, 2*3*8*8)
	for i := range x {
		x[i] = float32(i%11) - 5
	}
	target := []float32{1, 0, 0, 0, 0, 1}
	var got []float32
	calls := 0
	p.Probe(func(name string, shape []int, v []float32) {
		calls++
		if name != "t3" || !slices.Equal(shape, []int{2, 4, 8, 8}) {
			t.Errorf("probe %s %v, want t3 [2 4 8 8]", name, shape)
		}
		got = slices.Clone(v)
	})
	if err := p.Run([][]float32{x}, target); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("the probe was told %d times in a run, want 1", calls)
	}
	p.Probe(nil)
	if err := p.Run([][]float32{x}, target); err != nil || calls != 1 {
		t.Fatalf("after Probe(nil): %v, %d calls", err, calls)
	}
	ref, err := m.Program(Options{Batch: 2, Training: true, Trainable: m.TrainableNames(), Loss: CrossEntropy, Outputs: []string{"y", "t2", "t3"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Run([][]float32{x}, target); err != nil {
		t.Fatal(err)
	}
	for i, v := range ref.Output(1) {
		if want := max(v, 0); got[i] != want || ref.Output(2)[i] != want {
			t.Fatalf("t3[%d] = %v, the reference %v (max(t2 = %v, 0))", i, got[i], ref.Output(2)[i], v)
		}
	}
}

// TestOnGradient checks that a training run tells every parameter's gradient once, as
// soon as it is final: the values at the telling are those Grad holds after the run,
// and the first gradients are told while steps of the backward pass remain (what a
// data-parallel step overlaps its allreduce with), on residualModel (convolutions,
// whose weight gradients run beside the following steps, BatchNormalization, a Gemm).
func TestOnGradient(t *testing.T) {
	m, p := residualTraining(t)
	x := make([]float32, 2*3*8*8)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	target := []float32{1, 0, 0, 0, 0, 1}
	for run := range 2 {
		steps, async := 0, 0
		p.Trace(func(st StepTime) {
			steps++
			if st.Async {
				async++
			}
		})
		told := map[string][]float32{}
		at := map[string]int{}
		p.OnGradient(func(name string) {
			if _, ok := told[name]; ok {
				t.Errorf("run %d: %s told twice", run, name)
			}
			told[name] = slices.Clone(p.Grad(name))
			at[name] = steps
		})
		if err := p.Run([][]float32{x}, target); err != nil {
			t.Fatal(err)
		}
		first := steps
		for _, name := range m.TrainableNames() {
			g, ok := told[name]
			if !ok {
				t.Errorf("run %d: %s never told", run, name)
				continue
			}
			if !slices.Equal(g, p.Grad(name)) {
				t.Errorf("run %d: %s told before its gradient was final", run, name)
			}
			first = min(first, at[name])
		}
		if first >= steps {
			t.Errorf("run %d: the first gradient was told after the last of %d steps", run, steps)
		}
		if async == 0 {
			t.Errorf("run %d: no gradient ran beside the following steps: the check is weak", run)
		}
	}
	p.OnGradient(nil)
	p.Trace(nil)
}

// TestGeluFusion checks that Gelu written out as torch.onnx exports it (Div by √2, Erf,
// Add 1, Mul by x, Mul by 0.5; the second chain with its operands the other way round)
// is built as one op; that a chain whose Erf output has a second reader is not, nor one
// that divides by a parameter (training may change it); and the values against the
// formula and the gradients (the parameter's included) against finite differences, in
// float64.
func TestGeluFusion(t *testing.T) {
	constant := func(name string, v float32) *onnx.Node {
		return &onnx.Node{Name: name, OpType: "Constant", Outputs: []string{name}, Attributes: []*onnx.Attribute{
			{Name: "value", Type: onnx.AttrTensor, Tensor: &onnx.Tensor{Name: name, DataType: onnx.Float, Dims: []int64{}, Floats: []float32{v}}}}}
	}
	chain := func(x, p, sqrt2, out string, swap bool) []*onnx.Node {
		add := []string{p + "e", "one"}
		mul := []string{x, p + "a"}
		half := []string{p + "m", "half"}
		if swap {
			add[0], add[1] = add[1], add[0]
			mul[0], mul[1] = mul[1], mul[0]
			half[0], half[1] = half[1], half[0]
		}
		return []*onnx.Node{
			{Name: p + "div", OpType: "Div", Inputs: []string{x, sqrt2}, Outputs: []string{p + "d"}},
			{Name: p + "erf", OpType: "Erf", Inputs: []string{p + "d"}, Outputs: []string{p + "e"}},
			{Name: p + "add", OpType: "Add", Inputs: add, Outputs: []string{p + "a"}},
			{Name: p + "mul", OpType: "Mul", Inputs: mul, Outputs: []string{p + "m"}},
			{Name: p + "half", OpType: "Mul", Inputs: half, Outputs: []string{out}},
		}
	}
	nodes := []*onnx.Node{constant("sqrt2", float32(math.Sqrt2)), constant("one", 1), constant("half", 0.5)}
	nodes = append(nodes, chain("x", "g1", "sqrt2", "y1", false)...)
	nodes = append(nodes, chain("y1", "g2", "sqrt2", "y2", true)...)
	nodes = append(nodes, chain("y2", "g3", "sqrt2", "y3", false)...)
	nodes = append(nodes, chain("y3", "g4", "s", "y4", false)...)
	// g3's Erf output is also read here.
	nodes = append(nodes, &onnx.Node{Name: "sum", OpType: "Add", Inputs: []string{"y4", "g3e"}, Outputs: []string{"y"}})
	param := &onnx.Tensor{Name: "s", DataType: onnx.Float, Dims: []int64{}, Floats: []float32{float32(math.Sqrt2)}}
	m := tinyModel(nodes, []*onnx.Tensor{param}, []int64{2, 4})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bm.Program(Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range p.p.steps {
		names = append(names, s.name)
	}
	want := []string{"Mul(g1half)", "Mul(g2half)", "Div(g3div)", "Erf(g3erf)", "Add(g3add)", "Mul(g3mul)", "Mul(g3half)",
		"Div(g4div)", "Erf(g4erf)", "Add(g4add)", "Mul(g4mul)", "Mul(g4half)", "Add(sum)"}
	if !slices.Equal(names, want) {
		t.Errorf("steps %v, want %v", names, want)
	}
	x := &onnx.Tensor{Name: "x", DataType: onnx.Float, Dims: []int64{2, 4}, Floats: []float32{-4, -1.5, -0.7, -0.1, 0, 0.3, 1.2, 3}}
	if err := p.Run([][]float32{x.Floats}, nil); err != nil {
		t.Fatal(err)
	}
	gelu := func(v float64) float64 { return v * 0.5 * (1 + math.Erf(v/math.Sqrt2)) }
	for i, v := range x.Floats {
		y2 := gelu(gelu(float64(v)))
		want := gelu(gelu(y2)) + math.Erf(y2/math.Sqrt2)
		if got := float64(p.Output(0)[i]); math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("y(%g) = %g, want %g", v, got, want)
		}
	}
	checkGradients(t, bm, &prepared{model: m, inputs: map[string]*onnx.Tensor{"x": x}})
}

// TestRematerialize checks the plan of x -fc1-> h -SiLU-> m -fc2-> y in training: the
// SiLU's output m, which the fc2 weight gradient reads, lives through the forward pass
// only and is computed again (m') from h, which the SiLU's own gradient keeps anyway,
// just before that gradient; the outputs and gradients are those of gorgonia's
// TapeMachine, bit for bit.
func TestRematerialize(t *testing.T) {
	w := func(name string, dims ...int64) *onnx.Tensor {
		t := &onnx.Tensor{Name: name, DataType: onnx.Float, Dims: dims}
		n := 1
		for _, d := range dims {
			n *= int(d)
		}
		for i := range n {
			t.Floats = append(t.Floats, 0.1*float32(i%7-3))
		}
		return t
	}
	transB := []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, Int: 1}}
	m := tinyModel([]*onnx.Node{
		{Name: "fc1", OpType: "Gemm", Inputs: []string{"x", "w1", "b1"}, Outputs: []string{"h"}, Attributes: transB},
		{Name: "sig", OpType: "Sigmoid", Inputs: []string{"h"}, Outputs: []string{"s"}},
		{Name: "silu", OpType: "Mul", Inputs: []string{"h", "s"}, Outputs: []string{"m"}},
		{Name: "fc2", OpType: "Gemm", Inputs: []string{"m", "w2", "b2"}, Outputs: []string{"y"}, Attributes: transB},
	}, []*onnx.Tensor{w("w1", 16, 8), w("b1", 16), w("w2", 4, 16), w("b2", 4)}, []int64{2, 8})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bm.Program(Options{Batch: 2, Training: true, Trainable: bm.TrainableNames(), Loss: CrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ step, live string }{
		{"Gemm(fc1)", "h"},
		{"Mul(silu)", "h m"},
		{"Gemm(fc2)", "h m y"},
		{"loss", "h y"},
		{"dloss/d#0", "h y dy@loss"},
		{"dGemm(fc2)/d#0", "h y dy@loss dm@fc2"},
		{"Mul(silu) again", "h y dy@loss dm@fc2 m'"},
		{"dGemm(fc2)/d#1", "h y dy@loss dm@fc2 m'"},
		{"dGemm(fc2)/d#2", "h y dy@loss dm@fc2"},
		{"dMul(silu)/d#0", "h y dm@fc2 dh@silu"}, // over dm@fc2
		{"dGemm(fc1)/d#1", "y dh@silu"},
		{"dGemm(fc1)/d#2", "y dh@silu"},
	}
	if len(p.p.steps) != len(want) {
		var names []string
		for _, s := range p.p.steps {
			names = append(names, s.name)
		}
		t.Fatalf("steps %q, want %d", names, len(want))
	}
	for i, w := range want {
		got, exp := p.p.liveAt(i), strings.Fields(w.live)
		slices.Sort(got)
		slices.Sort(exp)
		if p.p.steps[i].name != w.step || !slices.Equal(got, exp) {
			t.Errorf("step %d %s: alive %v; want %s, %v", i, p.p.steps[i].name, got, w.step, exp)
		}
	}
	x := []float32{1, -2, 0.5, 3, -1, 0.25, 2, -0.5, 0.3, 0.7, -1.1, 1.9, -2.2, 0.1, 0.4, -0.6}
	target := []float32{0, 1, 0, 0, 0, 0, 0, 1}
	if err := p.Run([][]float32{x}, target); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{"y": slices.Clone(p.Output(0))}
	for _, n := range p.p.gradName {
		got[n] = slices.Clone(p.Grad(n))
	}
	vm := gorgonia.NewTapeMachine(p.p.g)
	defer vm.Close()
	if err := gorgonia.Let(p.p.inputs[0], tensor.New(tensor.WithShape(2, 8), tensor.WithBacking(slices.Clone(x)))); err != nil {
		t.Fatal(err)
	}
	if err := gorgonia.Let(p.p.target, tensor.New(tensor.WithShape(2, 4), tensor.WithBacking(target))); err != nil {
		t.Fatal(err)
	}
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	ref := map[string][]float32{"y": nodeValues(t, p.p.outputs[0])}
	for _, n := range p.p.gradName {
		ref[n] = nodeValues(t, p.p.grads[n])
	}
	for k, r := range ref {
		if !slices.Equal(got[k], r) {
			t.Errorf("%s: %v, the TapeMachine %v", k, got[k], r)
		}
	}
}

// TestTrainedWeightsAreNotCached checks that building a program that trains a
// convolution's weights disables the model's cache of their transformed filters (they
// change at every step), which the programs that do not train them share otherwise.
func TestTrainedWeightsAreNotCached(t *testing.T) {
	m, err := NewModel(residualModel())
	if err != nil {
		t.Fatal(err)
	}
	eval, err := m.Program(Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	cache := func(p *Program, node string) *kernels.FilterCache {
		for _, s := range p.p.steps {
			if s.kind != stepForward {
				continue
			}
			if c, ok := s.fwd.k.(*conv[float32]); ok && s.fwd.node == node {
				return c.filters
			}
		}
		t.Fatalf("no convolution %s", node)
		return nil
	}
	before := cache(eval, "c2")
	if before == nil || before != m.filterCache("w2") {
		t.Fatalf("the evaluation program's c2 has cache %p, the model's for w2 is %p", before, m.filterCache("w2"))
	}
	if _, err := m.Program(Options{Batch: 2, Training: true, Trainable: []string{"w2"}, Loss: CrossEntropy}); err != nil {
		t.Fatal(err)
	}
	if !before.Disabled() {
		t.Error("training w2 left its filter cache on")
	}
	if m.filterCache("w1").Disabled() {
		t.Error("training w2 turned w1's filter cache off")
	}
}

// testTensor is a float initializer of the given shape whose value i is value(i).
func testTensor(name string, dims []int64, value func(i int) float32) *onnx.Tensor {
	t := &onnx.Tensor{Name: name, DataType: onnx.Float, Dims: dims}
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	for i := range n {
		t.Floats = append(t.Floats, value(i))
	}
	return t
}

// residualTraining is residualModel and a training program of it at batch 2 that
// trains every parameter.
func residualTraining(t *testing.T) (*Model, *Program) {
	t.Helper()
	m, err := NewModel(residualModel())
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Program(Options{Batch: 2, Training: true, Trainable: m.TrainableNames(), Loss: CrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	return m, p
}

// TestConstantGemmsShareAWeight checks a program with constant weights in which two
// Gemms read one weight, once as it is and once transposed (tied weights): each keeps
// its own packing of it (one packing taken for the other would give (x·W)·W, not
// (x·W)·Wᵀ), against the float64 product, twice (the second run reads the packings).
func TestConstantGemmsShareAWeight(t *testing.T) {
	const n = 6
	w := testTensor("w", []int64{n, n}, func(i int) float32 { return float32(i%5) - 0.7*float32(i/n) })
	trans := &onnx.Attribute{Name: "transB", Type: onnx.AttrInt, Int: 1}
	m := tinyModel([]*onnx.Node{
		{Name: "g1", OpType: "Gemm", Inputs: []string{"x", "w"}, Outputs: []string{"h"}},
		{Name: "g2", OpType: "Gemm", Inputs: []string{"h", "w"}, Outputs: []string{"y"}, Attributes: []*onnx.Attribute{trans}},
	}, []*onnx.Tensor{w}, []int64{2, n})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bm.Program(Options{Batch: 2, ConstantWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 2*n)
	for i := range x {
		x[i] = float32(i%4) - 1.5
	}
	for run := 0; run < 2; run++ {
		if err := p.Run([][]float32{x}, nil); err != nil {
			t.Fatal(err)
		}
		for r := 0; r < 2; r++ {
			h := make([]float64, n)
			for j := range n {
				for k := range n {
					h[j] += float64(x[r*n+k]) * float64(w.Floats[k*n+j])
				}
			}
			for i := range n {
				want := 0.0
				for j := range n {
					want += h[j] * float64(w.Floats[i*n+j])
				}
				if got := float64(p.Output(0)[r*n+i]); math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
					t.Fatalf("run %d: y[%d][%d] = %g, want %g", run, r, i, got, want)
				}
			}
		}
	}
}
