package backend

import (
	"math"
	"slices"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// The element-wise family (schemas in onnx/ops_elementwise.go): activations, the
// one-input functions of kernels.Unary, Clip, and the broadcasting binary ops.

func init() {
	register("Relu", newActivation[float32], newActivation[float64])
	register("LeakyRelu", newActivation[float32], newActivation[float64])
	register("Sigmoid", newActivation[float32], newActivation[float64])
	register("Tanh", newActivation[float32], newActivation[float64])
	for op := range unaryOps {
		register(op, newUnary[float32], newUnary[float64])
	}
	register("Clip", newUnary[float32], newUnary[float64])
	for _, op := range []string{"Add", "Sub", "Mul", "Div", "Pow"} {
		register(op, newBinary[float32], newBinary[float64])
	}
	register("PRelu", newPRelu[float32], newPRelu[float64])
	register("Where", newWhere[float32], newWhere[float64])
	// Comparisons, Mod and Not of shapes and masks: computed on constants while the
	// program is built (newFoldedOnly).
	for _, op := range []string{"Equal", "Mod", "Not"} {
		register(op, newFoldedOnly[float32], newFoldedOnly[float64])
	}
}

// unaryOps maps the ONNX ops computed by kernels.UnaryForward to their function (Gelu
// and Clip are resolved from their attributes and inputs).
var unaryOps = map[string]kernels.UnaryOp{
	"Exp": kernels.Exp, "Log": kernels.Log, "Sqrt": kernels.Sqrt, "Neg": kernels.Neg, "Abs": kernels.Abs,
	"Reciprocal": kernels.Reciprocal, "Erf": kernels.Erf, "Gelu": kernels.Gelu, "Elu": kernels.Elu,
	"Selu": kernels.Selu, "Softplus": kernels.Softplus, "Softsign": kernels.Softsign,
	"HardSigmoid": kernels.HardSigmoid, "HardSwish": kernels.HardSwish,
}

// unary is a one-input element-wise function of kernels.Unary. For Clip, bound[i] is
// the index among the kernel's inputs of the min (0) or max (1) bound when it is
// computed at run time, -1 when it is a constant (in u).
type unary[T float] struct {
	u     kernels.Unary
	bound [2]int
}

// params returns the function with Clip's run-time bounds read from ins.
func (k *unary[T]) params(ins [][]T) kernels.Unary {
	u := k.u
	if k.bound[0] > 0 {
		u.Lo = float64(ins[k.bound[0]][0])
	}
	if k.bound[1] > 0 {
		u.Hi = float64(ins[k.bound[1]][0])
	}
	return u
}

// clipConstBounds returns a Clip node's bounds and whether each is known when the program
// is built: the attributes before opset 11 (±MaxFloat32 when absent); from opset 11 an
// absent bound input is infinite and a given one known where constant(i), for input i,
// says so. A bound not known is computed at run time.
func clipConstBounds(n *onnx.Node, opset int64, constant func(i int) (float32, bool)) (bounds [2]float64, known [2]bool) {
	if opset < 11 {
		return [2]float64{float64(n.AttrFloat("min", -math.MaxFloat32)), float64(n.AttrFloat("max", math.MaxFloat32))}, [2]bool{true, true}
	}
	bounds = [2]float64{math.Inf(-1), math.Inf(1)}
	for i := range bounds {
		known[i] = true
		if i+1 >= len(n.Inputs) || n.Inputs[i+1] == "" {
			continue
		}
		var v float32
		if v, known[i] = constant(i + 1); known[i] {
			bounds[i] = float64(v)
		}
	}
	return bounds, known
}

func newUnary[T float](c *opContext) (*opKernels[T], error) {
	n := c.node
	u := kernels.Unary{Op: unaryOps[n.OpType]}
	switch n.OpType {
	case "Elu":
		u.Alpha = float64(n.AttrFloat("alpha", 1))
	case "Selu":
		u.Alpha = float64(n.AttrFloat("alpha", 1.67326319217681884765625))
		u.Gamma = float64(n.AttrFloat("gamma", 1.05070102214813232421875))
	case "HardSigmoid":
		u.Alpha = float64(n.AttrFloat("alpha", 0.2))
		u.Beta = float64(n.AttrFloat("beta", 0.5))
	case "Gelu":
		switch a := n.AttrString("approximate", "none"); a {
		case "none":
		case "tanh":
			u.Op = kernels.GeluTanh
		default:
			return nil, c.errorf("approximate=%q: want none or tanh", a)
		}
	case "Clip":
		u.Op = kernels.Clip
		for i := 1; i < 3 && c.opset >= 11; i++ {
			if c.has(i) && numElements(c.in[i]) != 1 {
				return nil, c.errorf("the %s input has shape %v, want a scalar", [...]string{"min", "max"}[i-1], c.in[i])
			}
		}
		bounds, known := clipConstBounds(n, c.opset, func(i int) (float32, bool) {
			if kc := c.consts[i]; kc != nil && len(kc.Floats) == 1 {
				return kc.Floats[0], true
			}
			return 0, false
		})
		u.Lo, u.Hi = bounds[0], bounds[1]
		// Bounds are constants in exported models; a bound computed at run time is a
		// data input that the kernel reads on each run.
		k := &unary[T]{u: u, bound: [2]int{-1, -1}}
		ks := &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}
		for i := range known {
			if !known[i] {
				k.bound[i] = len(ks.data)
				ks.data = append(ks.data, i+1)
			}
		}
		return ks, nil
	}
	return &opKernels[T]{outputs: []kernel[T]{&unary[T]{u: u}}, data: []int{0}}, nil
}

