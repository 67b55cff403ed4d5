package backend

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

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
}

// program is a model built into a gorgonia graph for one set of shapes.
type program[T float] struct {
	g        *gorgonia.ExprGraph
	vm       gorgonia.VM
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
	async    *asyncGroup
	// fusedRelu maps a Conv node to the Relu that is its output's only
	// consumer: the pair is built as one op (the Relu applied as the
	// convolution stores its output), and the Relu node is skipped.
	fusedRelu map[*onnx.Node]*onnx.Node
	skip      map[*onnx.Node]bool
}

// planFusions finds the Conv nodes (of those the program builds) whose output feeds
// only a Relu and is no output of the program: a Conv+Relu pair computes as one op,
// with the Relu's output name. The graph itself is not changed.
func (b *builder[T]) planFusions(needed map[*onnx.Node]bool, outputs []string) {
	b.fusedRelu, b.skip = map[*onnx.Node]*onnx.Node{}, map[*onnx.Node]bool{}
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
	byInput := map[string]*onnx.Node{}
	for _, n := range g.Nodes {
		if needed[n] && n.OpType == "Relu" && n.Domain == "" && len(n.Inputs) == 1 && len(n.Outputs) == 1 {
			byInput[n.Inputs[0]] = n
		}
	}
	for _, n := range g.Nodes {
		if !needed[n] || n.OpType != "Conv" || n.Domain != "" || len(n.Outputs) != 1 {
			continue
		}
		if r, ok := byInput[n.Outputs[0]]; ok && uses[n.Outputs[0]] == 1 {
			b.fusedRelu[n] = r
			b.skip[r] = true
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
		async:    new(asyncGroup),
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
	p = &program[T]{g: b.g, consts: map[string]*onnx.Tensor{}, grads: map[string]*gorgonia.Node{}, rngSrc: src, async: b.async}
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
	if len(b.g.AllNodes()) > 0 {
		p.vm = gorgonia.NewTapeMachine(b.g)
	}
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
	fuseRelu := false
	if r, ok := b.fusedRelu[n]; ok {
		// The pair's op writes the Relu's output.
		fused := *n
		fused.Outputs = r.Outputs
		n, fuseRelu = &fused, true
	}
	c := &opContext{node: n, opset: b.m.ir.Opset(""), training: b.opts.Training, rng: b.rng,
		trained: func(i int) bool { return i < len(n.Inputs) && b.wrt[n.Inputs[i]] }, fuseRelu: fuseRelu}
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
		op := &nodeOp[T]{
			id:       b.nextID,
			name:     fmt.Sprintf("%s(%s)", n.OpType, n.Name),
			inShapes: inShapes,
			outShape: c.out[o],
			k:        k,
			diff:     diff,
			async:    b.async,
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
	op := &nodeOp[T]{id: b.nextID, name: "loss", inShapes: [][]int{shape, shape}, outShape: nil, k: k, diff: []bool{b.needGrad[out], false}}
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

// run feeds the inputs (and the loss target, if the program has a loss) and runs the
// graph once.
func (p *program[T]) run(inputs [][]T, target []T) (err error) {
	if len(inputs) != len(p.inputs) {
		return fmt.Errorf("got %d inputs, the program takes %d", len(inputs), len(p.inputs))
	}
	for i, n := range p.inputs {
		if want := numElements(p.inShapes[i]); len(inputs[i]) != want {
			return fmt.Errorf("input %q: got %d values, want %d for shape %v", n.Name(), len(inputs[i]), want, p.inShapes[i])
		}
		if err := gorgonia.Let(n, tensor.New(tensor.WithShape(p.inShapes[i]...), tensor.WithBacking(inputs[i]))); err != nil {
			return fmt.Errorf("input %q: %w", n.Name(), err)
		}
	}
	if p.target != nil {
		shape := []int(p.target.Shape())
		if len(target) != numElements(shape) {
			return fmt.Errorf("loss target: got %d values, want %d for shape %v", len(target), numElements(shape), shape)
		}
		if err := gorgonia.Let(p.target, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(target))); err != nil {
			return fmt.Errorf("loss target: %w", err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("running the program: %v", r)
		}
	}()
	if p.vm == nil {
		return nil // everything is constant
	}
	p.vm.Reset()
	err = p.vm.RunAll()
	// The asynchronous gradients write into buffers the caller reads: every way out
	// waits for them.
	if aerr := p.async.wait(); err == nil && aerr != nil {
		err = aerr
	}
	if err != nil {
		return fmt.Errorf("running the program: %w", err)
	}
	return nil
}

func nodeData[T float](n *gorgonia.Node) []T {
	s, err := sliceOf[T](n.Value())
	if err != nil {
		return nil
	}
	return s
}

// output returns output i's values after run.
func (p *program[T]) output(i int) []T { return nodeData[T](p.outputs[i]) }

// grad returns the gradient of a trainable parameter or input after run.
func (p *program[T]) grad(name string) []T {
	n, ok := p.grads[name]
	if !ok {
		return nil
	}
	return nodeData[T](n)
}

func (p *program[T]) lossValue() float64 {
	s := nodeData[T](p.loss)
	if len(s) == 0 {
		return 0
	}
	return float64(s[0])
}
