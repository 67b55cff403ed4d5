package backend

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gorgonia.org/gorgonia"

	"toolkit/backend/kernels"
)

// The executor. gorgonia holds a program's graph: its nodes, their types and shapes,
// and the backward nodes gorgonia.Grad derives from the ops' SymDiff. The toolkit runs
// that graph itself instead of with a gorgonia TapeMachine, which keeps the value of
// every node for the whole run: a training step of ResNet-50 at 224 px then needed
// about 200 MB per image, twice what PyTorch keeps. Here a run is a list of steps, and
// the values the steps write live in one arena planned once per program (plan.go):
// each value takes its place when a step writes it and gives it up after the last step
// that reads it, the backward passes read only the forward values their kernels declare
// (backwardReader), and element-wise ops write over an input nothing reads afterwards.
//
// The steps run in the order gorgonia made the nodes. A node is made after its
// arguments, so that order is a topological one; it is the ONNX graph's order for the
// forward ops, then gorgonia.Grad's for the backward ones: from the loss back to the
// inputs, each node's gradients summed as soon as the last of them is made, and the
// gradients of its inputs made right after. That is the order in which a reverse pass
// frees what the forward pass kept.

// stepKind is what a step computes.
type stepKind uint8

const (
	stepForward  stepKind = iota // a nodeOp's forward pass
	stepGrad                     // a gradOp: the gradient of one input of a nodeOp
	stepSum                      // gorgonia.Grad's sum of two gradients of one value
	stepToBF16                   // a value's compact bfloat16 copy (compactSaved)
	stepFromBF16                 // the float32 values of a compact copy
)

// step is one op of a run.
type step[T float] struct {
	kind stepKind
	name string
	fwd  *nodeOp[T] // stepForward
	grad *gradOp[T] // stepGrad
	// args are the values the step reads, in the op's argument order: for a gradient the
	// forward inputs, the forward output and the output's gradient. -1 marks an
	// argument the kernel does not read (it gets nil).
	args []int
	out  int
	// inPlace is the argument whose buffer the output may take over when nothing reads
	// the argument afterwards, or -1.
	inPlace int
	// async is set for a parameter's gradient that runs on a goroutine beside the
	// following steps (asyncGradient); the next async step, or step that waits, and the
	// end of the run wait for it.
	async bool
	// waits is set where the step first waits for the asynchronous gradient under way,
	// whose arguments then live only until the step before (planWaits: where that makes
	// the arena smaller).
	waits bool
	// saved is the value the op keeps from its forward pass for its gradients (saver),
	// or -1.
	saved int
}

// valueKind says where a value's memory comes from.
type valueKind uint8

const (
	valInput valueKind = iota // the caller's slice, bound by run: a program input or the loss target
	valFixed                  // a parameter or a constant, known when the program is built
	valArena                  // a place in the arena, planned
	valOwn                    // a buffer of its own: what the caller reads after the run
)

// value is one tensor a run reads or writes.
type value[T float] struct {
	name string
	size int
	kind valueKind
	data []T // valFixed and valOwn; valInput once bound
	// first and last are the steps that write the value and that read it last (-1:
	// before the first step, as inputs are).
	first, last int
	off         int // valArena: the offset in the arena
	// output marks a program output: in the arena, alive until the end of the run.
	output bool
}