// backwardReads: the derivative reads x or y (kernels.UnaryBackwardReads), and Clip
// its bounds computed at run time.
func (k *unary[T]) backwardReads(int) reads {
	var r reads
	x, y := kernels.UnaryBackwardReads(k.u.Op)
	if x {
		r.in = append(r.in, 0)
	}
	r.out = y
	for _, b := range k.bound {
		if b > 0 {
			r.in = append(r.in, b)
		}
	}
	return r
}

func (k *unary[T]) inPlace() int { return 0 }

// recomputable: the transcendental functions of transformers and mobile networks (Gelu,
// SiLU), whose input their derivative keeps anyway.
func (k *unary[T]) recomputable() bool {
	switch k.u.Op {
	case kernels.Gelu, kernels.GeluTanh, kernels.SiLU:
		return true
	}
	return false
}
func (k *unary[T]) gradInPlace(int) bool { return true }

func (k *unary[T]) forward(ins [][]T, out []T) error {
	kernels.UnaryForward(k.params(ins), ins[0], out)
	return nil
}

// overwritesGrad: UnaryBackward writes every element.
func (k *unary[T]) overwritesGrad() bool { return true }

func (k *unary[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.UnaryBackward(k.params(ins), ins[0], out, gout, gin)
	return nil
}

// pRelu is PRelu: the slope broadcasts to X.
type pRelu[T float] struct{ sx, ss []int }

func newPRelu[T float](c *opContext) (*opKernels[T], error) {
	if out, err := kernels.BroadcastShape(c.in[0], c.in[1]); err != nil || numElements(out) != numElements(c.in[0]) {
		return nil, c.errorf("slope %v does not broadcast to X %v", c.in[1], c.in[0])
	}
	k := &pRelu[T]{sx: c.in[0], ss: c.in[1]}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0, 1}}, nil
}

func (k *pRelu[T]) forward(ins [][]T, out []T) error {
	kernels.PReluForward(k.sx, ins[0], k.ss, ins[1], out)
	return nil
}

