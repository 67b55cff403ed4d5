package backend

import (
	"fmt"
	"hash"
	"hash/fnv"
	"unsafe"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"toolkit/backend/kernels"
)

// float is the element type a program computes in: float32 for training and inference,
// float64 for finite-difference checks.
type float = kernels.Float

// kernel computes one ONNX node: its forward pass, and the gradient of each
// differentiable input given the gradient of the output.
type kernel[T float] interface {
	// forward writes the node's output for the given inputs into out.
	forward(ins [][]T, out []T) error
	// backward adds nothing: it overwrites gin, the gradient of input i, given the
	// inputs, the forward output and the output's gradient gout.
	backward(i int, ins [][]T, out, gout, gin []T) error
}

// gradOverwriter is implemented by kernels whose backward writes every element of
// gin (the kernels' own contract), so that the gradient buffer need not be cleared
// first: a pass over the largest tensors of a training step saved.
type gradOverwriter interface {
	overwritesGrad() bool
}

// backwardReader is implemented by kernels whose backward passes read only some of the
// forward values. The executor gives the others to the backward pass as nil and lets
// their memory go after their last forward use: what a training program keeps from its
// forward pass for its backward pass is what these declare (a Relu keeps its output, a
// convolution its input, a max pooling nothing but its positions). A kernel without the
// method is given, and keeps, all of its inputs and its output.
type backwardReader interface {
	backwardReads(i int) reads
}

// roundedReader is implemented by kernels whose gradients may read some of the forward
// values they read (backwardReads) rounded to bfloat16 and give the same bits under
// the bfloat16 products: a matrix product's other factor or a convolution's input
// (not a depthwise one's: its weight gradient is float32 dot products), which those
// products round as they pack them, and an output read only where it is positive (a
// Relu's). readsRounded(i) names those of
// gradient i. Options.SavedBF16 keeps a value that every gradient reading it reads
// rounded in bfloat16 between the passes (compactSaved).
type roundedReader interface {
	readsRounded(i int) reads
}

// compactReader is implemented by kernels whose gradients can read some of the values
// they read rounded (roundedReader) straight from the compact copies compactSaved
// makes, telling them from float32 values by length (kernels.IsCompact): those values
// are then not read back into float32 for them, and their float32 memory is not needed
// again. readsCompact(i) names those of gradient i.
type compactReader interface {
	readsCompact(i int) reads
}

// inputCopier is implemented by kernels whose forward pass can write the compact copy
// (kernels.ToBF16's) of one of their inputs as they read it, into their saved value
// (saver: setSaved gives it before the pass): compactSaved then has the step keep the
// copy of a value it is the last forward reader of, rather than a pass over the value
// after it. copiesInput(i) names the inputs.
type inputCopier interface {
	copiesInput(i int) bool
}

// reads names the forward values a gradient reads: inputs by their index among the
// kernel's inputs, and the output.
type reads struct {
	in  []int
	out bool
}

// readsIn is a reads of the inputs given.
func readsIn(in ...int) reads { return reads{in: in} }

// inPlacer is implemented by kernels whose forward pass may write its output over input
// i (an element-wise function, out aliasing ins[i]); inPlace returns i, or -1. The
// executor does so when nothing reads the input afterwards.
type inPlacer interface {
	inPlace() int
}

// gradInPlacer is implemented by kernels whose backward pass for input i may write the
// gradient over the output's gradient gout (an element-wise derivative).
type gradInPlacer interface {
	gradInPlace(i int) bool
}

// saver is implemented by kernels that keep something of their forward pass for their
// backward passes beside their inputs and output (a max pooling's positions, a dropout
// mask). savedLen is its length in elements of T; the executor plans it in the arena
// like a value, alive from the forward step to the op's last gradient step (only for the
// forward step in a program without them), and hands it to the kernel before each of
// those steps.
type saver[T float] interface {
	savedLen() int
	setSaved(s []T)
}

