package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"gorgonia.org/gorgonia"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// Loss is the scalar a training program differentiates.
type Loss int

const (
	// NoLoss builds a forward-only program.
	NoLoss Loss = iota
	// CrossEntropy is the mean softmax cross-entropy of the (first) output's logits
	// against target probabilities (one-hot, or label-smoothed).
	CrossEntropy
	// WeightedSum is sum(output * target): with a fixed random target it probes every
	// gradient of the network, as the parity tests do.
	WeightedSum
	// BinaryCrossEntropy is the mean binary cross-entropy of the sigmoid of the (first)
	// output's logits against targets in [0, 1], one per output (multi-label).
	BinaryCrossEntropy
)

// Options choose what a program computes.
type Options struct {
	// InputShapes gives the concrete shape of each real input. A model with a single
	// input may set Batch instead: its open dimensions other than the first must then be
	// fixed in the file.
	InputShapes map[string][]int
	Batch       int
	// Training selects training-mode Dropout and BatchNormalization.
	Training bool
	// Trainable names the parameters whose gradients the program computes.
	Trainable []string
	// InputGrads also computes the gradients of the real inputs.
	InputGrads bool
	// Loss is required when gradients are asked for.
	Loss Loss
	// LossParams are the focal and positive weights of the cross-entropies.
	LossParams LossParams
	// Seed seeds the dropout masks.
	Seed uint64
	// Outputs, when set, names the tensors the program outputs instead of the graph's
	// outputs (the loss, if any, is of the first); only the nodes they need are built.
	Outputs []string
	// From, when set, names a tensor the program takes as its single input instead of
	// the model's inputs: the part of the graph upstream of it is not built, and Run
	// takes that tensor's values. Its shape is the one it has when the model's inputs
	// have the shapes InputShapes or Batch give. Nothing upstream of From may be needed
	// by the nodes downstream of it other than through From (see Model.CutPoints).
	From string
	// ConstantWeights promises that the model's parameters stay as they are while the
	// program is in use (an inference over a model that is not being trained, as
	// evaluate's classifier and predict run): each inference-mode BatchNormalization
	// after a convolution is folded into its weights and bias at the first run, and
	// what the kernels derive from the weights (Winograd filters, packed weights) is
	// kept and used without checking the weights again. Weights changed in place after
	// the program's first run give wrong outputs.
	ConstantWeights bool
	// SavedBF16 keeps in bfloat16, between the forward and the backward pass, the
	// activations that every gradient reading them reads rounded anyway: a factor of a
	// matrix product or a convolution's input (which the bfloat16 products round as
	// they pack them: the same bits as without), or a Relu's output, read for where it
	// is positive (the rounding keeps that exactly). Half their memory, for two passes
	// over them (one after their last forward reader, one before their first gradient);
	// a float32 program's gradients then are those of a bfloat16 product's operands.
	// A convolution's gradients read the copies themselves; a max pooling keeps the
	// positions of its maxima rather than its input, which can then be kept in
	// bfloat16 too. finetune sets it with precision bf16. Ignored by float64 programs.
	SavedBF16 bool
	// NormBF16, with SavedBF16, keeps the input of a BatchNormalization in training in
	// bfloat16 between the passes too: its gradients then read it rounded (the
	// normalized values of the rounded input, with the batch statistics of the float32
	// one, which the forward pass computes as without). Unlike SavedBF16's copies this
	// changes the gradients' bits: PyTorch's autocast rounds the same way, normalizing
	// activations it keeps in bfloat16 throughout. The inputs of the normalizations
	// are a convolutional network's largest saved values (ResNet-50's: two thirds of
	// its activations' memory). finetune sets it with precision bf16.
	NormBF16 bool
	// Probes names tensors a caller may look at as a run computes them (Program.Probe),
	// without the program keeping them as it keeps its outputs: the ones the program
	// computes are reported, others are ignored.
	Probes []string
}

// program is a model built into a gorgonia graph for one set of shapes, and the steps
// and memory plan that run it (exec.go, plan.go).
type program[T float] struct {
	g        *gorgonia.ExprGraph
	inputs   []*gorgonia.Node
	inShapes [][]int
	outputs  []*gorgonia.Node
	outNames []string
	// consts are outputs known when the program is built (folded shape arithmetic).
	consts   map[string]*onnx.Tensor
	target   *gorgonia.Node
	loss     *gorgonia.Node
	grads    map[string]*gorgonia.Node
	gradName []string
	rngSrc   *rand.PCG
	// async runs the gradients that go beside the backward pass (asyncGradient); run
	// waits for them.
	async *asyncGroup
	steps []step[T]
	vals  []value[T]
	ids   map[*gorgonia.Node]int
	mem   memPlan
	arena *arena[T]
	// probes are the values of Options.Probes the program computes, by value, with
	// their shapes; probe is told them during runs (nil: not probing).
	probes map[int]probeInfo
	probe  func(name string, shape []int, v []T)
	// trace is told every step's time (nil: not tracing).
	trace func(StepTime)
	// gradDone is told each parameter's name as soon as a run has finished its
	// gradient (nil: not told); readyAt lists, per step, the parameters whose gradient
	// that step finishes (found on the first run told).
	gradDone func(name string)
	readyAt  map[int][]string
}

// probeInfo is a probed tensor: its name and shape.
type probeInfo struct {
	name  string
	shape []int
}