func (k *pRelu[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	if i == 0 {
		kernels.PReluBackwardX(k.sx, ins[0], k.ss, ins[1], gout, gin)
	} else {
		kernels.PReluBackwardSlope(k.sx, ins[0], k.ss, ins[1], gout, gin)
	}
	return nil
}

// activation is a one-input element-wise function.
type activation[T float] struct {
	op    string
	alpha T
}

func newActivation[T float](c *opContext) (*opKernels[T], error) {
	k := &activation[T]{op: c.node.OpType, alpha: T(c.node.AttrFloat("alpha", 0.01))}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

func (k *activation[T]) forward(ins [][]T, out []T) error {
	switch k.op {
	case "Relu":
		kernels.ReluForward(ins[0], out)
	case "LeakyRelu":
		kernels.LeakyReluForward(k.alpha, ins[0], out)
	case "Sigmoid":
		kernels.SigmoidForward(ins[0], out)
	case "Tanh":
		kernels.TanhForward(ins[0], out)
	}
	return nil
}

// overwritesGrad: the activations' backward functions write every element.
func (k *activation[T]) overwritesGrad() bool { return true }

// backwardReads: Relu, Sigmoid and Tanh take their derivative from the output (Relu's
// output is positive exactly where its input is), LeakyRelu from its input.
func (k *activation[T]) backwardReads(int) reads {
	if k.op == "LeakyRelu" {
		return readsIn(0)
	}
	return reads{out: true}
}

// readsRounded: a Relu's output (its mask, positive exactly where the rounded output is).
func (k *activation[T]) readsRounded(int) reads { return reads{out: k.op == "Relu"} }

// readsCompact: the Relu's output, straight from its compact copy.
func (k *activation[T]) readsCompact(i int) reads { return k.readsRounded(i) }

func (k *activation[T]) inPlace() int         { return 0 }
func (k *activation[T]) gradInPlace(int) bool { return true }

func (k *activation[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	switch k.op {
	case "Relu":
		kernels.ReluBackward(out, gout, gin) // out may be its compact copy (readsCompact)
	case "LeakyRelu":
		kernels.LeakyReluBackward(k.alpha, ins[0], gout, gin)
	case "Sigmoid":
		kernels.SigmoidBackward(out, gout, gin)
	case "Tanh":
		kernels.TanhBackward(out, gout, gin)
	}
	return nil
}

// binary is Add, Sub, Mul, Div or Pow with numpy broadcasting.
type binary[T float] struct {
	op          string
	sa, sb, out []int
	grads       [2]binaryGrad[T] // each operand's gradient kernel
}

// binaryGrad is the kernels' gradient of one operand of a broadcasting binary op.
type binaryGrad[T float] func(aShape []int, a []T, bShape []int, b []T, dy, d []T)

// binaryGrads are each op's gradient kernels, by operand.
func binaryGrads[T float](op string) [2]binaryGrad[T] {
	switch op {
	case "Add":
		return [2]binaryGrad[T]{kernels.AddBackwardA[T], kernels.AddBackwardB[T]}
	case "Sub":
		return [2]binaryGrad[T]{kernels.SubBackwardA[T], kernels.SubBackwardB[T]}
	case "Mul":
		return [2]binaryGrad[T]{kernels.MulBackwardA[T], kernels.MulBackwardB[T]}
	case "Div":
		return [2]binaryGrad[T]{kernels.DivBackwardA[T], kernels.DivBackwardB[T]}
	}
	return [2]binaryGrad[T]{kernels.PowBackwardA[T], kernels.PowBackwardB[T]}
}

func newBinary[T float](c *opContext) (*opKernels[T], error) {
	if c.fuseSiLU {
		return &opKernels[T]{outputs: []kernel[T]{&unary[T]{u: kernels.Unary{Op: kernels.SiLU}}}, data: []int{0}}, nil
	}
	if c.fuseGelu {
		return &opKernels[T]{outputs: []kernel[T]{&unary[T]{u: kernels.Unary{Op: kernels.Gelu}}}, data: []int{0}}, nil
	}
	if _, err := kernels.BroadcastShape(c.in[0], c.in[1]); err != nil {
		return nil, c.errorf("A %v and B %v do not broadcast: %v", c.in[0], c.in[1], err)
	}
	k := &binary[T]{op: c.node.OpType, sa: c.in[0], sb: c.in[1], out: c.out[0], grads: binaryGrads[T](c.node.OpType)}
	// Pow's exponent may be an integer tensor; a constant one is used as floats.
	ks := &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0, 1}}
	if k.op == "Pow" {
		ks.castInts = []int{1}
	}
	return ks, nil
}

// backwardReads: the gradients of a sum or a difference read neither operand, those of
// a product the other operand, Div's and Pow's more.
func (k *binary[T]) backwardReads(i int) reads {
	switch {
	case k.op == "Add" || k.op == "Sub":
		return reads{}
	case k.op == "Mul" || k.op == "Div" && i == 0:
		return readsIn(1 - i)
	}
	return readsIn(0, 1)
}

// overwritesGrad: the kernels' backward functions write every element.
func (k *binary[T]) overwritesGrad() bool { return true }

// inPlace: the kernels allow the output over an operand of the output's shape.
func (k *binary[T]) inPlace() int {
	switch {
	case slices.Equal(k.sa, k.out):
		return 0
	case slices.Equal(k.sb, k.out):
		return 1
	}
	return -1
}

// gradInPlace: the gradient of an operand of the output's shape is element-wise in
// gout for Add, Sub, Mul and Div's first operand (the kernels allow the alias).
func (k *binary[T]) gradInPlace(i int) bool {
	s := k.sa
	if i == 1 {
		s = k.sb
	}
	return slices.Equal(s, k.out) && (k.op == "Add" || k.op == "Sub" || k.op == "Mul" || k.op == "Div" && i == 0)
}

func (k *binary[T]) forward(ins [][]T, out []T) error {
	a, b := ins[0], ins[1]
	switch k.op {
	case "Add":
		kernels.Add(k.sa, a, k.sb, b, out)
	case "Sub":
		kernels.Sub(k.sa, a, k.sb, b, out)
	case "Mul":
		kernels.Mul(k.sa, a, k.sb, b, out)
	case "Div":
		kernels.Div(k.sa, a, k.sb, b, out)
	case "Pow":
		kernels.PowForward(k.sa, a, k.sb, b, out)
	}
	return nil
}

func (k *binary[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	k.grads[i](k.sa, ins[0], k.sb, ins[1], gout, gin)
	return nil
}

// where is Where with a constant condition (integer constants, the only kind of
// boolean tensor a program has) and float X and Y, all broadcast to the output. Where
// all three are constants (shape arithmetic) shape inference has folded it already.
type where[T float] struct {
	out  []int
	cond []bool // the condition broadcast to the output's shape
	x, y []int  // the shapes of X and Y
}

func newWhere[T float](c *opContext) (*opKernels[T], error) {
	k := c.consts[0]
	if k == nil || !k.DataType.IsInt() {
		return nil, c.errorf("the condition must be a constant (it is computed at run time)")
	}
	w := &where[T]{out: c.out[0], x: c.in[1], y: c.in[2], cond: make([]bool, numElements(c.out[0]))}
	mask := make([]bool, len(k.Ints))
	for i, v := range k.Ints {
		mask[i] = v != 0
	}
	kernels.BroadcastTo(intsOf(k.Dims), mask, w.out, w.cond)
	return &opKernels[T]{outputs: []kernel[T]{w}, data: []int{1, 2}}, nil
}

func (k *where[T]) forward(ins [][]T, out []T) error {
	x, y := make([]T, len(out)), make([]T, len(out))
	kernels.BroadcastTo(k.x, ins[0], k.out, x)
	kernels.BroadcastTo(k.y, ins[1], k.out, y)
	for i, c := range k.cond {
		if c {
			out[i] = x[i]
		} else {
			out[i] = y[i]
		}
	}
	return nil
}

// overwritesGrad: ReduceToShape clears its output first.
func (k *where[T]) overwritesGrad() bool { return true }

func (k *where[T]) backwardReads(int) reads { return reads{} }

func (k *where[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	g := make([]T, len(gout))
	for j, c := range k.cond {
		if c == (i == 0) {
			g[j] = gout[j]
		}
	}
	shape := k.x
	if i == 1 {
		shape = k.y
	}
	kernels.ReduceToShape(k.out, g, shape, gin)
	return nil
}