// int32sIn returns the first n int32 of a []T that holds at least 4n bytes.
func int32sIn[T float](s []T, n int) []int32 {
	if n == 0 {
		return nil
	}
	var z T
	if len(s)*int(unsafe.Sizeof(z)) < 4*n {
		panic(fmt.Sprintf("backend: %d int32 in %d elements of %T", n, len(s), z))
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(s))), n)
}

// int32Len is the number of elements of T that hold n int32.
func int32Len[T float](n int) int {
	var z T
	return (4*n + int(unsafe.Sizeof(z)) - 1) / int(unsafe.Sizeof(z))
}

// nodeOp adapts a kernel to gorgonia's Op and SDOp interfaces. Its shapes are fixed when
// the program is built; diff says which inputs need a gradient in this program, so
// gorgonia builds no backward nodes for frozen parameters.
type nodeOp[T float] struct {
	id   int
	name string
	// node is the ONNX node's name, inNames and outName the tensors it reads and writes
	// (for the names of the values in a memory plan).
	node     string
	inNames  []string
	outName  string
	inShapes [][]int
	outShape []int
	k        kernel[T]
	diff     []bool
	// gradBuf[i], when set, supplies the gradient buffer of input i: a parameter's
	// gradient lives in one buffer that every training program of the model shares.
	gradBuf []func(n int) []T
}

func dtypeOf[T float]() tensor.Dtype {
	var z T
	if _, ok := any(z).(float32); ok {
		return tensor.Float32
	}
	return tensor.Float64
}

func typeOfShape[T float](shape []int) hm.Type {
	if len(shape) == 0 {
		return dtypeOf[T]()
	}
	return gorgonia.TensorType{Dims: len(shape), Of: dtypeOf[T]()}
}

func (op *nodeOp[T]) Arity() int { return len(op.inShapes) }

func (op *nodeOp[T]) Type() hm.Type {
	ts := make([]hm.Type, 0, len(op.inShapes)+1)
	for _, s := range op.inShapes {
		ts = append(ts, typeOfShape[T](s))
	}
	ts = append(ts, typeOfShape[T](op.outShape))
	return hm.NewFnType(ts...)
}

func (op *nodeOp[T]) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.outShape...)), nil
}

// Do computes the op into a new buffer, as gorgonia's own machines call it; the
// toolkit's executor (exec.go) calls the kernel itself.
func (op *nodeOp[T]) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	ins, err := slicesOf[T](vals, op.inShapes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	out := make([]T, numElements(op.outShape))
	if err := op.k.forward(ins, out); err != nil {
		return nil, fmt.Errorf("%s: %w", op.name, err)
	}
	return valueOf(out, op.outShape), nil
}

func (op *nodeOp[T]) ReturnsPtr() bool      { return false }
func (op *nodeOp[T]) CallsExtern() bool     { return false }
func (op *nodeOp[T]) OverwritesInput() int  { return -1 }
func (op *nodeOp[T]) String() string        { return op.name }
func (op *nodeOp[T]) WriteHash(h hash.Hash) { fmt.Fprintf(h, "toolkit.op%d.%s", op.id, op.name) }
func (op *nodeOp[T]) Hashcode() uint32      { return hashOf(op) }

func (op *nodeOp[T]) DiffWRT(n int) []bool { return append([]bool(nil), op.diff...) }

func (op *nodeOp[T]) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	grads := make(gorgonia.Nodes, len(inputs))
	for i := range inputs {
		if !op.diff[i] {
			continue
		}
		args := append(append(gorgonia.Nodes{}, inputs...), output, grad)
		gop := &gradOp[T]{op: op, input: i}
		if i < len(op.gradBuf) {
			gop.buf = op.gradBuf[i]
		}
		g, err := gorgonia.ApplyOp(gop, args...)
		if err != nil {
			return nil, fmt.Errorf("%s: gradient of input %d: %w", op.name, i, err)
		}
		grads[i] = g
	}
	return grads, nil
}

// gradOp computes the gradient of one input of a nodeOp. Its arguments are the forward
// inputs, the forward output and the output's gradient.
type gradOp[T float] struct {
	op    *nodeOp[T]
	input int
	buf   func(n int) []T // the shared buffer of a parameter's gradient, or nil
}