// schedule turns the program's gorgonia graph into steps and values. keep names the
// nodes the caller reads after a run: the loss and the gradients get buffers of their
// own; the outputs stay in the arena until the end of the run, and so until the next run
// of a program of the model. (A training program's outputs may be many: finetune's
// diagnostics read every ReLU's output. In buffers of their own, each program of the
// model would keep a copy of them all.)
func (p *program[T]) schedule(keep []*gorgonia.Node, params map[string][]T) error {
	nodes := p.g.AllNodes()
	// The nodes the kept ones depend on.
	needed := map[*gorgonia.Node]bool{}
	stack := append([]*gorgonia.Node(nil), keep...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if needed[n] {
			continue
		}
		needed[n] = true
		stack = append(stack, childrenOf(p.g, n)...)
	}
	order := slices.Clone(nodes)
	slices.SortFunc(order, func(a, b *gorgonia.Node) int { return int(a.ID() - b.ID()) })
	ids := map[*gorgonia.Node]int{}
	isInput := map[*gorgonia.Node]bool{}
	for _, n := range p.inputs {
		isInput[n] = true
	}
	if p.target != nil {
		isInput[p.target] = true
	}
	kept, isOutput := map[*gorgonia.Node]bool{}, map[*gorgonia.Node]bool{}
	for _, n := range keep {
		kept[n] = true
	}
	for _, n := range p.outputs {
		isOutput[n] = true
	}
	newValue := func(n *gorgonia.Node, kind valueKind) int {
		v := value[T]{name: n.Name(), size: numElements([]int(n.Shape())), kind: kind, first: -1, last: -1}
		if n.IsScalar() {
			v.size = 1
		}
		ids[n] = len(p.vals)
		p.vals = append(p.vals, v)
		return ids[n]
	}
	savedOf := map[*nodeOp[T]]int{}
	for _, n := range order {
		if !needed[n] {
			continue
		}
		children := childrenOf(p.g, n)
		if len(children) == 0 || n.Op() == nil {
			// An input, a parameter or a constant (gorgonia.Grad's seed of 1).
			if isInput[n] {
				newValue(n, valInput)
				continue
			}
			if n.Value() == nil {
				return fmt.Errorf("building the program: node %s has no value and no op", n.Name())
			}
			// A parameter's own values (a scalar's gorgonia value is a copy), which
			// training changes between runs.
			data, ok := params[n.Name()]
			if !ok {
				var err error
				if data, err = sliceOf[T](n.Value()); err != nil {
					return fmt.Errorf("building the program: node %s: %w", n.Name(), err)
				}
			}
			id := newValue(n, valFixed)
			p.vals[id].data = data
			continue
		}
		s := step[T]{inPlace: -1, saved: -1, name: n.Op().String()}
		for _, c := range children {
			id, ok := ids[c]
			if !ok {
				return fmt.Errorf("building the program: %s reads %s, which comes later", s.name, c.Name())
			}
			s.args = append(s.args, id)
		}
		switch op := n.Op().(type) {
		case *nodeOp[T]:
			s.kind, s.fwd = stepForward, op
			if ip, ok := op.k.(inPlacer); ok {
				s.inPlace = ip.inPlace()
			}
			if sv, ok := op.k.(saver[T]); ok && sv.savedLen() > 0 {
				s.saved = len(p.vals)
				savedOf[op] = s.saved
				p.vals = append(p.vals, value[T]{name: op.node + ":saved", size: sv.savedLen(), kind: valArena, first: -1, last: -1})
			}
		case *gradOp[T]:
			s.kind, s.grad = stepGrad, op
			if id, ok := savedOf[op.op]; ok {
				s.saved = id
			}
			nin := len(op.op.inShapes)
			if br, ok := op.op.k.(backwardReader); ok {
				r := br.backwardReads(op.input)
				read := make([]bool, nin)
				for _, i := range r.in {
					read[i] = true
				}
				for i := range nin {
					if !read[i] {
						s.args[i] = -1
					}
				}
				if !r.out {
					s.args[nin] = -1
				}
			}
			if gp, ok := op.op.k.(gradInPlacer); ok && gp.gradInPlace(op.input) {
				if o, ok := op.op.k.(gradOverwriter); !ok || !o.overwritesGrad() {
					// The executor clears a gradient buffer before a kernel that adds
					// into it, which would clear gout too.
					return fmt.Errorf("building the program: %s: a gradient written over gout must overwrite it", s.name)
				}
				s.inPlace = nin + 1
			}
			if a, ok := op.op.k.(asyncGradient[T]); ok && op.buf != nil && a.runsAsync(op.input) {
				s.async = true
			}
		default:
			if !isGradientSum(n, children) {
				return fmt.Errorf("building the program: the executor does not run gorgonia's op %s (node %s)", n.Op(), n.Name())
			}
			s.kind, s.inPlace = stepSum, 0
		}
		kind := valArena
		if kept[n] && !isOutput[n] {
			kind = valOwn
		}
		s.out = newValue(n, kind)
		p.vals[s.out].output = isOutput[n]
		p.vals[s.out].name = p.valueName(s)
		if s.kind == stepGrad && s.grad.buf != nil {
			// A parameter's gradient, in the buffer every program of the model shares.
			p.vals[s.out].kind = valOwn
			p.vals[s.out].data = s.grad.buf(p.vals[s.out].size)
		}
		p.steps = append(p.steps, s)
	}
	for _, n := range keep {
		if _, ok := ids[n]; !ok {
			return fmt.Errorf("building the program: %s is not computed", n.Name())
		}
	}
	p.ids = ids
	for i := range p.vals {
		if v := &p.vals[i]; v.kind == valOwn && v.data == nil {
			v.data = make([]T, v.size)
		}
	}
	return nil
}

