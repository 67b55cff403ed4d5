package backend

import (
	"toolkit/backend/kernels"
	"toolkit/onnx"
)

func init() {
	register("MaxPool", newPool[float32], newPool[float64])
	register("AveragePool", newPool[float32], newPool[float64])
	register("GlobalAveragePool", newGlobalPool[float32], newGlobalPool[float64])
	register("GlobalMaxPool", newGlobalPool[float32], newGlobalPool[float64])
}

// maxPool finds the position of each window's maximum again in its input in the
// backward pass (kernels.MaxPool2DBackward): a training step keeps nothing for
// it where it keeps its input anyway, a Relu's output. With keepPositions (a training
// program that keeps values in bfloat16 between the passes, Options.SavedBF16) it
// keeps the positions instead (a quarter of a 2×2 pooling's input, as int32), so that
// its input, read by nothing else but a Relu's gradient, can be kept in bfloat16.
type maxPool[T float] struct {
	p             kernels.Pool2DParams
	keepPositions bool
	positions     []int32 // the forward pass's, with keepPositions (saver)
}

type avgPool[T float] struct{ p kernels.Pool2DParams }

func newPool[T float](c *opContext) (*opKernels[T], error) {
	x := c.in[0]
	if len(x) != 4 {
		return nil, c.errorf("only 2-D pooling over NCHW input is supported: X is %v", x)
	}
	if len(c.node.Outputs) > 1 && c.node.Outputs[1] != "" {
		return nil, c.errorf("the Indices output of MaxPool is not supported")
	}
	if c.node.AttrInt("storage_order", 0) != 0 {
		return nil, c.errorf("storage_order=1 is not supported")
	}
	win, err := onnx.PoolWindow(c.node, int64sOf(x))
	if err != nil {
		return nil, err
	}
	p := kernels.Pool2DParams{
		N: x[0], C: x[1], H: x[2], W: x[3], KH: win.Kernel[0], KW: win.Kernel[1],
		StrideH: win.Strides[0], StrideW: win.Strides[1], DilH: win.Dilations[0], DilW: win.Dilations[1],
		PadTop: win.PadBegin[0], PadLeft: win.PadBegin[1], PadBottom: win.PadEnd[0], PadRight: win.PadEnd[1],
		OutH: win.Out[0], OutW: win.Out[1], CountIncludePad: win.CountIncludePad,
	}
	var k kernel[T] = &avgPool[T]{p: p}
	if c.node.OpType == "MaxPool" {
		_, f32 := any(*new(T)).(float32) // float64 programs keep nothing in bfloat16
		k = &maxPool[T]{p: p, keepPositions: c.training && c.savedBF16 && f32}
	}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

func (k *maxPool[T]) forward(ins [][]T, out []T) error {
	kernels.MaxPool2DForward(k.p, ins[0], out, k.positions)
	return nil
}

// savedLen: the positions, with keepPositions.
func (k *maxPool[T]) savedLen() int {
	if !k.keepPositions {
		return 0
	}
	return int32Len[T](k.p.YLen())
}

func (k *maxPool[T]) setSaved(s []T) {
	if k.keepPositions {
		k.positions = int32sIn(s, k.p.YLen())
	}
}

// overwritesGrad: MaxPool2DBackward clears each plane before scattering into it.
func (k *maxPool[T]) overwritesGrad() bool { return true }

// backwardReads: the input, where the gradient finds the maxima; nothing with the
// positions kept.
func (k *maxPool[T]) backwardReads(int) reads {
	if k.keepPositions {
		return reads{}
	}
	return readsIn(0)
}

func (k *maxPool[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	if k.keepPositions {
		kernels.MaxPool2DBackwardAt(k.p, k.positions, gout, gin)
		return nil
	}
	kernels.MaxPool2DBackward(k.p, ins[0], gout, gin)
	return nil
}

func (k *avgPool[T]) forward(ins [][]T, out []T) error {
	kernels.AvgPool2DForward(k.p, ins[0], out)
	return nil
}

func (k *avgPool[T]) backwardReads(int) reads { return reads{} }

func (k *avgPool[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.AvgPool2DBackward(k.p, gout, gin)
	return nil
}

// globalPool averages or takes the maximum over all spatial positions of each channel.
type globalPool[T float] struct {
	n, c, hw int
	max      bool
	argmax   []int32
}

func newGlobalPool[T float](c *opContext) (*opKernels[T], error) {
	x := c.in[0]
	if len(x) < 3 {
		return nil, c.errorf("input of rank %d: want [N C spatial...]", len(x))
	}
	k := &globalPool[T]{n: x[0], c: x[1], hw: numElements(x[2:]), max: c.node.OpType == "GlobalMaxPool"}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

func (k *globalPool[T]) forward(ins [][]T, out []T) error {
	if k.max {
		kernels.GlobalMaxPoolForward(k.n, k.c, k.hw, ins[0], out, k.argmax)
	} else {
		kernels.GlobalAvgPoolForward(k.n, k.c, k.hw, ins[0], out)
	}
	return nil
}

// savedLen: a global max pooling keeps the position of each maximum.
func (k *globalPool[T]) savedLen() int {
	if !k.max {
		return 0
	}
	return int32Len[T](k.n * k.c)
}

func (k *globalPool[T]) setSaved(s []T) { k.argmax = int32sIn(s, k.n*k.c) }

func (k *globalPool[T]) backwardReads(int) reads { return reads{} }

func (k *globalPool[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	if k.max {
		kernels.GlobalMaxPoolBackward(k.n, k.c, k.hw, gout, k.argmax, gin)
	} else {
		kernels.GlobalAvgPoolBackward(k.n, k.c, k.hw, gout, gin)
	}
	return nil
}