// builder holds the state of one program build.
type builder[T float] struct {
	m        *Model
	opts     Options
	params   map[string][]T
	shapes   *onnx.Shapes
	g        *gorgonia.ExprGraph
	nodes    map[string]*gorgonia.Node
	needGrad map[*gorgonia.Node]bool
	// usedDiff holds the nodes some op differentiates with respect to.
	usedDiff map[*gorgonia.Node]bool
	wrt      map[string]bool
	rng      *rand.Rand
	nextID   int
	// fusedAct maps a Conv or BatchNormalization node to the Relu, or Clip with
	// constant bounds (ReLU6), that is its output's only consumer, or a
	// BatchNormalization to the Mul of the SiLU pair that alone reads its output: the
	// pair is built as one op (the activation applied as the convolution stores its
	// output, or as the normalization writes each channel), and the activation's nodes
	// are skipped.
	fusedAct map[*onnx.Node]fusedAct
	// fusedBN maps a Conv node to the BatchNormalization in inference mode that is its
	// output's only consumer, in a forward-only program with constant weights: the
	// normalization is folded into the convolution's weights and bias once (with the
	// normalization's fused activation, if any, in the convolution's stores).
	fusedBN map[*onnx.Node]*onnx.Node
	// fusedAdd maps a Conv node, in a forward-only program with constant weights, to
	// the residual join after it (planResidualAdds): the Add that alone reads its output
	// (after the normalization folded into it, if any), whose other operand the
	// convolution adds as it stores its output; the Add and the Relu after it are skipped.
	fusedAdd map[*onnx.Node]residualAdd
	// fusedSiLU maps a Mul node that multiplies x by Sigmoid(x) to that Sigmoid, whose
	// output the Mul alone reads: the pair is built as one SiLU op, which keeps only x
	// for its backward pass, and the Sigmoid node is skipped.
	fusedSiLU map[*onnx.Node]*onnx.Node
	// fusedGelu maps the last Mul of Gelu written out (x·0.5·(1+erf(x/√2)), five
	// nodes) to its input x: the chain is built as one Gelu op, which keeps only x, and
	// its other nodes are skipped.
	fusedGelu map[*onnx.Node]string
	// fusedMatMul maps a MatMul to the Transposes (and power-of-two scales) around it
	// that compute as part of it, reading and writing the tensors beyond them in place
	// (planTransposedMatMuls); those nodes are skipped.
	fusedMatMul map[*onnx.Node]transposeFold
	skip        map[*onnx.Node]bool
	// fixed holds, in a program with constant weights, the tensors computed from the
	// model's parameters and build-time constants alone (the parameters themselves, and
	// what Identity, Cast or any deterministic op makes of them): they stay as they are
	// between runs, so a convolution may keep what it derives from its weight and a
	// normalization may fold into it. A tensor that depends on an input of the graph is
	// not fixed.
	fixed map[string]bool
}

// trained reports whether the program trains the tensor: a trained parameter, or a
// tensor computed from one (exporters pass weights through Identity nodes, torch.onnx
// wherever it merged initializers of equal values: randomly initialised
// BatchNormalization scales and shifts).
func (b *builder[T]) trained(name string) bool {
	if n, ok := b.nodes[name]; ok {
		return b.needGrad[n]
	}
	return b.wrt[name]
}