// valueName names the value a step writes: the ONNX tensor of a forward step; for a
// gradient step "d" and the tensor it is the gradient of, with "@" and the node whose
// reading of the tensor it differentiates; for a sum of such, the tensor's gradient.
func (p *program[T]) valueName(s step[T]) string {
	switch s.kind {
	case stepForward:
		return s.fwd.outName
	case stepGrad:
		return "d" + s.grad.op.inNames[s.grad.input] + "@" + s.grad.op.node
	}
	name, _, _ := strings.Cut(p.vals[s.args[0]].name, "@")
	return name
}

// findProbes records the values of the named tensors that steps of the program write.
func (p *program[T]) findProbes(names []string, nodes map[string]*gorgonia.Node) {
	for _, name := range names {
		n, ok := nodes[name]
		if !ok {
			continue
		}
		id, ok := p.ids[n]
		if !ok || p.vals[id].kind == valInput || p.vals[id].kind == valFixed {
			continue // not computed by the program
		}
		if p.probes == nil {
			p.probes = map[int]probeInfo{}
		}
		p.probes[id] = probeInfo{name: name, shape: []int(n.Shape())}
	}
}

// isGradientSum reports whether n is the sum of two gradients of one value that
// gorgonia.Grad makes where a value has several readers: an element-wise addition of
// two tensors of n's shape.
func isGradientSum(n *gorgonia.Node, children []*gorgonia.Node) bool {
	if len(children) != 2 || !strings.HasPrefix(n.Op().String(), "+") {
		return false
	}
	for _, c := range children {
		if !slices.Equal([]int(c.Shape()), []int(n.Shape())) {
			return false
		}
	}
	return true
}

// childrenOf returns the arguments of n, in order.
func childrenOf(g *gorgonia.ExprGraph, n *gorgonia.Node) []*gorgonia.Node {
	it := g.From(n.ID())
	var out []*gorgonia.Node
	for it.Next() {
		out = append(out, it.Node().(*gorgonia.Node))
	}
	return out
}

// run feeds the inputs (and the loss target, if the program has a loss) and runs the
// steps once.
func (p *program[T]) run(inputs [][]T, target []T) (err error) {
	if len(inputs) != len(p.inputs) {
		return fmt.Errorf("got %d inputs, the program takes %d", len(inputs), len(p.inputs))
	}
	for i, n := range p.inputs {
		if want := numElements(p.inShapes[i]); len(inputs[i]) != want {
			return fmt.Errorf("input %q: got %d values, want %d for shape %v", n.Name(), len(inputs[i]), want, p.inShapes[i])
		}
		if p.arena.holds(inputs[i]) {
			return fmt.Errorf("input %q: the values are an output of a program of this model, which the run would write over: pass a copy", n.Name())
		}
		if id, ok := p.ids[n]; ok {
			p.vals[id].data = inputs[i]
		}
	}
	if p.target != nil {
		shape := []int(p.target.Shape())
		if len(target) != numElements(shape) {
			return fmt.Errorf("loss target: got %d values, want %d for shape %v", len(target), numElements(shape), shape)
		}
		if id, ok := p.ids[p.target]; ok {
			p.vals[id].data = target
		}
	}
	arena := p.arena.get(p.mem.size)
	current := ""
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("running the program: %s: %v", current, r)
		}
		// The asynchronous gradients write into buffers the caller reads, and read
		// the arena: every way out waits for them.
		if aerr := p.async.wait(); err == nil && aerr != nil {
			err = fmt.Errorf("running the program: %w", aerr)
		}
	}()
	data := func(id int) []T {
		if id < 0 {
			return nil
		}
		v := &p.vals[id]
		if v.kind == valArena {
			return arena[v.off : v.off+v.size : v.off+v.size]
		}
		return v.data
	}
	var args [][]T
	var began time.Time
	// pending are the gradients the asynchronous step under way finishes: told when the
	// next one starts (having waited for it) or at the end.
	var pending []string
	if p.gradDone != nil {
		p.findReady()
		p.tellReady(p.readyAt[-1])
	}
	for i := range p.steps {
		s := &p.steps[i]
		current = s.name
		if p.trace != nil {
			began = time.Now()
		}
		if s.waits {
			if err := p.async.wait(); err != nil {
				return fmt.Errorf("running the program: %w", err)
			}
			p.tellReady(pending)
			pending = nil
		}
		args = args[:0]
		for _, a := range s.args {
			args = append(args, data(a))
		}
		out := data(s.out)
		if s.saved >= 0 {
			k := s.fwd
			if k == nil {
				k = s.grad.op
			}
			k.k.(saver[T]).setSaved(data(s.saved))
		}
		switch s.kind {
		case stepForward:
			err = s.fwd.k.forward(args, out)
			if pr, ok := p.probes[s.out]; ok && p.probe != nil && err == nil {
				p.probe(pr.name, pr.shape, out)
			}
		case stepGrad:
			err = p.runGrad(s, args, out)
		case stepSum:
			a, b := args[0], args[1]
			if len(out) == 0 {
				break
			}
			if &out[0] == &b[0] { // written over b
				a, b = b, a
			}
			kernels.AddTo(out, a, b)
		case stepToBF16:
			kernels.ToBF16(any(args[0]).([]float32), any(out).([]float32))
		case stepFromBF16:
			kernels.FromBF16(any(args[0]).([]float32), any(out).([]float32))
		}
		if err != nil {
			return fmt.Errorf("running the program: %s: %w", s.name, err)
		}
		if p.gradDone != nil {
			if s.async { // runGrad waited for the asynchronous step before this one
				p.tellReady(pending)
				pending = p.readyAt[i]
			} else {
				p.tellReady(p.readyAt[i])
			}
		}
		if p.trace != nil {
			p.trace(StepTime{Step: s.name, Op: s.opType(), Backward: s.kind != stepForward && s.kind != stepToBF16, Async: s.async, Wall: time.Since(began)})
		}
	}
	if len(pending) > 0 {
		if err := p.async.wait(); err != nil {
			return fmt.Errorf("running the program: %w", err)
		}
		p.tellReady(pending)
	}
	return nil
}

