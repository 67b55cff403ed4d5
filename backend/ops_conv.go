package backend

import (
	"math"
	"slices"
	"toolkit/backend/kernels"
	"toolkit/onnx"
)

func init() {
	register("Conv", newConv[float32], newConv[float64])
}

// conv is ONNX Conv over NCHW input with 2-D kernels: explicit or asymmetric pads,
// auto_pad, strides, dilations, groups (depthwise included) and an optional bias; with act, the Conv and the Relu
// or Clip after it as one op (the kernels apply it as they store the output).
type conv[T float] struct {
	p   kernels.Conv2DParams
	act kernels.Activation
	// dzValid says that the output gradient has been masked by the activation's
	// derivative in this run (by the first backward call after the forward pass).
	dzValid bool
	// filters keeps what the kernels derive from W alone from run to run, when the
	// program does not train W (nil when it does); the model's programs share it.
	filters *kernels.FilterCache
	// constant: the program's weights do not change (Options.ConstantWeights).
	constant bool
	// fold is the BatchNormalization folded into the convolution (nil: none); the
	// folded weights and bias, made at the first run, and their own cache.
	fold      *bnFold
	foldW     []T
	foldB     []T
	foldCache kernels.FilterCache
	// residual: the op adds its last input, the other operand of the Add after the
	// convolution, to its output before act (constant weights; planResidualAdds).
	residual bool
	// residualAt is that input's place among the op's inputs.
	residualAt int
}

// bnFold is a BatchNormalization folded into the convolution before it: y = s·(conv(x)
// + b - mean) + shift with s = scale/√(var + eps), that is the convolution with weights
// s·W and bias s·(b - mean) + shift.
type bnFold struct {
	eps  float64
	node string
}

func newConv[T float](c *opContext) (*opKernels[T], error) {
	x, w := c.in[0], c.in[1]
	if len(x) != 4 || len(w) != 4 {
		return nil, c.errorf("only 2-D convolutions over NCHW input are supported: X is %v, W is %v", x, w)
	}
	g := int(c.node.AttrInt("group", 1))
	if g < 1 {
		return nil, c.errorf("group=%d: must be at least 1", g)
	}
	win, err := onnx.ConvWindow(c.node, int64sOf(x), int64sOf(w))
	if err != nil {
		return nil, err
	}
	if x[1] != w[1]*g {
		if g == 1 {
			return nil, c.errorf("X has %d channels but W expects %d", x[1], w[1])
		}
		return nil, c.errorf("X has %d channels but W expects %d (group=%d times %d per group)", x[1], w[1]*g, g, w[1])
	}
	if w[0]%g != 0 {
		return nil, c.errorf("W has %d output channels, not a multiple of group=%d", w[0], g)
	}
	p := kernels.Conv2DParams{
		N: x[0], C: x[1], H: x[2], W: x[3], M: w[0], KH: w[2], KW: w[3],
		StrideH: win.Strides[0], StrideW: win.Strides[1], DilH: win.Dilations[0], DilW: win.Dilations[1],
		PadTop: win.PadBegin[0], PadLeft: win.PadBegin[1], PadBottom: win.PadEnd[0], PadRight: win.PadEnd[1],
		OutH: win.Out[0], OutW: win.Out[1], Group: g,
	}
	k := &conv[T]{p: p, act: c.fuseAct, constant: c.fixed(1)}
	if !c.trained(1) && c.foldBN == nil { // a fold keeps its own cache
		k.filters = c.filterCache(c.node.Inputs[1])
	}
	ks := &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0, 1}}
	if c.has(2) {
		if b := c.in[2]; len(b) != 1 || b[0] != p.M {
			return nil, c.errorf("bias has shape %v, want [%d]", b, p.M)
		}
		ks.data = append(ks.data, 2)
	}
	if c.foldBN != nil {
		k.fold = c.foldBN
		for i := 3; i < 7; i++ {
			if !c.has(i) || len(c.in[i]) != 1 || c.in[i][0] != p.M {
				return nil, c.errorf("the BatchNormalization %q folded into it has input %d of shape %v, want [%d]", c.foldBN.node, i-2, c.in[i], p.M)
			}
			ks.data = append(ks.data, i)
		}
	}
	if c.addResidual {
		i := len(c.node.Inputs) - 1
		if !slices.Equal(c.in[i], c.out[0]) {
			return nil, c.errorf("the Add fused after it has an operand of shape %v, want the output's %v", c.in[i], c.out[0])
		}
		k.residual, k.residualAt = true, len(ks.data)
		ks.data = append(ks.data, i)
	}
	return ks, nil
}

// inPlace: with a residual the output may be written over it (the products add to
// what the output holds); otherwise not at all.
func (k *conv[T]) inPlace() int {
	if k.residual {
		return k.residualAt
	}
	return -1
}