// planFusions finds the Conv and BatchNormalization nodes (of those the program builds)
// whose output feeds only a Relu, or a Clip with constant bounds (MobileNet's ReLU6),
// and is no output of the program: such a pair computes as one op, with the
// activation's output name; a BatchNormalization whose output feeds only a SiLU
// (EfficientNet's) likewise (in constant-weight programs only one folded into the
// convolution before it, whose products then store the SiLU). It finds the Sigmoid
// nodes whose output, no output of the program, feeds only a Mul by the Sigmoid's own
// input (x·σ(x), SiLU or Swish as exporters write it): the pair computes as one op
// with the Mul's output name. Then Gelu written out (planGelu) and the Transposes
// around a MatMul (planTransposedMatMuls). The graph itself is not changed.
func (b *builder[T]) planFusions(needed map[*onnx.Node]bool, outputs []string) {
	b.fusedAct, b.fusedSiLU, b.skip = map[*onnx.Node]fusedAct{}, map[*onnx.Node]*onnx.Node{}, map[*onnx.Node]bool{}
	b.fusedGelu, b.fusedBN = map[*onnx.Node]string{}, map[*onnx.Node]*onnx.Node{}
	b.fusedMatMul = map[*onnx.Node]transposeFold{}
	g := b.m.ir.Graph
	uses := map[string]int{}
	for _, n := range g.Nodes {
		if needed[n] {
			for _, in := range n.Inputs {
				uses[in]++
			}
		}
	}
	for _, o := range outputs {
		uses[o]++
	}
	acts := map[string]fusedAct{} // by input
	for _, n := range g.Nodes {
		if !needed[n] || n.Domain != "" || len(n.Inputs) < 1 || len(n.Outputs) != 1 {
			continue
		}
		switch n.OpType {
		case "Relu":
			acts[n.Inputs[0]] = fusedAct{node: n, act: kernels.Activation{Kind: kernels.ReluActivation}}
		case "Clip":
			if lo, hi, ok := b.clipBounds(n); ok {
				acts[n.Inputs[0]] = fusedAct{node: n, act: kernels.Activation{Kind: kernels.ClipActivation, Lo: lo, Hi: hi}}
			}
		}
	}
	for _, n := range g.Nodes {
		if !needed[n] || n.OpType != "Conv" && n.OpType != "BatchNormalization" || n.Domain != "" || len(n.Outputs) != 1 {
			continue
		}
		if a, ok := acts[n.Outputs[0]]; ok && uses[n.Outputs[0]] == 1 {
			b.fusedAct[n] = a
			b.skip[a.node] = true
		}
	}
	if b.constantWeights() {
		b.fixed = fixedTensors(g, b.params, b.shapes.Consts)
		bns := map[string]*onnx.Node{} // by input
		for _, n := range g.Nodes {
			if needed[n] && n.OpType == "BatchNormalization" && n.Domain == "" && len(n.Inputs) == 5 && len(n.Outputs) == 1 &&
				n.AttrInt("training_mode", 0) == 0 && n.AttrInt("spatial", 1) == 1 {
				bns[n.Inputs[0]] = n
			}
		}
		for _, n := range g.Nodes {
			if !needed[n] || n.OpType != "Conv" || n.Domain != "" || len(n.Outputs) != 1 {
				continue
			}
			bn, ok := bns[n.Outputs[0]]
			if !ok || uses[n.Outputs[0]] != 1 || !b.allFixed(n.Inputs[1:]) || !b.allFixed(bn.Inputs[1:]) {
				continue // the fold takes the weights and the statistics as constants
			}
			b.fusedBN[n] = bn
			b.skip[bn] = true
		}
	}
	sigmoids := map[string]*onnx.Node{} // by output
	for _, n := range g.Nodes {
		if needed[n] && n.OpType == "Sigmoid" && n.Domain == "" && len(n.Inputs) == 1 && len(n.Outputs) == 1 {
			sigmoids[n.Outputs[0]] = n
		}
	}
	for _, n := range g.Nodes {
		if !needed[n] || n.OpType != "Mul" || n.Domain != "" || len(n.Inputs) != 2 || len(n.Outputs) != 1 {
			continue
		}
		for i, in := range n.Inputs {
			s, ok := sigmoids[in]
			if ok && uses[in] == 1 && n.Inputs[1-i] == s.Inputs[0] && !b.skip[s] {
				b.fusedSiLU[n] = s
				b.skip[s] = true
				break
			}
		}
	}
	// A BatchNormalization whose output only a SiLU pair reads (its Sigmoid and Mul)
	// computes as one op with the pair, which then need not keep the normalization's
	// output (the SiLU's derivative recomputes it from X). In constant-weight programs
	// only those folded into the convolution before them (the convolution's products
	// store the SiLU): a normalization computed on its own keeps its own bits there.
	producer := map[string]*onnx.Node{}
	if b.constantWeights() {
		for _, bn := range b.fusedBN {
			producer[bn.Outputs[0]] = bn
		}
	} else {
		for _, n := range g.Nodes {
			if needed[n] && n.OpType == "BatchNormalization" && n.Domain == "" && len(n.Outputs) == 1 {
				producer[n.Outputs[0]] = n
			}
		}
	}
	for mul, s := range b.fusedSiLU {
		bn, ok := producer[s.Inputs[0]]
		if !ok || uses[s.Inputs[0]] != 2 {
			continue
		}
		b.fusedAct[bn] = fusedAct{node: mul, act: kernels.Activation{Kind: kernels.SiLUActivation}}
		b.skip[mul] = true
		delete(b.fusedSiLU, mul)
	}
	ix := newFusionIndex(g, needed, uses)
	b.planResidualAdds(needed, ix, acts)
	b.planGelu(needed, ix)
	b.planTransposedMatMuls(needed, ix)
}

// residualAdd is a residual join fused into the convolution before it: the Add, its
// other operand, and the Relu after the Add (act.node nil: none).
type residualAdd struct {
	add      *onnx.Node
	residual string
	act      fusedAct
}

// planResidualAdds finds, in a forward-only program with constant weights, the Adds of
// two tensors of the same shape one of which is a convolution's output (after the
// normalization folded into it, with no activation between) that the Add alone reads,
// and that is computed after the other operand: the convolution adds the other operand
// as it stores its output (kernels.Conv2DForwardConstantAdd), over it where nothing
// reads it after (the op's inPlace), and writes the Add's output, or that of the Relu
// that alone reads it. ResNet's blocks end so (the Add of the last convolution's
// normalized output and the block's input, then a Relu), MobileNet's and
// EfficientNet's inverted residuals too (without the Relu): the Add's pass over three
// tensors is gone.
func (b *builder[T]) planResidualAdds(needed map[*onnx.Node]bool, ix fusionIndex, acts map[string]fusedAct) {
	b.fusedAdd = map[*onnx.Node]residualAdd{}
	if !b.constantWeights() {
		return
	}
	producedAt := map[string]int{} // every node's outputs, multi-output nodes too
	for i, n := range b.m.ir.Graph.Nodes {
		for _, o := range n.Outputs {
			producedAt[o] = i
		}
	}
	convOf := map[string]*onnx.Node{} // a fusable convolution, by the tensor it writes
	for _, n := range b.m.ir.Graph.Nodes {
		if !needed[n] || n.OpType != "Conv" || n.Domain != "" || len(n.Outputs) != 1 || b.skip[n] {
			continue
		}
		if _, ok := b.fusedAct[n]; ok || !b.allFixed(n.Inputs[1:]) {
			continue
		}
		out := n.Outputs[0]
		if bn, ok := b.fusedBN[n]; ok {
			if _, act := b.fusedAct[bn]; act {
				continue
			}
			out = bn.Outputs[0]
		}
		convOf[out] = n
	}
	same := func(a, c string) bool {
		da, ok1 := b.shapes.Dims[a]
		dc, ok2 := b.shapes.Dims[c]
		return ok1 && ok2 && slices.Equal(da, dc)
	}
	for _, add := range b.m.ir.Graph.Nodes {
		if !needed[add] || add.OpType != "Add" || add.Domain != "" || len(add.Inputs) != 2 || len(add.Outputs) != 1 {
			continue
		}
		if !same(add.Inputs[0], add.Inputs[1]) || !same(add.Inputs[0], add.Outputs[0]) {
			continue // a broadcast
		}
		for i, in := range add.Inputs {
			conv, ok := convOf[in]
			if !ok || ix.uses[in] != 1 || b.fusedAdd[conv].add != nil {
				continue
			}
			other := add.Inputs[1-i]
			if at, ok := producedAt[other]; ok && at > producedAt[conv.Outputs[0]] {
				continue // computed after the convolution
			}
			if _, ok := b.shapes.Consts[other]; ok {
				continue
			}
			j := residualAdd{add: add, residual: other}
			if a, ok := acts[add.Outputs[0]]; ok && ix.uses[add.Outputs[0]] == 1 {
				j.act = a
				b.skip[a.node] = true
			}
			b.fusedAdd[conv] = j
			b.skip[add] = true
			break
		}
	}
}

