package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// compactTraining builds two training programs of residualModelSized(64) at batch 2,
// one planned as it is and one with every value its backward pass reads rounded kept in
// bfloat16 (compactSaved, whether or not that makes the arena smaller:
// Options.SavedBF16 keeps the copies only where it does, TestSavedBF16KeepsTheSmaller).
func compactTraining(t *testing.T) (m *Model, plain, compact *Program) {
	t.Helper()
	m, plain, compact = trainingPair(t, residualModelSized(64), nil, nil, nil)
	compact.p.compactSaved()
	compact.p.planMemory()
	compact.p.arena.reserve(compact.p.mem.size)
	return m, plain, compact
}

// trainingPair builds two training programs of model at batch 2 with a cross-entropy
// loss, training trainable (every parameter when nil): one with base's options, the
// other with those that more sets.
func trainingPair(t *testing.T, model *onnx.Model, trainable []string, base, more func(*Options)) (m *Model, first, second *Program) {
	t.Helper()
	m, err := NewModel(model)
	if err != nil {
		t.Fatal(err)
	}
	if trainable == nil {
		trainable = m.TrainableNames()
	}
	opts := Options{Batch: 2, Training: true, Trainable: trainable, Loss: CrossEntropy}
	for i, set := range []func(*Options){base, more} {
		if set != nil {
			set(&opts)
		}
		p, err := m.Program(opts)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = p
		} else {
			second = p
		}
	}
	return m, first, second
}

// savedBF16 sets Options.SavedBF16 (trainingPair).
func savedBF16(o *Options) { o.SavedBF16 = true }

