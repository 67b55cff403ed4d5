package backend

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// opContext is what an op's constructor knows about the node it builds.
type opContext struct {
	node  *onnx.Node
	opset int64
	// in and out are the concrete shapes of the node's inputs and outputs; an omitted
	// optional input has a nil shape.
	in, out [][]int
	// consts holds the value of each input that is known when the program is built
	// (initializers, Constant outputs, folded shape arithmetic), nil otherwise.
	consts []*onnx.Tensor
	// training is true in a training program: Dropout drops, BatchNormalization uses
	// batch statistics and updates its running averages.
	training bool
	rng      *rand.Rand
	// trained reports whether input i is a parameter this program trains, or computed
	// from one.
	trained func(i int) bool
	// fuseAct asks for the node's output to go through a Relu or a Clip (a Conv or
	// BatchNormalization whose only consumer is a Relu, or a Clip with constant
	// bounds such as ReLU6), or a SiLU (a BatchNormalization's, or in a constant-weight
	// program a convolution's with the normalization folded into it), built as one op;
	// see planFusions.
	fuseAct kernels.Activation
	// fixed reports, in a program with constant weights (Options.ConstantWeights),
	// whether input i is computed from the model's parameters and constants alone
	// (builder.fixed), so that caches need not check it; false in other programs, and
	// for a tensor computed from the graph's inputs, which changes between runs.
	fixed func(i int) bool
	// foldBN, when set, asks a Conv node for its output through the inference-mode
	// BatchNormalization that follows it, whose scale, shift, mean and variance are its
	// inputs 3 to 6 (constant weights; see planFusions).
	foldBN *bnFold
	// addResidual asks a Conv node, given the other operand of the Add after it as its
	// last input, for that Add's output (or that of the Relu after the Add, with
	// fuseAct): act(conv(x) + residual) as one op (constant weights; see planResidualAdds).
	addResidual bool
	// filterCache returns the cache of what the kernels derive from the weights of that
	// name alone (a convolution's transformed filters), which the model's programs share
	// (they run one at a time, and the cache checks the weights at every call).
	filterCache func(weight string) *kernels.FilterCache
	// fuseSiLU asks a Mul node, given its input x alone, for x·σ(x) (a Sigmoid and the
	// Mul that is its only consumer, built as one op; see planFusions).
	fuseSiLU bool
	// fuseGelu asks a Mul node, given the input x of Gelu written out, for Gelu(x)
	// (planGelu).
	fuseGelu bool
	// savedBF16 is Options.SavedBF16: a max pooling then keeps its positions rather
	// than its input for its gradient.
	savedBF16 bool
	// normBF16 is Options.NormBF16: a training BatchNormalization's gradients then read
	// its input rounded (readsRounded), from its compact copy.
	normBF16 bool
	// foldTransposes, when set, asks a MatMul node, given the tensors before the
	// transposes of its factors and writing the one after the transpose of its output,
	// for the product through them (planTransposedMatMuls).
	foldTransposes *transposeFold
}

// has reports whether optional input i is present.
func (c *opContext) has(i int) bool {
	return i < len(c.node.Inputs) && c.node.Inputs[i] != ""
}

// errorf makes an error that names the node and its op type.
func (c *opContext) errorf(format string, args ...any) error {
	return fmt.Errorf("node %q (%s): %s", c.node.Name, c.node.OpType, fmt.Sprintf(format, args...))
}

// opKernels is what a constructor returns: the kernel of each output it computes (nil
// for outputs it does not) and the node inputs that flow into the kernels as tensors.
// Which of those a gradient flows through is the op's schema's (onnx.OpSchema). A
// gradient flows back from the first output only (the others are statistics, as
// BatchNormalization's running averages), unless allOutputs is set (Split). The data
// inputs listed in castInts may be integer constants, given to the kernels as floats
// (Pow's integer exponents).
type opKernels[T float] struct {
	outputs    []kernel[T]
	data       []int
	allOutputs bool
	castInts   []int
}

type constructor[T float] func(*opContext) (*opKernels[T], error)

// opDef is one entry of the op table: the op's schema (its shape inference, which
// inputs are differentiable, its opset history: package onnx's op table) and its
// kernels, a constructor for each element type.
type opDef struct {
	schema *onnx.OpSchema
	f32    constructor[float32]
	f64    constructor[float64]
}

// ops is the op table. It is filled by the init functions of the op files and never
// changed afterwards.
var ops = map[string]opDef{}

// register adds the kernels of an op that package onnx has a schema for.
func register(opType string, f32 constructor[float32], f64 constructor[float64]) {
	if _, dup := ops[opType]; dup {
		panic("backend: op registered twice: " + opType)
	}
	s := onnx.Schema(opType)
	if s == nil {
		panic("backend: op " + opType + " has no schema in package onnx")
	}
	ops[opType] = opDef{schema: s, f32: f32, f64: f64}
}

// schemaOf returns the schema of a node's op, which the backend supports.
func schemaOf(n *onnx.Node) *onnx.OpSchema { return ops[n.OpType].schema }

func constructorFor[T float](opType string) (constructor[T], bool) {
	def, ok := ops[opType]
	if !ok {
		return nil, false
	}
	var c any = def.f64
	if dtypeOf[T]() == dtypeOf[float32]() {
		c = def.f32
	}
	return c.(constructor[T]), true
}

// SupportedOps returns the ONNX op types (domain ai.onnx) the backend can build, sorted.
func SupportedOps() []string {
	names := make([]string, 0, len(ops))
	for name := range ops {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Supports reports whether the backend can build the op type.
func Supports(opType string) bool {
	_, ok := ops[opType]
	return ok
}

// CheckSupported returns an error naming every node whose op the backend cannot build,
// grouped by op, or nil:
//
//	3 node(s) use 2 op(s) the backend does not support: Einsum (1): "b"; LSTM (2): "rnn", "rnn2"; supported ops: [...]
func CheckSupported(m *onnx.Model) error {
	byOp := map[string][]string{}
	var ops []string
	count := 0
	for _, n := range m.Graph.Nodes {
		if (n.Domain == "" || n.Domain == "ai.onnx") && Supports(n.OpType) {
			continue
		}
		op := n.OpType
		if n.Domain != "" && n.Domain != "ai.onnx" {
			op = n.Domain + "." + op
		}
		if byOp[op] == nil {
			ops = append(ops, op)
		}
		byOp[op] = append(byOp[op], fmt.Sprintf("%q", n.Name))
		count++
	}
	if count == 0 {
		return nil
	}
	sort.Strings(ops)
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s (%d): %s", op, len(byOp[op]), strings.Join(byOp[op], ", "))
	}
	return fmt.Errorf("%d node(s) use %d op(s) the backend does not support: %s; supported ops: %v",
		count, len(ops), strings.Join(parts, "; "), SupportedOps())
}