// fusionIndex is what the fusion planners look up: the node computing each tensor
// (among the needed single-output nodes of the default domain), the node reading each
// (the only one where uses is 1), and how many read it (the program's outputs counted).
type fusionIndex struct {
	producer, reader map[string]*onnx.Node
	uses             map[string]int
}

func newFusionIndex(g *onnx.Graph, needed map[*onnx.Node]bool, uses map[string]int) fusionIndex {
	ix := fusionIndex{producer: map[string]*onnx.Node{}, reader: map[string]*onnx.Node{}, uses: uses}
	for _, n := range g.Nodes {
		if !needed[n] || n.Domain != "" {
			continue
		}
		if len(n.Outputs) == 1 {
			ix.producer[n.Outputs[0]] = n
		}
		for _, in := range n.Inputs {
			ix.reader[in] = n
		}
	}
	return ix
}

// single returns the node of type op that computes name when only that node's reader
// reads it and it is not fused already (skip).
func (ix fusionIndex) single(name, op string, skip map[*onnx.Node]bool) *onnx.Node {
	p := ix.producer[name]
	if p == nil || p.OpType != op || ix.uses[name] != 1 || skip[p] {
		return nil
	}
	return p
}

// fixedTensors returns the tensors of g computed from params and consts alone (see
// builder.fixed); g's nodes are in topological order, as ONNX requires.
func fixedTensors[T float](g *onnx.Graph, params map[string][]T, consts map[string]*onnx.Tensor) map[string]bool {
	fixed := map[string]bool{}
	for name := range params {
		fixed[name] = true
	}
	for name := range consts {
		fixed[name] = true
	}
	for _, n := range g.Nodes {
		random := strings.HasPrefix(n.OpType, "Random") || n.OpType == "Multinomial" || n.OpType == "Bernoulli"
		if random || len(n.Inputs) == 0 || !allIn(fixed, n.Inputs) {
			continue
		}
		for _, out := range n.Outputs {
			fixed[out] = true
		}
	}
	return fixed
}

// allIn reports whether every name given (empty ones, omitted optional inputs, aside)
// is in set.
func allIn(set map[string]bool, names []string) bool {
	for _, name := range names {
		if name != "" && !set[name] {
			return false
		}
	}
	return true
}

// allFixed reports whether every tensor named (empty names aside) stays as it is
// between runs (builder.fixed).
func (b *builder[T]) allFixed(names []string) bool {
	return allIn(b.fixed, names)
}

// constantWeights reports whether the program may take its weights as constant
// (Options.ConstantWeights): a forward-only program that asks for it.
func (b *builder[T]) constantWeights() bool {
	return b.opts.ConstantWeights && !b.opts.Training && !b.opts.InputGrads && len(b.opts.Trainable) == 0
}

// fusedAct is a Relu, Clip or SiLU fused after the node it reads (node: the
// activation's last node, whose output the pair writes).
type fusedAct struct {
	node *onnx.Node
	act  kernels.Activation
}

// clipBounds returns the bounds of a Clip node when they are known as the program is
// built: the attributes before opset 11, constant inputs from it (a bound not given
// is infinite).
func (b *builder[T]) clipBounds(n *onnx.Node) (lo, hi float64, ok bool) {
	bounds, known := clipConstBounds(n, b.m.ir.Opset(""), func(i int) (float32, bool) { return b.scalarConst(n.Inputs[i]) })
	return bounds[0], bounds[1], known[0] && known[1]
}

// scalarConst returns the value of a float scalar known when the program is built and
// not a weight (a weight may be trained).
func (b *builder[T]) scalarConst(name string) (float32, bool) {
	if _, param := b.params[name]; param {
		return 0, false
	}
	k := b.shapes.Consts[name]
	if k == nil || k.DataType != onnx.Float || len(k.Floats) != 1 {
		return 0, false
	}
	return k.Floats[0], true
}