// foldWeights makes the folded weights and bias from the forward's inputs.
func (k *conv[T]) foldWeights(ins [][]T) {
	// The normalization's scale, shift, mean and variance are the last four inputs,
	// after the convolution's bias if it has one.
	w, bn := ins[1], ins[len(ins)-4:]
	scale, shift, mean, variance := bn[0], bn[1], bn[2], bn[3]
	k.foldW, k.foldB = make([]T, len(w)), make([]T, k.p.M)
	per := len(w) / k.p.M
	for m := range k.p.M {
		s := float64(scale[m]) / math.Sqrt(float64(variance[m])+k.fold.eps)
		for i, v := range w[m*per : (m+1)*per] {
			k.foldW[m*per+i] = T(float64(v) * s)
		}
		var b float64
		if len(ins) == 7 { // with the bias
			b = float64(ins[2][m])
		}
		k.foldB[m] = T((b-float64(mean[m]))*s + float64(shift[m]))
	}
}

func (k *conv[T]) forward(ins [][]T, out []T) error {
	var res []T
	if k.residual {
		res, ins = ins[k.residualAt], ins[:k.residualAt] // the residual is the last input
	}
	w, bias, cache, constant := ins[1], []T(nil), k.filters, k.constant
	if k.fold != nil {
		// Constant weights: folded once, then taken as constant.
		if k.foldW == nil {
			k.foldWeights(ins)
		}
		w, bias, cache, constant = k.foldW, k.foldB, &k.foldCache, true
	} else if len(ins) > 2 {
		bias = ins[2]
	}
	switch {
	case res != nil:
		// out = act(conv(x) + residual): out over the residual, or given a copy of it.
		if &res[0] != &out[0] {
			copy(out, res)
		}
		kernels.Conv2DForwardConstantAdd(cache, k.p, ins[0], w, bias, out, k.act)
	case constant:
		kernels.Conv2DForwardConstant(cache, k.p, ins[0], w, bias, out, k.act)
	default:
		kernels.Conv2DForwardCached(cache, k.p, ins[0], w, bias, out, k.act)
	}
	k.dzValid = false
	return nil
}

// backwardReads: the data gradient reads the weights, the weight gradient the input,
// the bias gradient neither; with a fused activation each also reads the output (its mask).
func (k *conv[T]) backwardReads(i int) reads {
	r := reads{out: k.act.Kind != kernels.NoActivation}
	switch i {
	case 0:
		r.in = []int{1}
	case 1:
		r.in = []int{0}
	}
	return r
}

// readsRounded: the weight gradient's input (a product's factor; not a depthwise
// convolution's, whose weight gradient is float32 dot products), and a fused Relu's
// output (its mask).
func (k *conv[T]) readsRounded(i int) reads {
	r := reads{out: k.act.Kind == kernels.ReluActivation}
	if i == 1 && !k.p.Depthwise() {
		r.in = []int{0}
	}
	return r
}

// readsCompact: what readsRounded names, straight from its compact copy; the weight
// gradient's input where the convolution is not grouped and is read back in groups of
// its own (kernels.Conv2DParams.WeightGradReadsCompact).
func (k *conv[T]) readsCompact(i int) reads {
	r := k.readsRounded(i)
	if k.p.Group > 1 || !k.p.WeightGradReadsCompact() {
		r.in = nil
	}
	return r
}

// overwritesGrad: the three convolution gradients overwrite their outputs.
func (k *conv[T]) overwritesGrad() bool { return true }

// asyncBackward: the weight gradient runs beside the backward pass once the output
// gradient is masked by the activation's derivative (which the data and bias gradients
// read too, so it is done first, here).
func (k *conv[T]) runsAsync(i int) bool { return i == 1 }

func (k *conv[T]) asyncBackward(i int, ins [][]T, out, gout, gin []T) func() {
	if i != 1 {
		return nil
	}
	k.maskAct(out, gout)
	return func() { kernels.Conv2DBackwardWeight(k.p, ins[0], gout, gin) } // x may be its compact copy (readsCompact)
}

// maskAct turns the gradient at a fused activation's output into the one at the
// convolution's, once per run.
func (k *conv[T]) maskAct(out, gout []T) {
	if k.act.Kind != kernels.NoActivation && !k.dzValid {
		// The gradient at the activation's output becomes the one at the convolution's,
		// in place: its output's only reader is this op (planFusions), so nothing else
		// reads gout, and masking twice would change nothing. The output tells where the
		// activation is sloped (a Relu's out > 0 exactly where the conv's output is; out
		// may be its compact copy, readsCompact).
		kernels.ActivationBackward(k.act, out, gout, gout)
		k.dzValid = true
	}
}

func (k *conv[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	k.maskAct(out, gout)
	switch i {
	case 0:
		kernels.Conv2DBackwardData(k.p, ins[1], gout, gin)
	case 1:
		kernels.Conv2DBackwardWeight(k.p, ins[0], gout, gin)
	case 2:
		kernels.Conv2DBackwardBias(k.p, gout, gin)
	}
	return nil
}