// TestSavedBF16Plan checks which values of a training step of residualModel (at 64×64
// px) Options.SavedBF16 keeps in bfloat16, and where the copies are made and read back.
// The rule: a value of at least compactMinSize elements whose every gradient reads it
// rounded — t4 (the MaxPool's output: the second convolution's weight gradient), t7
// (the last Relu's output: its mask). Not t1, which BatchNormalization's gradient reads
// exactly, nor t3 (the fused BatchNormalization+Relu's output, whose gradient reads it
// for its mask, but the MaxPool's finds the maxima in it), nor t9 (8 values), nor the
// output y.
// Each copy comes right after the value's last forward reader, and the gradients read
// the copies themselves (compactReader: t4 the convolution's weight gradient, t7 the
// Relu's): no float32 value is read back. No gradient step reads the float32 values,
// which live through the forward pass only. Then that no two values alive together
// overlap in the arena, and that the arena is smaller than without.
func TestSavedBF16Plan(t *testing.T) {
	_, plain, compact := compactTraining(t)
	var want []string
	for _, s := range plain.p.steps {
		want = append(want, s.name)
		switch s.name {
		case "Add(add)":
			want = append(want, "ToBF16(t4)")
		case "GlobalAveragePool(gap)":
			want = append(want, "ToBF16(t7)")
		}
	}
	p := compact.p
	var got []string
	for _, s := range p.steps {
		got = append(got, s.name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("steps\n%q\nwant\n%q", got, want)
	}
	id := map[string]int{}
	for i, v := range p.vals {
		id[v.name] = i
	}
	for _, name := range []string{"t4", "t7"} {
		v, c := id[name], id[name+" (bfloat16)"]
		if _, back := id[name+" (from bfloat16)"]; c == 0 || back {
			t.Fatalf("%s: compact copy %d, read back: %v", name, c, back)
		}
		if got, want := p.vals[c].size, (p.vals[v].size+1)/2; got != want {
			t.Errorf("%s: compact copy of %d elements, want %d", name, got, want)
		}
		to := slices.Index(got, "ToBF16("+name+")")
		if p.vals[v].last != to || p.vals[c].first != to {
			t.Errorf("%s: float32 alive to %d, copy from %d; want both at %d", name, p.vals[v].last, p.vals[c].first, to)
		}
		// Its gradient readers read the copy itself, to their last.
		last, readers := 0, 0
		for i, s := range p.steps {
			if s.kind == stepGrad && slices.Contains(s.args, v) {
				t.Errorf("%s: gradient step %s reads the float32 value", name, s.name)
			}
			if s.kind == stepGrad && slices.Contains(s.args, c) {
				last, readers = i, readers+1
			}
		}
		if readers == 0 {
			t.Errorf("%s: no gradient reads the copy", name)
		}
		if p.vals[c].last < last {
			t.Errorf("%s: copy alive to %d, read at %d", name, p.vals[c].last, last)
		}
	}
	for _, name := range []string{"t1", "t3", "t9", "y"} {
		if _, ok := id[name+" (bfloat16)"]; ok {
			t.Errorf("%s kept in bfloat16", name)
		}
	}
	checkNoOverlap(t, p)
	// At the loss, between the passes, the copies take half of t4's and t7's room.
	liveSum := func(p *program[float32], step string) int {
		for i, s := range p.steps {
			if s.name != step {
				continue
			}
			sum := 0
			for _, v := range p.vals {
				if v.kind == valArena && v.first <= i && i <= v.last {
					sum += v.size
				}
			}
			return sum
		}
		t.Fatalf("no step %s", step)
		return 0
	}
	saved := p.vals[id["t4"]].size - p.vals[id["t4 (bfloat16)"]].size + p.vals[id["t7"]].size - p.vals[id["t7 (bfloat16)"]].size
	if got, want := liveSum(p, "loss"), liveSum(plain.p, "loss")-saved; got != want {
		t.Errorf("%d elements alive at the loss with the copies, want %d (%d without, less %d)", got, want, liveSum(plain.p, "loss"), saved)
	}
}

// chainModel is four 3×3 convolutions with Relus at 32×32 px, then a global pooling, a
// Flatten and a Gemm: a network whose memory peaks between the passes, where every
// convolution's output is kept for the next one's weight gradient and its own Relu's
// mask.
func chainModel() *onnx.Model {
	attr := func(name string, ints ...int64) *onnx.Attribute {
		return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: ints}
	}
	var nodes []*onnx.Node
	var inits []*onnx.Tensor
	in := "x"
	for i, c := range []int64{3, 8, 8, 8} {
		w, out, r := fmt.Sprintf("w%d", i), fmt.Sprintf("c%d", i), fmt.Sprintf("r%d", i)
		nodes = append(nodes,
			&onnx.Node{Name: out, OpType: "Conv", Inputs: []string{in, w}, Outputs: []string{out}, Attributes: []*onnx.Attribute{attr("pads", 1, 1, 1, 1)}},
			&onnx.Node{Name: r, OpType: "Relu", Inputs: []string{out}, Outputs: []string{r}})
		inits = append(inits, testTensor(w, []int64{8, c, 3, 3}, func(j int) float32 { return 0.05 * float32((j*7+i)%11-5) }))
		in = r
	}
	nodes = append(nodes,
		&onnx.Node{Name: "gap", OpType: "GlobalAveragePool", Inputs: []string{in}, Outputs: []string{"g"}},
		&onnx.Node{Name: "fl", OpType: "Flatten", Inputs: []string{"g"}, Outputs: []string{"f"}},
		&onnx.Node{Name: "fc", OpType: "Gemm", Inputs: []string{"f", "wf"}, Outputs: []string{"y"}, Attributes: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, Int: 1}}})
	inits = append(inits, testTensor("wf", []int64{3, 8}, func(j int) float32 { return 0.1 * float32(j%5-2) }))
	return tinyModel(nodes, inits, []int64{2, 3, 32, 32})
}