// planGelu finds Gelu as exporters write it out (torch.onnx's F.gelu below opset 20):
//
//	d = Div(x, √2); e = Erf(d); a = Add(e, 1); m = Mul(x, a); y = Mul(m, 0.5)
//
// (either operand order in Add and the Muls), each intermediate read by the next node
// alone and no output of the program: the five compute as one op with y's name.
func (b *builder[T]) planGelu(needed map[*onnx.Node]bool, ix fusionIndex) {
	g := b.m.ir.Graph
	// constant reports whether name is a scalar constant within 1e-6 of v (not a
	// parameter, which training may change).
	constant := func(name string, v float64) bool {
		k, ok := b.scalarConst(name)
		return ok && math.Abs(float64(k)-v) <= 1e-6
	}
	// other returns the operand of a two-input node beside the one that is want, "" if
	// want is neither.
	other := func(n *onnx.Node, want func(string) bool) (string, string) {
		if len(n.Inputs) != 2 {
			return "", ""
		}
		if want(n.Inputs[1]) {
			return n.Inputs[0], n.Inputs[1]
		}
		if want(n.Inputs[0]) {
			return n.Inputs[1], n.Inputs[0]
		}
		return "", ""
	}
	single := func(name, op string) *onnx.Node { return ix.single(name, op, b.skip) }
	for _, y := range g.Nodes {
		if !needed[y] || y.OpType != "Mul" || y.Domain != "" || len(y.Outputs) != 1 || b.skip[y] {
			continue
		}
		mName, _ := other(y, func(s string) bool { return constant(s, 0.5) })
		m := single(mName, "Mul")
		if m == nil {
			continue
		}
		for i := range 2 {
			x, aName := m.Inputs[i], m.Inputs[1-i]
			a := single(aName, "Add")
			if a == nil {
				continue
			}
			eName, _ := other(a, func(s string) bool { return constant(s, 1) })
			e := single(eName, "Erf")
			if e == nil {
				continue
			}
			d := single(e.Inputs[0], "Div")
			if d == nil || len(d.Inputs) != 2 || d.Inputs[0] != x || !constant(d.Inputs[1], math.Sqrt2) {
				continue
			}
			b.fusedGelu[y] = x
			for _, n := range []*onnx.Node{d, e, a, m} {
				b.skip[n] = true
			}
			break
		}
	}
}

func resolveInputShapes(m *Model, opts Options) (map[string][]int, error) {
	ins := m.Inputs()
	shapes := map[string][]int{}
	for _, in := range ins {
		if s, ok := opts.InputShapes[in.Name]; ok {
			if len(s) != len(in.Shape) {
				return nil, fmt.Errorf("input %q: got rank %d shape %v, the model expects rank %d %s",
					in.Name, len(s), s, len(in.Shape), shapeString(in.Shape))
			}
			for i, d := range in.Shape {
				if d > 0 && s[i] != d {
					return nil, fmt.Errorf("input %q: got shape %v, the model expects %s", in.Name, s, shapeString(in.Shape))
				}
				if s[i] <= 0 {
					return nil, fmt.Errorf("input %q: shape %v has a non-positive dimension", in.Name, s)
				}
			}
			shapes[in.Name] = append([]int(nil), s...)
			continue
		}
		if len(ins) != 1 || opts.Batch <= 0 {
			return nil, fmt.Errorf("input %q: no shape given (set Options.InputShapes, or Batch for a single-input model)", in.Name)
		}
		s := append([]int(nil), in.Shape...)
		for i, d := range s {
			switch {
			case i == 0:
				s[0] = opts.Batch
			case d <= 0:
				return nil, fmt.Errorf("input %q: dimension %d of %s is not fixed in the model; give InputShapes", in.Name, i, shapeString(in.Shape))
			}
		}
		shapes[in.Name] = s
	}
	return shapes, nil
}

func shapeString(s []int) string {
	out := "["
	for i, d := range s {
		if i > 0 {
			out += " "
		}
		if d < 0 {
			out += "N"
		} else {
			out += fmt.Sprint(d)
		}
	}
	return out + "]"
}