func (g *gradOp[T]) Arity() int { return len(g.op.inShapes) + 2 }

func (g *gradOp[T]) Type() hm.Type {
	ts := make([]hm.Type, 0, len(g.op.inShapes)+3)
	for _, s := range g.op.inShapes {
		ts = append(ts, typeOfShape[T](s))
	}
	out := typeOfShape[T](g.op.outShape)
	ts = append(ts, out, out, typeOfShape[T](g.op.inShapes[g.input]))
	return hm.NewFnType(ts...)
}

func (g *gradOp[T]) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), g.op.inShapes[g.input]...)), nil
}

// Do computes the gradient into a new buffer, as gorgonia's own machines call it; the
// toolkit's executor (exec.go) calls the kernel itself.
func (g *gradOp[T]) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	shapes := append(append([][]int{}, g.op.inShapes...), g.op.outShape, g.op.outShape)
	all, err := slicesOf[T](vals, shapes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g, err)
	}
	n := len(g.op.inShapes)
	shape := g.op.inShapes[g.input]
	gin := make([]T, numElements(shape))
	if err := g.op.k.backward(g.input, all[:n], all[n], all[n+1], gin); err != nil {
		return nil, fmt.Errorf("%s: %w", g, err)
	}
	return valueOf(gin, shape), nil
}

func (g *gradOp[T]) ReturnsPtr() bool     { return false }
func (g *gradOp[T]) CallsExtern() bool    { return false }
func (g *gradOp[T]) OverwritesInput() int { return -1 }
func (g *gradOp[T]) String() string       { return fmt.Sprintf("d%s/d#%d", g.op.name, g.input) }
func (g *gradOp[T]) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "toolkit.grad%d.%d.%s", g.op.id, g.input, g.op.name)
}
func (g *gradOp[T]) Hashcode() uint32 { return hashOf(g) }

type hashWriter interface{ WriteHash(hash.Hash) }

func hashOf(op hashWriter) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// reuse returns buf if it holds n elements, else a new slice of n.
func reuse[T float](buf []T, n int) []T {
	if len(buf) == n {
		return buf
	}
	return make([]T, n)
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// slicesOf returns the flat data of each value, checking its length against shapes.
func slicesOf[T float](vals []gorgonia.Value, shapes [][]int) ([][]T, error) {
	if len(vals) != len(shapes) {
		return nil, fmt.Errorf("got %d arguments, want %d", len(vals), len(shapes))
	}
	out := make([][]T, len(vals))
	for i, v := range vals {
		s, err := sliceOf[T](v)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
		if want := numElements(shapes[i]); len(s) != want {
			return nil, fmt.Errorf("argument %d has %d elements, want %d (shape %v)", i, len(s), want, shapes[i])
		}
		out[i] = s
	}
	return out, nil
}

func sliceOf[T float](v gorgonia.Value) ([]T, error) {
	switch x := v.(type) {
	case *tensor.Dense:
		if x.Shape().TotalSize() == 0 && x.Dtype() == dtypeOf[T]() {
			return []T{}, nil // an empty tensor (its Data panics)
		}
		if s, ok := x.Data().([]T); ok {
			return s, nil
		}
		if s, ok := x.Data().(T); ok {
			return []T{s}, nil
		}
		return nil, fmt.Errorf("tensor of %v, want %v", x.Dtype(), dtypeOf[T]())
	case *gorgonia.F32:
		if s, ok := any([]float32{float32(*x)}).([]T); ok {
			return s, nil
		}
	case *gorgonia.F64:
		if s, ok := any([]float64{float64(*x)}).([]T); ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("value of type %T, want %v", v, dtypeOf[T]())
}

// valueOf wraps data as a gorgonia value: a scalar for an empty shape, else a tensor.
func valueOf[T float](data []T, shape []int) gorgonia.Value {
	if len(shape) == 0 {
		switch x := any(data[0]).(type) {
		case float32:
			return gorgonia.NewF32(x)
		case float64:
			return gorgonia.NewF64(x)
		}
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}