// findReady fills readyAt: for each parameter gradient the program computes, the step
// that writes it (-1: none, a gradient known before the run).
func (p *program[T]) findReady() {
	if p.readyAt != nil {
		return
	}
	p.readyAt = map[int][]string{}
	for _, name := range p.gradName {
		at := -1
		if id, ok := p.ids[p.grads[name]]; ok {
			at = p.vals[id].first
		}
		p.readyAt[at] = append(p.readyAt[at], name)
	}
}

// tellReady tells gradDone the names.
func (p *program[T]) tellReady(names []string) {
	for _, n := range names {
		p.gradDone(n)
	}
}

// StepTime is the time one step of a run took (Program.Trace).
type StepTime struct {
	// Step names the op (the ONNX op type and node name) or its gradient; Op is the
	// ONNX op type ("Sum" for a sum of gradients; "ToBF16" and "FromBF16" for a value's
	// compact copy and its reading back, Options.SavedBF16).
	Step, Op string
	// Backward is set for a gradient (or a sum of gradients), Async for a gradient that
	// runs beside the following steps (its Wall is the time to start it).
	Backward, Async bool
	Wall            time.Duration
}

// opType is the ONNX op type of the step's node.
func (s *step[T]) opType() string {
	switch s.kind {
	case stepToBF16:
		return "ToBF16"
	case stepFromBF16:
		return "FromBF16"
	}
	n := s.fwd
	if n == nil && s.grad != nil {
		n = s.grad.op
	}
	if n == nil {
		return "Sum"
	}
	op, _, _ := strings.Cut(n.name, "(")
	return op
}

// runGrad runs a gradient step: args are the forward inputs, the forward output and
// the output's gradient.
func (p *program[T]) runGrad(s *step[T], args [][]T, gin []T) error {
	g := s.grad
	n := len(g.op.inShapes)
	if o, ok := g.op.k.(gradOverwriter); !ok || !o.overwritesGrad() {
		clear(gin)
	}
	if s.async {
		// The gradient before runs beside the steps since; what it reads is planned to
		// live until here.
		if err := p.async.wait(); err != nil {
			return err
		}
		// The function keeps its arguments past this step: a copy of the list the
		// executor reuses.
		ins := slices.Clone(args[:n])
		if fn := g.op.k.(asyncGradient[T]).asyncBackward(g.input, ins, args[n], args[n+1], gin); fn != nil {
			p.async.goRun(s.name, fn)
			return nil
		}
	}
	return g.op.k.backward(g.input, args[:n], args[n], args[n+1], gin)
}