func newProgram[T float](m *Model, opts Options, params map[string][]T) (p *program[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("building the program: gorgonia: %v", r)
		}
	}()
	inShapes, err := resolveInputShapes(m, opts)
	if err != nil {
		return nil, err
	}
	in64 := map[string][]int64{}
	for k, v := range inShapes {
		in64[k] = int64sOf(v)
	}
	shapes, err := onnx.InferShapes(m.ir, in64)
	if err != nil {
		return nil, err
	}
	src := rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15)
	b := &builder[T]{
		m: m, opts: opts, params: params, shapes: shapes,
		g:        gorgonia.NewGraph(),
		nodes:    map[string]*gorgonia.Node{},
		needGrad: map[*gorgonia.Node]bool{},
		usedDiff: map[*gorgonia.Node]bool{},
		wrt:      map[string]bool{},
		rng:      rand.New(src),
	}
	for _, name := range opts.Trainable {
		if !m.trainable[name] {
			if _, ok := m.params[name]; ok {
				return nil, fmt.Errorf("parameter %q cannot be trained: no gradient reaches it", name)
			}
			return nil, fmt.Errorf("no parameter named %q", name)
		}
		b.wrt[name] = true
	}
	p = &program[T]{g: b.g, consts: map[string]*onnx.Tensor{}, grads: map[string]*gorgonia.Node{}, rngSrc: src, async: new(asyncGroup)}
	addInput := func(name string, s []int) {
		n := gorgonia.NewTensor(b.g, dtypeOf[T](), len(s), gorgonia.WithShape(s...), gorgonia.WithName(name))
		b.nodes[name] = n
		b.needGrad[n] = opts.InputGrads
		p.inputs = append(p.inputs, n)
		p.inShapes = append(p.inShapes, s)
	}
	outNames := opts.Outputs
	if len(outNames) == 0 {
		for _, vi := range m.ir.Graph.Outputs {
			outNames = append(outNames, vi.Name)
		}
	}
	if _, ok := shapes.Dims[opts.From]; opts.From != "" && !ok {
		return nil, fmt.Errorf("Options.From: no tensor %q in the graph", opts.From)
	}
	needed, err := neededNodes(m.ir.Graph, outNames, opts.From)
	if err != nil {
		return nil, err
	}
	if opts.From != "" {
		d := shapes.Dims[opts.From]
		if _, c := shapes.Consts[opts.From]; c {
			return nil, fmt.Errorf("Options.From: %q is a constant of the graph, not an activation", opts.From)
		}
		addInput(opts.From, intsOf(d))
	} else {
		for _, in := range m.Inputs() {
			addInput(in.Name, inShapes[in.Name])
		}
	}
	b.planFusions(needed, outNames)
	for _, n := range m.ir.Graph.Nodes {
		if b.skip[n] || !needed[n] {
			continue
		}
		if err := b.addNode(n); err != nil {
			return nil, err
		}
	}
	for _, name := range outNames {
		if c, ok := shapes.Consts[name]; ok {
			p.consts[name] = c
			continue
		}
		n, ok := b.nodes[name]
		if !ok {
			return nil, fmt.Errorf("output %q is not computed by any node", name)
		}
		p.outputs = append(p.outputs, n)
		p.outNames = append(p.outNames, name)
	}
	if err := b.addLoss(p); err != nil {
		return nil, err
	}
	keep := append([]*gorgonia.Node(nil), p.outputs...)
	if p.loss != nil {
		keep = append(keep, p.loss)
	}
	for _, name := range p.gradName {
		keep = append(keep, p.grads[name])
	}
	if a, ok := any(m.arena).(*arena[T]); ok {
		p.arena = a
	} else {
		p.arena = newArena[T]()
	}
	if err := p.schedule(keep, params); err != nil {
		return nil, err
	}
	p.findProbes(opts.Probes, b.nodes)
	if _, ok := any(params).(map[string][]float32); ok && len(opts.Trainable) > 0 {
		m.trainedWeights(opts.Trainable)
	}
	p.rematerialize()
	if opts.SavedBF16 {
		p.planSavedBF16()
	} else {
		p.planMemory()
		p.planWaits()
	}
	p.arena.reserve(p.mem.size)
	return p, nil
}

// paramGradBuffers returns, for each data input of n that is a trained parameter read
// by no other node, the buffer its gradient goes to: shared by every training program
// of the model (float32), so that programs for several batch sizes hold one copy of
// the parameters' gradients. A parameter read by several nodes gets per-node buffers,
// which gorgonia sums.
func (b *builder[T]) paramGradBuffers(n *onnx.Node, data []int, diff []bool) []func(int) []T {
	var bufs []func(int) []T
	for j, i := range data {
		name := n.Inputs[i]
		if !diff[j] || !b.wrt[name] || b.m.paramUses[name] != 1 {
			continue
		}
		if bufs == nil {
			bufs = make([]func(int) []T, len(data))
		}
		bufs[j] = func(size int) []T { return sharedGrad[T](b.m, name, size) }
	}
	return bufs
}

// sharedGrad returns the model's gradient buffer of a parameter, made on first use; it
// is a program's own for float64 (finite-difference checks build those).
func sharedGrad[T float](m *Model, name string, size int) []T {
	var z T
	if _, ok := any(z).(float32); !ok {
		return make([]T, size)
	}
	m.gradMu.Lock()
	defer m.gradMu.Unlock()
	g := m.grads[name]
	if len(g) != size {
		g = make([]float32, size)
		m.grads[name] = g
	}
	return any(g).([]T)
}

// neededNodes returns the nodes the outputs need, walking back from them and stopping
// at from (when set). It fails when the walk reaches a real graph input although from
// is set (the outputs need more than from).
func neededNodes(g *onnx.Graph, outputs []string, from string) (map[*onnx.Node]bool, error) {
	producer := map[string]*onnx.Node{}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				producer[o] = n
			}
		}
	}
	inits := map[string]bool{}
	for _, t := range g.Initializers {
		inits[t.Name] = true
	}
	needed := map[*onnx.Node]bool{}
	seen := map[string]bool{}
	reachedFrom := false
	stack := append([]string(nil), outputs...)
	for len(stack) > 0 {
		name := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if name == from {
			reachedFrom = true
			continue
		}
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		n, ok := producer[name]
		if !ok {
			if from != "" && !inits[name] {
				return nil, fmt.Errorf("Options.From %q: the outputs also need %q, which is upstream of it or an input", from, name)
			}
			continue
		}
		if !needed[n] {
			needed[n] = true
			stack = append(stack, n.Inputs...)
		}
	}
	if from != "" && !reachedFrom {
		return nil, fmt.Errorf("Options.From %q: the outputs do not depend on it", from)
	}
	return needed, nil
}