// TestSavedBF16KeepsTheSmaller checks that Options.SavedBF16 keeps the values in
// bfloat16 where that makes the arena smaller and only there: in chainModel, whose peak
// is between the passes, the four Relus' outputs are copied (the last one's for its
// mask alone) and the arena is smaller; in residualModel at 64×64 px, the MaxPool keeps
// its positions so that its input, the fused BatchNormalization+Relu's output, is copied
// too (read for its mask only), with the two Relus' outputs: smaller; and with its first
// convolution and normalization frozen (their gradients not computed), the copies would
// save nothing: the program is planned as without them, the MaxPool finding its maxima
// in its input.
func TestSavedBF16KeepsTheSmaller(t *testing.T) {
	for _, c := range []struct {
		name      string
		model     *onnx.Model
		trainable []string // all when nil
		copies    int
		smaller   bool
		side      int
	}{
		{"chain", chainModel(), nil, 4, true, 32},
		{"residual", residualModelSized(64), nil, 3, true, 64},
		{"residual, first layers frozen", residualModelSized(64), []string{"w2", "wf", "bf"}, 0, false, 64},
	} {
		m, plain, compact := trainingPair(t, c.model, c.trainable, nil, savedBF16)
		trainable := c.trainable
		if trainable == nil {
			trainable = m.TrainableNames()
		}
		copies := 0
		for _, s := range compact.p.steps {
			if s.kind == stepToBF16 {
				copies++
			}
		}
		if copies != c.copies {
			t.Errorf("%s: %d values kept in bfloat16, want %d", c.name, copies, c.copies)
		}
		for _, s := range compact.p.steps {
			if s.kind != stepForward {
				continue
			}
			if k, ok := s.fwd.k.(*maxPool[float32]); ok && (k.keepPositions || s.saved >= 0) && copies == 0 {
				t.Errorf("%s: %s keeps its positions without the copies", c.name, s.name)
			}
		}
		if got, was := compact.p.mem.size, plain.p.mem.size; got < was != c.smaller || got > was {
			t.Errorf("%s: arena of %d elements with SavedBF16, %d without", c.name, got, was)
		}
		checkNoOverlap(t, compact.p)
		if c.copies == 0 {
			continue
		}
		// The fused Conv+Relu masks read from the copies: the loss is the same, the
		// weight gradients (each reading its input rounded) within bfloat16's precision.
		loss, grads := runBoth(t, m, plain, compact, c.side)
		if loss[0] != loss[1] {
			t.Errorf("%s: loss %v with SavedBF16, %v without", c.name, loss[1], loss[0])
		}
		for _, name := range trainable {
			if e := relErr(grads[1][name], grads[0][name]); e > 1.0/128 {
				t.Errorf("%s: %s: relative error %.3g with SavedBF16", c.name, name, e)
			}
		}
	}
}

// checkNoOverlap checks that no two arena values alive at the same step overlap, other
// than a step's output written in place over an argument (one of inPlaceCandidates,
// read last by that step) and the values sharing their buffers that way.
func checkNoOverlap(t *testing.T, p *program[float32]) {
	t.Helper()
	// Buffers shared in place, as planMemory merges them: a union of values.
	root := make([]int, len(p.vals))
	for i := range root {
		root[i] = i
	}
	find := func(v int) int {
		for root[v] != v {
			v = root[v]
		}
		return v
	}
	for i, s := range p.steps {
		for _, c := range inPlaceCandidates(s) {
			if a := s.args[c]; a >= 0 && p.vals[a].kind == valArena && p.vals[a].last == i && p.vals[a].off == p.vals[s.out].off {
				root[find(s.out)] = find(a)
				break
			}
		}
	}
	for i := range p.steps {
		var live []int
		for v, val := range p.vals {
			if val.kind == valArena && val.size > 0 && val.first <= i && i <= val.last {
				live = append(live, v)
			}
		}
		for j, x := range live {
			for _, y := range live[j+1:] {
				a, b := p.vals[x], p.vals[y]
				if find(x) == find(y) {
					continue // in place
				}
				if a.off < b.off+b.size && b.off < a.off+a.size {
					t.Errorf("step %d %s: %s [%d, %d) and %s [%d, %d) overlap", i, p.steps[i].name,
						a.name, a.off, a.off+a.size, b.name, b.off, b.off+b.size)
				}
			}
		}
	}
}

// runBoth runs a training step of both programs on one batch of two random images of
// side h and returns the loss and every parameter's gradient of each.
func runBoth(t *testing.T, m *Model, plain, compact *Program, h int) (loss [2]float64, grads [2]map[string][]float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 2*3*h*h)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	target := []float32{0, 1, 0, 0, 0, 1}
	for i, p := range []*Program{plain, compact} {
		if err := p.Run([][]float32{x}, target); err != nil {
			t.Fatal(err)
		}
		loss[i] = p.Loss()
		grads[i] = map[string][]float32{}
		for _, name := range m.TrainableNames() {
			grads[i][name] = slices.Clone(p.Grad(name))
		}
	}
	return loss, grads
}

// firstOtherBits returns the first index where got and want differ in their bits, or -1.
func firstOtherBits(got, want []float32) int {
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return i
		}
	}
	return -1
}

