package backend

import (
	"fmt"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// Ops that only move data: their forward copies the input, their backward copies the
// gradient back. Output shapes come from shape inference (and its constant folding of
// Reshape's shape input), so one kernel serves them all.

func init() {
	for _, op := range []string{"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"} {
		register(op, newCopy[float32], newCopy[float64])
	}
	register("Dropout", newDropout[float32], newDropout[float64])
	// Shape arithmetic: computed on constants while the program is built (the
	// exporters' x.size(0) -> Gather -> ... -> Reshape chains, ViT's Expand of its class
	// token through ConstantOfShape, a Swin transformer's masks through ScatterND).
	for _, op := range []string{"Constant", "Shape", "Cast", "ConstantOfShape", "Range", "Size", "ScatterND"} {
		register(op, newFoldedOnly[float32], newFoldedOnly[float64])
	}
	register("Gather", newGather[float32], newGather[float64])
	register("Concat", newConcat[float32], newConcat[float64])
	register("Slice", newSlice[float32], newSlice[float64])
	register("Split", newSplit[float32], newSplit[float64])
	register("Expand", newExpand[float32], newExpand[float64])
	register("Tile", newTile[float32], newTile[float64])
}

type copyKernel[T float] struct{}

func (copyKernel[T]) forward(ins [][]T, out []T) error { copy(out, ins[0]); return nil }
func (copyKernel[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	copy(gin, gout)
	return nil
}

func (copyKernel[T]) backwardReads(int) reads { return reads{} }
func (copyKernel[T]) overwritesGrad() bool    { return true }
func (copyKernel[T]) inPlace() int            { return 0 }
func (copyKernel[T]) gradInPlace(int) bool    { return true }

func newCopy[T float](c *opContext) (*opKernels[T], error) {
	if c.in[0] == nil || c.out[0] == nil {
		return nil, c.errorf("shapes unknown")
	}
	if numElements(c.in[0]) != numElements(c.out[0]) {
		return nil, c.errorf("input %v and output %v differ in size", c.in[0], c.out[0])
	}
	if c.node.OpType == "Cast" && c.node.AttrInt("to", 1) != 1 {
		return nil, c.errorf("cast of float data to a non-float type is not supported")
	}
	return &opKernels[T]{outputs: []kernel[T]{copyKernel[T]{}}, data: []int{0}}, nil
}

// newFoldedOnly serves ops whose outputs shape inference always knows when the program
// is built (Shape of a static shape, Constant); reaching the constructor means a float
// tensor would have to flow through them at run time.
func newFoldedOnly[T float](c *opContext) (*opKernels[T], error) {
	if c.node.OpType == "Cast" && c.node.AttrInt("to", 1) == 1 {
		return newCopy[T](c)
	}
	return nil, c.errorf("the output is not known when the program is built, and the backend computes %s only on constants", c.node.OpType)
}

// dropout is the identity in inference and inverted dropout in training: kept values
// are scaled by 1/(1-ratio), the mask of the last forward pass serves the backward one.
type dropout[T float] struct {
	c     *opContext
	ratio float64
	n     int
	mask  []T
}

func newDropout[T float](c *opContext) (*opKernels[T], error) {
	ratio := float64(c.node.AttrFloat("ratio", 0.5))
	if c.opset >= 12 {
		ratio = 0.5
		if c.has(1) {
			k := c.consts[1]
			if k == nil || len(k.Floats) != 1 {
				return nil, c.errorf("the ratio input must be a constant scalar")
			}
			ratio = float64(k.Floats[0])
		}
	}
	training := c.training
	if c.opset >= 12 && c.has(2) {
		k := c.consts[2]
		if k == nil || len(k.Ints) != 1 {
			return nil, c.errorf("the training_mode input must be a constant boolean")
		}
		training = k.Ints[0] != 0
	}
	if ratio < 0 || ratio >= 1 {
		return nil, c.errorf("ratio %v is outside [0, 1)", ratio)
	}
	if !training || ratio == 0 {
		return &opKernels[T]{outputs: []kernel[T]{copyKernel[T]{}}, data: []int{0}}, nil
	}
	k := &dropout[T]{c: c, ratio: ratio, n: numElements(c.out[0])}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

// savedLen: the mask, one value per element.
func (d *dropout[T]) savedLen() int  { return d.n }
func (d *dropout[T]) setSaved(s []T) { d.mask = s }

func (d *dropout[T]) forward(ins [][]T, out []T) error {
	scale := T(1 / (1 - d.ratio))
	for i, v := range ins[0] {
		if d.c.rng.Float64() < d.ratio {
			d.mask[i] = 0
		} else {
			d.mask[i] = scale
		}
		out[i] = v * d.mask[i]
	}
	return nil
}

// backwardReads: the mask, which the kernel keeps, is all the gradient needs.
func (d *dropout[T]) backwardReads(int) reads { return reads{} }
func (d *dropout[T]) overwritesGrad() bool    { return true }
func (d *dropout[T]) inPlace() int            { return 0 }
func (d *dropout[T]) gradInPlace(int) bool    { return true }

func (d *dropout[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	for j, g := range gout {
		gin[j] = g * d.mask[j]
	}
	return nil
}

// gather takes slices of float data along an axis at constant indices.
type gather[T float] struct {
	outer, axisLen, inner int
	idx                   []int
}

func newGather[T float](c *opContext) (*opKernels[T], error) {
	k := c.consts[1]
	if k == nil {
		return nil, c.errorf("indices must be constant")
	}
	shape := c.in[0]
	axis := int(c.node.AttrInt("axis", 0))
	if axis < 0 {
		axis += len(shape)
	}
	if axis < 0 || axis >= len(shape) {
		return nil, c.errorf("axis %d out of range for rank %d", c.node.AttrInt("axis", 0), len(shape))
	}
	g := &gather[T]{outer: numElements(shape[:axis]), axisLen: shape[axis], inner: numElements(shape[axis+1:])}
	for _, v := range k.Ints {
		i := int(v)
		if i < 0 {
			i += shape[axis]
		}
		if i < 0 || i >= shape[axis] {
			return nil, c.errorf("index %d out of range for axis of size %d", v, shape[axis])
		}
		g.idx = append(g.idx, i)
	}
	return &opKernels[T]{outputs: []kernel[T]{g}, data: []int{0}}, nil
}

func (g *gather[T]) forward(ins [][]T, out []T) error {
	x, o := ins[0], 0
	for a := 0; a < g.outer; a++ {
		for _, i := range g.idx {
			src := (a*g.axisLen + i) * g.inner
			o += copy(out[o:o+g.inner], x[src:src+g.inner])
		}
	}
	return nil
}

func (g *gather[T]) backwardReads(int) reads { return reads{} }

func (g *gather[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	clear(gin)
	o := 0
	for a := 0; a < g.outer; a++ {
		for _, i := range g.idx {
			dst := (a*g.axisLen + i) * g.inner
			for j := 0; j < g.inner; j++ {
				gin[dst+j] += gout[o+j]
			}
			o += g.inner
		}
	}
	return nil
}

// concat joins float tensors along an axis.
type concat[T float] struct {
	outer int
	// chunk is each input's contiguous block per outer index.
	chunk []int
}

func newConcat[T float](c *opContext) (*opKernels[T], error) {
	rank := len(c.out[0])
	axis := int(c.node.AttrInt("axis", 0))
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, c.errorf("axis %d out of range for rank %d", c.node.AttrInt("axis", 0), rank)
	}
	k := &concat[T]{outer: numElements(c.out[0][:axis])}
	ks := &opKernels[T]{outputs: []kernel[T]{k}}
	for i, s := range c.in {
		if s == nil {
			return nil, c.errorf("input %d has no shape", i)
		}
		k.chunk = append(k.chunk, numElements(s[axis:]))
		ks.data = append(ks.data, i)
	}
	return ks, nil
}

func (k *concat[T]) forward(ins [][]T, out []T) error {
	o := 0
	for a := 0; a < k.outer; a++ {
		for i, x := range ins {
			o += copy(out[o:], x[a*k.chunk[i]:(a+1)*k.chunk[i]])
		}
	}
	return nil
}

func (k *concat[T]) backwardReads(int) reads { return reads{} }

func (k *concat[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	stride := 0
	offset := 0
	for j, c := range k.chunk {
		if j < i {
			offset += c
		}
		stride += c
	}
	if stride*k.outer != len(gout) {
		return fmt.Errorf("concat: gradient of %d values, want %d", len(gout), stride*k.outer)
	}
	for a := 0; a < k.outer; a++ {
		copy(gin[a*k.chunk[i]:(a+1)*k.chunk[i]], gout[a*stride+offset:])
	}
	return nil
}

// slice is Slice, and one output of Split: a strided sub-tensor of its input.
type slice[T float] struct{ p kernels.SliceParams }

func (k *slice[T]) forward(ins [][]T, out []T) error {
	kernels.SliceForward(k.p, ins[0], out)
	return nil
}

// overwritesGrad: SliceBackward clears the input gradient before scattering.
func (k *slice[T]) overwritesGrad() bool { return true }

func (k *slice[T]) backwardReads(int) reads { return reads{} }

func (k *slice[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.SliceBackward(k.p, gout, gin)
	return nil
}

func newSlice[T float](c *opContext) (*opKernels[T], error) {
	first, step, out, err := onnx.SliceGeometry(c.node, c.opset, int64sOf(c.in[0]), c.consts)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	p := kernels.SliceParams{In: c.in[0], Out: intsOf(out), Start: intsOf(first), Step: intsOf(step)}
	if err := p.Validate(); err != nil {
		return nil, c.errorf("%v", err)
	}
	return &opKernels[T]{outputs: []kernel[T]{&slice[T]{p: p}}, data: []int{0}}, nil
}

// newSplit makes one slice kernel per output of Split.
func newSplit[T float](c *opContext) (*opKernels[T], error) {
	var split *onnx.Tensor
	if len(c.consts) > 1 {
		split = c.consts[1]
	}
	x := c.in[0]
	axis, sizes, err := onnx.SplitSizes(c.node, c.opset, int64sOf(x), split)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	ks := &opKernels[T]{data: []int{0}, allOutputs: true}
	offset := 0
	for _, d := range sizes {
		p := kernels.SliceParams{In: x, Out: append([]int(nil), x...), Start: make([]int, len(x)), Step: make([]int, len(x))}
		for i := range p.Step {
			p.Step[i] = 1
		}
		p.Out[axis], p.Start[axis] = int(d), offset
		offset += int(d)
		ks.outputs = append(ks.outputs, &slice[T]{p: p})
	}
	return ks, nil
}

// expand is Expand: the input broadcast to the output's shape.
type expand[T float] struct{ in, out []int }

func newExpand[T float](c *opContext) (*opKernels[T], error) {
	if c.in[0] == nil || c.out[0] == nil {
		return nil, c.errorf("shapes unknown")
	}
	return &opKernels[T]{outputs: []kernel[T]{&expand[T]{in: c.in[0], out: c.out[0]}}, data: []int{0}}, nil
}

func (k *expand[T]) forward(ins [][]T, out []T) error {
	kernels.BroadcastTo(k.in, ins[0], k.out, out)
	return nil
}

// overwritesGrad: ReduceToShape clears its output first.
func (k *expand[T]) overwritesGrad() bool { return true }

func (k *expand[T]) backwardReads(int) reads { return reads{} }

func (k *expand[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.ReduceToShape(k.out, gout, k.in, gin)
	return nil
}

// tile is Tile: the input repeated along each axis.
type tile[T float] struct{ shape, repeats []int }

func newTile[T float](c *opContext) (*opKernels[T], error) {
	k := c.consts[1]
	if k == nil || len(k.Ints) != len(c.in[0]) {
		return nil, c.errorf("repeats must be a constant with one value per axis of the input %v", c.in[0])
	}
	return &opKernels[T]{outputs: []kernel[T]{&tile[T]{shape: c.in[0], repeats: intsOf(k.Ints)}}, data: []int{0}}, nil
}

func (k *tile[T]) forward(ins [][]T, out []T) error {
	kernels.TileForward(k.shape, k.repeats, ins[0], out)
	return nil
}

// overwritesGrad: TileBackward clears its output first.
func (k *tile[T]) overwritesGrad() bool { return true }

func (k *tile[T]) backwardReads(int) reads { return reads{} }

func (k *tile[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.TileBackward(k.shape, k.repeats, gout, gin)
	return nil
}