// tensorNode returns the graph node of a float tensor, making parameter and constant
// nodes on first use.
func (b *builder[T]) tensorNode(c *opContext, i int, castInts bool) (*gorgonia.Node, error) {
	name := c.node.Inputs[i]
	if n, ok := b.nodes[name]; ok {
		return n, nil
	}
	var data []T
	var shape []int
	trainable := false
	if p, ok := b.params[name]; ok {
		data, shape, trainable = p, b.m.shapes[name], b.wrt[name]
	} else if k, ok := b.shapes.Consts[name]; ok && k.DataType == onnx.Float {
		data, shape = make([]T, len(k.Floats)), intsOf(k.Dims)
		for j, v := range k.Floats {
			data[j] = T(v)
		}
	} else if ok && castInts && k.DataType.IsInt() && len(k.Ints) == k.NumElements() {
		data, shape = make([]T, len(k.Ints)), intsOf(k.Dims)
		for j, v := range k.Ints {
			data[j] = T(v)
		}
	} else {
		return nil, c.errorf("input %d %q is not a float tensor computed by the graph", i, name)
	}
	var n *gorgonia.Node
	if len(shape) == 0 {
		n = gorgonia.NewScalar(b.g, dtypeOf[T](), gorgonia.WithName(name), gorgonia.WithValue(valueOf(data, shape)))
	} else {
		n = gorgonia.NewTensor(b.g, dtypeOf[T](), len(shape), gorgonia.WithShape(shape...), gorgonia.WithName(name),
			gorgonia.WithValue(valueOf(data, shape)))
	}
	b.nodes[name] = n
	b.needGrad[n] = trainable
	return n, nil
}

func (b *builder[T]) addNode(n *onnx.Node) error {
	folded := true
	for _, out := range n.Outputs {
		if _, ok := b.shapes.Consts[out]; out != "" && !ok {
			folded = false
		}
	}
	if folded {
		return nil // computed when the program was built
	}
	newKernels, ok := constructorFor[T](n.OpType)
	if !ok {
		return fmt.Errorf("node %q: unsupported op %s", n.Name, n.OpType)
	}
	schema := schemaOf(n)
	var fuseAct kernels.Activation
	fuseSiLU := false
	var foldBN *bnFold
	join, addResidual := b.fusedAdd[n]
	if bn, ok := b.fusedBN[n]; ok {
		// The convolution reads the normalization's parameters after its own inputs and
		// writes its output (or that of the Relu fused after it).
		fused := *n
		ins := append([]string(nil), n.Inputs...)
		for len(ins) < 3 {
			ins = append(ins, "")
		}
		fused.Inputs = append(ins, bn.Inputs[1:5]...)
		fused.Outputs = bn.Outputs
		if a, ok := b.fusedAct[bn]; ok {
			fused.Outputs, fuseAct = a.node.Outputs, a.act
		}
		n, foldBN = &fused, &bnFold{eps: float64(bn.AttrFloat("epsilon", 1e-5)), node: bn.Name}
	}
	if a, ok := b.fusedAct[n]; ok {
		// The pair's op writes the activation's output.
		fused := *n
		fused.Outputs = a.node.Outputs
		n, fuseAct = &fused, a.act
	}
	if addResidual {
		// The convolution reads the Add's other operand last and writes the Add's output
		// (or that of the Relu after it).
		fused := *n
		ins := append([]string(nil), n.Inputs...)
		for len(ins) < 3 {
			ins = append(ins, "")
		}
		fused.Inputs, fused.Outputs = append(ins, join.residual), join.add.Outputs
		if join.act.node != nil {
			fused.Outputs, fuseAct = join.act.node.Outputs, join.act.act
		}
		n = &fused
	}
	if s, ok := b.fusedSiLU[n]; ok {
		// The Mul reads x alone.
		fused := *n
		fused.Inputs = s.Inputs
		n, fuseSiLU = &fused, true
	}
	fuseGelu := false
	if x, ok := b.fusedGelu[n]; ok {
		// The last Mul reads x alone.
		fused := *n
		fused.Inputs = []string{x}
		n, fuseGelu = &fused, true
	}
	var foldTransposes *transposeFold
	if f, ok := b.fusedMatMul[n]; ok {
		// The MatMul reads the tensors before the transposes and writes the one after.
		fused := *n
		fused.Inputs, fused.Outputs = f.ins[:], []string{f.out}
		n, foldTransposes = &fused, &f
	}
	c := &opContext{node: n, opset: b.m.ir.Opset(""), training: b.opts.Training, savedBF16: b.opts.SavedBF16, normBF16: b.opts.SavedBF16 && b.opts.NormBF16, rng: b.rng,
		trained: func(i int) bool { return i < len(n.Inputs) && b.trained(n.Inputs[i]) }, fuseAct: fuseAct, fuseSiLU: fuseSiLU, fuseGelu: fuseGelu,
		fixed:          func(i int) bool { return i < len(n.Inputs) && b.fixed[n.Inputs[i]] },
		foldBN:         foldBN,
		addResidual:    addResidual,
		foldTransposes: foldTransposes,
		filterCache:    b.m.filterCache}
	for _, in := range n.Inputs {
		c.in = append(c.in, intsOrNil(b.shapes.Dims, in))
		c.consts = append(c.consts, b.shapes.Consts[in])
	}
	for _, out := range n.Outputs {
		c.out = append(c.out, intsOrNil(b.shapes.Dims, out))
	}
	ks, err := newKernels(c)
	if err != nil {
		return err
	}
	children := make(gorgonia.Nodes, len(ks.data))
	diff := make([]bool, len(ks.data))
	inShapes := make([][]int, len(ks.data))
	anyGrad := false
	for j, i := range ks.data {
		child, err := b.tensorNode(c, i, slices.Contains(ks.castInts, i))
		if err != nil {
			return err
		}
		children[j] = child
		inShapes[j] = c.in[i]
		diff[j] = schema.IsDifferentiable(i) && b.needGrad[child]
		if diff[j] {
			b.usedDiff[child] = true
		}
		anyGrad = anyGrad || diff[j]
	}
	for o, k := range ks.outputs {
		if k == nil || o >= len(n.Outputs) || n.Outputs[o] == "" {
			continue
		}
		b.nextID++
		inNames := make([]string, len(ks.data))
		for j, i := range ks.data {
			inNames[j] = n.Inputs[i]
		}
		op := &nodeOp[T]{
			id:       b.nextID,
			name:     fmt.Sprintf("%s(%s)", n.OpType, n.Name),
			node:     n.Name,
			inNames:  inNames,
			outName:  n.Outputs[o],
			inShapes: inShapes,
			outShape: c.out[o],
			k:        k,
			diff:     diff,
		}
		if !ks.allOutputs || len(ks.outputs) == 1 {
			// Outputs that each send a gradient to the same input cannot share its buffer.
			op.gradBuf = b.paramGradBuffers(n, ks.data, diff)
		}
		if o > 0 {
			if !ks.allOutputs {
				op.diff = make([]bool, len(diff)) // side outputs (running statistics) carry no gradient
			}
			op.name = fmt.Sprintf("%s(%s)#%d", n.OpType, n.Name, o)
		}
		node, err := gorgonia.ApplyOp(op, children...)
		if err != nil {
			return fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
		}
		b.nodes[n.Outputs[o]] = node
		b.needGrad[node] = anyGrad && (o == 0 || ks.allOutputs)
	}
	return nil
}