// TestSavedBF16Gradients checks a training step with Options.SavedBF16 on the float32
// products against the same step without: the forward pass is the same (the loss to the
// bit); the second convolution's weight gradient, which reads its input t4 rounded,
// differs (so the rounded values were read) within bfloat16's precision of its largest
// value; every other gradient is the same to the bit (the last Relu's mask, read from
// t7's copy, is the same).
func TestSavedBF16Gradients(t *testing.T) {
	m, plain, compact := compactTraining(t)
	loss, grads := runBoth(t, m, plain, compact, 64)
	if loss[0] != loss[1] {
		t.Errorf("loss %v with SavedBF16, %v without", loss[1], loss[0])
	}
	for _, name := range m.TrainableNames() {
		want, got := grads[0][name], grads[1][name]
		same := firstOtherBits(got, want) < 0
		switch {
		case name != "w2" && !same:
			t.Errorf("%s: other bits with SavedBF16 (relative error %.3g)", name, relErr(got, want))
		case name == "w2" && same:
			t.Errorf("w2: the same bits with SavedBF16 on the float32 products: its input was not read rounded")
		case name == "w2":
			if e := relErr(got, want); e > 1.0/256 {
				t.Errorf("w2: relative error %.3g with SavedBF16 (bfloat16: 2⁻⁹ per value)", e)
			}
		}
	}
}

// TestSavedBF16SameBitsUnderBF16Products checks that on the bfloat16 products, which
// round their operands as they pack them, keeping the values in bfloat16 changes no
// bit of the loss or of any gradient: the compact copies round as the packers do, and a
// Relu's output is positive exactly where its copy is; so too the program
// Options.SavedBF16 builds (the max pooling's positions kept, a convolution's weight
// gradient reading its input's copy itself).
func TestSavedBF16SameBitsUnderBF16Products(t *testing.T) {
	if err := kernels.BF16Available(); err != nil {
		t.Skipf("no bfloat16 products here: %v", err)
	}
	defer useBF16Products(t)()
	m, plain, compact := compactTraining(t)
	sameBitsBoth(t, "residual", m, plain, compact, 64)
	if !slices.Contains(m.TrainableNames(), "w2") {
		t.Fatal("no parameter w2")
	}
	// And as Options.SavedBF16 builds vggLikeModel: its max pooling keeping its
	// positions, its input copied too, the convolutions reading the copies themselves.
	m, plain, saved := trainingPair(t, vggLikeModel(), nil, nil, savedBF16)
	positions, direct := false, false
	for _, s := range saved.p.steps {
		if s.kind == stepForward {
			if k, ok := s.fwd.k.(*maxPool[float32]); ok && k.keepPositions && s.saved >= 0 {
				positions = true
			}
		}
		for _, a := range s.args {
			if a >= 0 && s.kind == stepGrad && strings.HasSuffix(saved.p.vals[a].name, " (bfloat16)") {
				direct = true
			}
		}
	}
	if !positions || !direct {
		t.Fatalf("vggLikeModel with SavedBF16: positions kept %v, a copy read by a gradient %v", positions, direct)
	}
	sameBitsBoth(t, "vggLike", m, plain, saved, 32)
	// And as it builds residualModel: the fused BatchNormalization+Relu's gradient reading
	// its mask from the copy of its output.
	m, plain, saved = trainingPair(t, residualModelSized(64), nil, nil, savedBF16)
	masked := false
	for _, s := range saved.p.steps {
		if s.kind == stepGrad && strings.HasPrefix(s.name, "dBatchNormalization") {
			for _, a := range s.args {
				masked = masked || a >= 0 && strings.HasSuffix(saved.p.vals[a].name, " (bfloat16)")
			}
		}
	}
	if !masked {
		t.Fatal("residualModel with SavedBF16: no BatchNormalization gradient reads a copy")
	}
	sameBitsBoth(t, "residual with SavedBF16", m, plain, saved, 64)
}

// sameBitsBoth fails unless two training programs of m give the same loss and gradients
// to the bit on one batch (runBoth).
func sameBitsBoth(t *testing.T, what string, m *Model, plain, other *Program, side int) {
	t.Helper()
	loss, grads := runBoth(t, m, plain, other, side)
	if loss[0] != loss[1] {
		t.Errorf("%s: loss %v with SavedBF16, %v without", what, loss[1], loss[0])
	}
	for _, name := range m.TrainableNames() {
		want, got := grads[0][name], grads[1][name]
		if i := firstOtherBits(got, want); i >= 0 {
			t.Errorf("%s: %s[%d] = %v with SavedBF16, %v without", what, name, i, got[i], want[i])
		}
	}
}