func intsOrNil(dims map[string][]int64, name string) []int {
	if name == "" {
		return nil
	}
	d, ok := dims[name]
	if !ok {
		return nil
	}
	return intsOf(d)
}

func (b *builder[T]) addLoss(p *program[T]) error {
	wantGrads := len(b.opts.Trainable) > 0 || b.opts.InputGrads
	if b.opts.Loss == NoLoss {
		if wantGrads {
			return fmt.Errorf("gradients need a loss: set Options.Loss")
		}
		return nil
	}
	if len(p.outputs) == 0 {
		return fmt.Errorf("the model has no float output to take a loss of")
	}
	out := p.outputs[0]
	shape := []int(out.Shape())
	p.target = gorgonia.NewTensor(b.g, dtypeOf[T](), len(shape), gorgonia.WithShape(shape...), gorgonia.WithName("toolkit.target"))
	var k kernel[T]
	switch b.opts.Loss {
	case CrossEntropy, BinaryCrossEntropy:
		var err error
		if k, err = lossKernel[T](b.opts.Loss, b.opts.LossParams, shape, p.outNames[0]); err != nil {
			return err
		}
	case WeightedSum:
		k = weightedSum[T]{}
	default:
		return fmt.Errorf("unknown loss %d", b.opts.Loss)
	}
	b.nextID++
	op := &nodeOp[T]{id: b.nextID, name: "loss", node: "loss", inNames: []string{p.outNames[0], "target"}, outName: "loss", inShapes: [][]int{shape, shape}, outShape: nil, k: k, diff: []bool{b.needGrad[out], false}}
	loss, err := gorgonia.ApplyOp(op, out, p.target)
	if err != nil {
		return fmt.Errorf("building the loss: %w", err)
	}
	p.loss = loss
	if !wantGrads {
		return nil
	}
	var wrt gorgonia.Nodes
	var names []string
	for _, name := range b.opts.Trainable {
		n, ok := b.nodes[name]
		if !ok {
			return fmt.Errorf("parameter %q is not used by the graph", name)
		}
		wrt = append(wrt, n)
		names = append(names, name)
	}
	if b.opts.InputGrads {
		for _, n := range p.inputs {
			if !b.usedDiff[n] {
				continue // an input no gradient reaches (BatchNormalization's mean, say)
			}
			wrt = append(wrt, n)
			names = append(names, n.Name())
		}
	}
	grads, err := gorgonia.Grad(loss, wrt...)
	if err != nil {
		return fmt.Errorf("building gradients: %w", err)
	}
	for i, name := range names {
		p.grads[name] = grads[i]
	}
	p.gradName = names
	return nil
}

// data returns the values of a node the caller reads after a run.
func (p *program[T]) data(n *gorgonia.Node) []T {
	id, ok := p.ids[n]
	if !ok {
		return nil
	}
	v := p.vals[id]
	if v.kind == valArena {
		if len(p.arena.buf) < v.off+v.size {
			return nil // not run yet
		}
		return p.arena.buf[v.off : v.off+v.size : v.off+v.size]
	}
	return v.data
}

// output returns output i's values after run.
func (p *program[T]) output(i int) []T { return p.data(p.outputs[i]) }

// grad returns the gradient of a trainable parameter or input after run.
func (p *program[T]) grad(name string) []T {
	n, ok := p.grads[name]
	if !ok {
		return nil
	}
	return p.data(n)
}

func (p *program[T]) lossValue() float64 {
	s := p.data(p.loss)
	if len(s) == 0 {
		return 0
	}
	return float64(s[0])
}