// useBF16Products puts the bfloat16 products in use (the CPU must have them) and returns
// the function that puts the products in use before back.
func useBF16Products(t *testing.T) (restore func()) {
	t.Helper()
	orig := kernels.Current()
	if err := kernels.Use(kernels.BF16); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := kernels.Use(orig); err != nil {
			t.Error(err)
		}
	}
}

// TestNormBF16 checks Options.NormBF16 on residualModel (at 64×64 px): the normalization's
// input t1 is kept in bfloat16 too, its copy written by the normalization's forward step
// as it reads t1 (its saved value, no ToBF16 step), read by the normalization's gradients
// themselves, with no gradient reading the float32 t1, which lives through the forward
// pass only; the arena is smaller than with SavedBF16 alone by about half of t1. The
// forward pass is the same (the loss to the bit), and so is every gradient the backward
// pass computes before the normalization's (w2, wf, bf) and its shift's (bb: the sum of
// its output's gradient); the scale's (a sum of dy·xhat with xhat of the rounded input)
// and the weights' before it (w1) differ, within bfloat16's precision; the bias b1
// before it gets none, as without (the normalized values of the rounded input are
// centred on their own mean).
func TestNormBF16(t *testing.T) {
	m, saved, norm := trainingPair(t, residualModelSized(64), nil, savedBF16, func(o *Options) { o.NormBF16 = true })
	p := norm.p
	id := map[string]int{}
	for i, v := range p.vals {
		id[v.name] = i
	}
	x, c := id["t1"], id["t1 (bfloat16)"]
	if c == 0 {
		t.Fatal("t1 not kept in bfloat16")
	}
	if got, want := p.vals[c].size, (p.vals[x].size+1)/2; got != want {
		t.Errorf("t1: compact copy of %d elements, want %d", got, want)
	}
	for i, s := range p.steps {
		switch {
		case s.kind == stepToBF16 && s.args[0] == x:
			t.Errorf("step %d %s: a pass over t1 after the normalization", i, s.name)
		case s.kind == stepForward && s.name == "BatchNormalization(bn)":
			if s.saved != c || p.vals[x].last != i || p.vals[c].first != i {
				t.Errorf("%s: saved value %d (want the copy %d), t1 alive to %d, copy from %d; want both at %d", s.name, s.saved, c, p.vals[x].last, p.vals[c].first, i)
			}
		case s.kind == stepGrad && slices.Contains(s.args, x):
			t.Errorf("gradient step %s reads the float32 t1", s.name)
		case s.kind == stepGrad && slices.Contains(s.args, c) && !strings.HasPrefix(s.name, "dBatchNormalization"):
			t.Errorf("gradient step %s reads t1's copy", s.name)
		}
	}
	checkNoOverlap(t, p)
	if got, was := p.mem.size, saved.p.mem.size; got >= was || was-got > p.vals[x].size/2+8 {
		t.Errorf("arena of %d elements with NormBF16, %d without: want up to %d less", got, was, p.vals[x].size/2)
	}
	loss, grads := runBoth(t, m, saved, norm, 64)
	if loss[0] != loss[1] {
		t.Errorf("loss %v with NormBF16, %v without", loss[1], loss[0])
	}
	for _, name := range m.TrainableNames() {
		want, got := grads[0][name], grads[1][name]
		same := firstOtherBits(got, want) < 0
		switch name {
		case "w2", "wf", "bf", "bb":
			if !same {
				t.Errorf("%s: other bits with NormBF16 (relative error %.3g)", name, relErr(got, want))
			}
		case "b1":
			// Zero in exact arithmetic (a bias before a normalization in training):
			// rounding noise both ways, the normalized values of the rounded input
			// summing to zero as those of the float32 one do.
			if g, w, scale := maxAbs(got), maxAbs(want), maxAbs(grads[1]["w1"]); g > 1e-5*scale || w > 1e-5*scale {
				t.Errorf("b1: gradient of up to %.3g with NormBF16, %.3g without, the weights' %.3g", g, w, scale)
			}
		default:
			if same {
				t.Errorf("%s: the same bits with NormBF16: the normalization's input was not read rounded", name)
			}
			if e := relErr(got, want); e > 1.0/128 {
				t.Errorf("%s: relative error %.3g with NormBF16", name, e)
			}
		}
	}
}
