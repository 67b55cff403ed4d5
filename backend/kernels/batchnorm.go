package kernels

import "math"

// BatchNormParams describes batch normalization over an NCHW tensor viewed
// as [N, C, HW], normalizing each channel c over its N*HW values. Per-channel
// vectors (scale, bias, means, variances and their gradients) have length C.
type BatchNormParams struct {
	N, C, HW int
	// Epsilon is added to the variance before the square root (ONNX
	// epsilon, default 1e-5).
	Epsilon float64
	// Momentum is ONNX's momentum (default 0.9): running statistics are
	// updated as running = running*Momentum + batch*(1-Momentum). PyTorch's
	// momentum is 1 minus this.
	Momentum float64
}

// XLen is the element count of X and Y.
func (p BatchNormParams) XLen() int { return p.N * p.C * p.HW }

// normLoops are a kernel's vector loops for the normalisation passes (in its
// instruction set: gemm_gen_amd64.s); each takes n, a multiple of block, and the
// functions below pass them whole blocks of each plane (one image's channel) and do
// the rest in Go. The sums run in float32 in the vector lanes within a plane and in
// float64 across planes.
type normLoops struct {
	block     int
	sum       func(n int, x *float32) float32                            // Σ x
	sumSqDev  func(n int, x *float32, mean float32) float32              // Σ (x-mean)²
	sumDevDot func(n int, x, dy *float32, mean float32, out *[2]float32) // Σ dy, Σ (x-mean)·dy
	affine    func(n int, a, b float32, x, y *float32)                   // y = a·x + b
	scale     func(n int, a float32, x, y *float32)                      // y = a·x
	bnBack    func(n int, a, b, d float32, x, dy, dx *float32)           // dx = a·dy - (b·x + d)
	clip      func(n int, lo, hi float32, x, y *float32)                 // y = min(max(x, lo), hi), NaN kept
	clipBack  func(n int, lo, hi float32, y, dy, dx *float32)            // dx = dy where lo < y < hi
	relu      func(n int, x, y *float32)                                 // y = max(x, 0), NaN kept, +0 for -0
	hardSwish func(n int, x, y *float32)                                 // y = x·clip(x+3, 0, 6)·(1/6), NaN kept
	reluBack  func(n int, y, dy, dx *float32)                            // dx = dy where y > 0
	// The layer normalisation's (layernorm.go), with per-column scale and bias.
	lnApply func(n int, mean, inv float32, x, scale, bias, y *float32)        // y = (x-mean)·inv·scale + bias
	lnSums  func(n int, x, dy, scale *float32, mean float32, out *[2]float32) // Σ dy·scale, Σ (x-mean)·dy·scale
	lnBack  func(n int, a, b, d, mean float32, x, dy, scale, dx *float32)     // dx = a·dy·scale - (b·(x-mean) + d)
	// The scale's and the shift's gradients, a row at a time into float64 sums, the same
	// bits as the Go loops; n a multiple of lnLanes().
	lnDScale func(n int, mean, inv float64, x, dy *float32, acc *float64) // acc += dy·(x-mean)·inv
	lnDBias  func(n int, dy *float32, acc *float64)                       // acc += dy
}

// lnLanes is how many float64 sums a vector of the loops holds: half its float32 lanes.
func (l *normLoops) lnLanes() int { return l.block / 2 }

// normLoopsFor returns the vector loops of the kernel in use for T, or nil (float64,
// or a kernel without them: the loops below then run in Go).
func normLoopsFor[T Float]() *normLoops {
	if k := packedKernel[T](); k != nil {
		return k.norm
	}
	return nil
}

// vecHead returns how many of the n values the vector loops take (whole blocks).
func (l *normLoops) vecHead(n int) int {
	if l == nil {
		return 0
	}
	return n / l.block * l.block
}

// lnHead is how many of n columns the layer normalisation's float64 column loops take
// (lnDScale, lnDBias: a multiple of lnLanes()); 0 without them (l nil).
func (l *normLoops) lnHead(n int) int {
	if l == nil {
		return 0
	}
	return n / l.lnLanes() * l.lnLanes()
}

// addPlaneSum returns t plus the sum of the plane s: its whole vectors in l's float32
// lanes (l may be nil), then the rest with [sum].
func addPlaneSum[T Float](l *normLoops, t float64, s []T) float64 {
	h := l.vecHead(len(s))
	if h > 0 {
		t += float64(l.sum(h, &as32(s)[0]))
	}
	return t + sum(s[h:])
}

// addPlaneSqDev returns t plus the sum of (v - mean)² over the plane s: its whole
// vectors in l's float32 lanes (l may be nil), then the rest in float64, in order.
func addPlaneSqDev[T Float](l *normLoops, t float64, s []T, mean float64) float64 {
	h := l.vecHead(len(s))
	if h > 0 {
		t += float64(l.sumSqDev(h, &as32(s)[0], float32(mean)))
	}
	for _, v := range s[h:] {
		d := float64(v) - mean
		t += d * d
	}
	return t
}

// channelSum is the float64 sum of channel c of s.
func channelSum[T Float](p BatchNormParams, s []T, c int) float64 {
	l := normLoopsFor[T]()
	var t float64
	for n := 0; n < p.N; n++ {
		o := (n*p.C + c) * p.HW
		t = addPlaneSum(l, t, s[o:o+p.HW])
	}
	return t
}

// channelSqDev is the float64 sum over channel c of (x - mean)².
func channelSqDev[T Float](p BatchNormParams, x []T, c int, mean float64) float64 {
	l := normLoopsFor[T]()
	var t float64
	for n := 0; n < p.N; n++ {
		o := (n*p.C + c) * p.HW
		t = addPlaneSqDev(l, t, x[o:o+p.HW], mean)
	}
	return t
}

// channelSumDot returns the float64 sums over channel c of dy and of (x - mean) * dy.
func channelSumDot[T Float](p BatchNormParams, x channelValues[T], dy []T, c int, mean float64) (sumDy, dot float64) {
	l := normLoopsFor[T]()
	h := l.vecHead(p.HW)
	for n := 0; n < p.N; n++ {
		o := (n*p.C + c) * p.HW
		xn := x.plane(n, p.HW)
		if h > 0 {
			var out [2]float32
			l.sumDevDot(h, &as32(xn)[0], &as32(dy)[o], float32(mean), &out)
			sumDy += float64(out[0])
			dot += float64(out[1])
		}
		xs, gs := xn[h:], dy[o+h:o+p.HW]
		for i, g := range gs {
			sumDy += float64(g)
			dot += (float64(xs[i]) - mean) * float64(g)
		}
	}
	return sumDy, dot
}

// channelDot is the float64 sum over channel c of (x - mean) * dy.
func channelDot[T Float](p BatchNormParams, x, dy []T, c int, mean float64) float64 {
	_, d := channelSumDot(p, channelOf(p, x, nil, c, nil), dy, c, mean)
	return d
}

// channelValues is one channel of an NCHW tensor: its plane n is data[off+n·stride:]
// (HW values). A channel of float32 values is read where it is; one of a compact copy
// (ToBF16) is read back into a buffer first, plane after plane, and its mean taken.
type channelValues[T Float] struct {
	data        []T
	off, stride int
	rounded     bool    // read back from a compact copy
	mean        float64 // the mean of the values read back
}

// centre is the mean the normalization's gradients centre the channel's values on:
// the batch's (saved, of the float32 values) or, for values read back from their copy,
// theirs, so that the normalized values still sum to zero over the channel (and the
// data gradient with them: a bias before the normalization gets none, as without the
// rounding).
func (v channelValues[T]) centre(saved T) float64 {
	if v.rounded {
		return v.mean
	}
	return float64(saved)
}

func (v channelValues[T]) plane(n, hw int) []T {
	o := v.off + n*v.stride
	return v.data[o : o+hw]
}

// channelOf returns channel c of x: x's own values, or where x is a compact copy (xc,
// compactView's) its values read back into buf (p.N·p.HW values, exact).
func channelOf[T Float](p BatchNormParams, x []T, xc []uint16, c int, buf []T) channelValues[T] {
	if xc == nil {
		return channelValues[T]{data: x, off: c * p.HW, stride: p.C * p.HW}
	}
	b := as32(buf)
	for n := 0; n < p.N; n++ {
		o := (n*p.C + c) * p.HW
		fromBF16Run(xc[o:o+p.HW], b[n*p.HW:(n+1)*p.HW])
	}
	m := p.N * p.HW
	return channelValues[T]{data: buf, stride: p.HW, rounded: true, mean: addPlaneSum(normLoopsFor[T](), 0, buf[:m]) / float64(m)}
}

// channelScratch returns the buffer channelOf reads a compact copy's channel back into
// (putBuf it after), or nil when x is float32 (xc nil).
func channelScratch[T Float](p BatchNormParams, xc []uint16) []T {
	if xc == nil {
		return nil
	}
	return getBuf[T](p.N * p.HW)
}

// channelAffine sets dst = a*src + b over channel c.
func channelAffine[T Float](p BatchNormParams, src, dst []T, c int, a, b T) {
	for n := 0; n < p.N; n++ {
		o := (n*p.C + c) * p.HW
		affineT(a, b, src[o:o+p.HW], dst[o:o+p.HW])
	}
}

func bnChannels(p BatchNormParams, fn func(lo, hi int)) {
	parallelFor(p.C, workers(p.C, 2*p.N*p.HW), func(_, lo, hi int) { fn(lo, hi) })
}

// BatchNormInference computes y = scale*(x - mean)/sqrt(variance + eps) +
// bias with the given (running) statistics.
func BatchNormInference[T Float](p BatchNormParams, x, scale, bias, mean, variance, y []T) {
	BatchNormInferenceAct(p, x, scale, bias, mean, variance, y, Activation{})
}

// Activation is a function fused after a normalization, applied to each channel as it
// is written (while it is in the cache): none, a Relu (max(y, 0), as [ReluForward]), a
// Clip to [Lo, Hi] (as [UnaryForward] with [Clip]: ReLU6 with 0 and 6), or a SiLU (y·σ(y),
// as UnaryForward with [SiLU]). A convolution stores the first three as its products
// store their outputs (a SiLU is a pass after them, and its backward masks only a Relu or
// a Clip).
type Activation struct {
	Kind   ActivationKind
	Lo, Hi float64 // Clip's bounds
}

// bounds returns the float32 interval act clamps to: [0, +Inf] for a Relu, [Lo, Hi]
// for a Clip (rounded as UnaryForward rounds them), everything for none and for a SiLU
// (no clamp: the stores that take one apply it apart, tileSiLU).
func (act Activation) bounds() (lo, hi float32) {
	switch act.Kind {
	case ReluActivation:
		return 0, float32(math.Inf(1))
	case ClipActivation:
		return float32(act.Lo), float32(act.Hi)
	}
	return float32(math.Inf(-1)), float32(math.Inf(1)) // none, or a SiLU (no clamp)
}

// ActivationForward sets y to act of x (as ReluForward, or UnaryForward of Clip or
// SiLU); y may be x.
func ActivationForward[T Float](act Activation, x, y []T) {
	switch act.Kind {
	case NoActivation:
		copy(y, x)
	case ReluActivation:
		ReluForward(x, y)
	default:
		UnaryForward(act.unary(), x, y)
	}
}

// unary is a Clip or SiLU activation as the Unary kernels take it (a Relu has its
// own).
func (act Activation) unary() Unary {
	if act.Kind == SiLUActivation {
		return Unary{Op: SiLU}
	}
	return Unary{Op: Clip, Lo: act.Lo, Hi: act.Hi}
}

// ActivationKind says which function an [Activation] is.
type ActivationKind int

const (
	NoActivation ActivationKind = iota
	ReluActivation
	ClipActivation
	SiLUActivation
)

// ActivationBackward sets dx to dy where act's output y is on its sloped piece, else 0
// (as ReluBackward, whose y may be its compact copy, or UnaryBackward of Clip); dx may
// be dy. A SiLU's derivative needs
// its input, not y: see [BatchNormActivationMask].
func ActivationBackward[T Float](act Activation, y, dy, dx []T) {
	switch act.Kind {
	case ReluActivation:
		ReluBackward(y, dy, dx)
	case ClipActivation:
		UnaryBackward(act.unary(), nil, y, dy, dx)
	case SiLUActivation:
		panic("kernels: ActivationBackward: a SiLU's derivative needs its input (BatchNormActivationMask)")
	default:
		copy(dx, dy)
	}
}

// bnAffine returns the map y = a·x + b of a normalization's channel with statistics mean
// and inv (1/√(variance + ε)): a = scale·inv, b = bias − mean·a, in float64, rounded to
// T. With a SiLU after it the statistics are rounded to T first, so that its backward
// pass, given the saved (T) statistics, recomputes the normalization's output bit for
// bit (bnPreActivation) instead of keeping it.
func bnAffine[T Float](act Activation, scale, bias T, mean, inv float64) (a, b T) {
	if act.Kind == SiLUActivation {
		mean, inv = float64(T(mean)), float64(T(inv))
	}
	af := float64(scale) * inv
	return T(af), T(float64(bias) - mean*af)
}

// bnInvStd is 1/√(variance + ε).
func bnInvStd(variance, eps float64) float64 { return 1 / math.Sqrt(variance+eps) }

// BatchNormInvStd sets invStd[c] = 1/√(variance[c] + ε), rounded to T as the inference
// pass before a fused SiLU rounds it: the statistics [BatchNormActivationMask] takes in
// inference.
func BatchNormInvStd[T Float](p BatchNormParams, variance, invStd []T) {
	need("BatchNormInvStd", "variance", variance, p.C)
	need("BatchNormInvStd", "invStd", invStd, p.C)
	for c := range p.C {
		invStd[c] = T(bnInvStd(float64(variance[c]), p.Epsilon))
	}
}

// BatchNormActivationMask turns dy, the gradient at act's output, into the one at the
// normalization's output, in place, a channel at a time: from act's output y for a Relu
// or Clip (as ActivationBackward; a Relu's y may be its compact copy, ToBF16); for a
// SiLU from its input, the normalization's output
// recomputed from x with the statistics the forward pass used (mean and invStd: the
// batch's saved ones in training, the running mean and BatchNormInvStd of the running
// variance in inference), the same bits as the forward pass's, so that the fused pair
// need not keep it.
func BatchNormActivationMask[T Float](p BatchNormParams, act Activation, x, scale, bias, mean, invStd, y, dy []T) {
	const name = "BatchNormActivationMask"
	need(name, "dy", dy, p.XLen())
	var xc []uint16
	if act.Kind == SiLUActivation {
		needValues(name, "x", x, p.XLen())
		xc = compactView(x, p.XLen())
		for _, s := range [][]T{scale, bias, mean, invStd} {
			need(name, "statistics", s, p.C)
		}
	} else {
		needValues(name, "y", y, p.XLen())
	}
	yc := compactView(y, p.XLen())
	bnChannels(p, func(lo, hi int) {
		pre, xbuf := maskScratch[T](p, act, yc), channelScratch[T](p, xc)
		defer putBuf(pre)
		defer putBuf(xbuf)
		for c := lo; c < hi; c++ {
			var xv channelValues[T]
			if act.Kind == SiLUActivation {
				xv = channelOf(p, x, xc, c, xbuf)
			}
			channelActivationMask(p, act, xv, scale, bias, mean, invStd, y, yc, dy, c, pre)
		}
	})
}

// maskScratch returns the scratch of channelActivationMask: p.HW values from the pool
// for a SiLU's input or a Relu's output read back from its compact copy yc (putBuf it
// after), nil otherwise.
func maskScratch[T Float](p BatchNormParams, act Activation, yc []uint16) []T {
	if act.Kind != SiLUActivation && (act.Kind != ReluActivation || yc == nil) {
		return nil
	}
	return getBuf[T](p.HW)
}

// bnPreActivation writes into pre the normalization's output over plane (n, c): a·x + b
// with the channel's map (bnAffine of the forward pass's statistics).
func bnPreActivation[T Float](p BatchNormParams, x channelValues[T], a, b T, n int, pre []T) {
	affineT(a, b, x.plane(n, p.HW), pre[:p.HW])
}

// BatchNormInferenceAct is [BatchNormInference] followed by act, a channel at a time.
func BatchNormInferenceAct[T Float](p BatchNormParams, x, scale, bias, mean, variance, y []T, act Activation) {
	const name = "BatchNormInference"
	need(name, "x", x, p.XLen())
	need(name, "y", y, p.XLen())
	need(name, "scale", scale, p.C)
	need(name, "bias", bias, p.C)
	need(name, "mean", mean, p.C)
	need(name, "variance", variance, p.C)
	bnChannels(p, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			a, b := bnAffine(act, scale[c], bias[c], float64(mean[c]), bnInvStd(float64(variance[c]), p.Epsilon))
			channelAffine(p, x, y, c, a, b)
			channelActivation(p, y, c, act)
		}
	})
}

// channelActivation applies act over channel c of y, in place (as ActivationForward).
func channelActivation[T Float](p BatchNormParams, y []T, c int, act Activation) {
	for n := 0; n < p.N; n++ {
		activationSerial(act, y[(n*p.C+c)*p.HW:(n*p.C+c+1)*p.HW])
	}
}

// activationSerial applies act to y in place on the calling goroutine (ActivationForward's
// body, for callers already split across the cores).
func activationSerial[T Float](act Activation, y []T) {
	switch act.Kind {
	case ReluActivation:
		reluForwardSerial(y, y)
	case ClipActivation, SiLUActivation:
		unaryForwardSerial(act.unary(), y, y)
	}
}

// channelActivationMask is BatchNormActivationMask over channel c; yc is y's values when
// y is their compact copy (compactView), else nil; pre is the scratch of maskScratch.
func channelActivationMask[T Float](p BatchNormParams, act Activation, x channelValues[T], scale, bias, mean, invStd, y []T, yc []uint16, dy []T, c int, pre []T) {
	var a, b T
	if act.Kind == SiLUActivation {
		a, b = bnAffine(act, scale[c], bias[c], float64(mean[c]), float64(invStd[c]))
	}
	for n := 0; n < p.N; n++ {
		o := (n*p.C + c) * p.HW
		gs := dy[o : o+p.HW]
		switch act.Kind {
		case ReluActivation:
			if yc != nil {
				reluMaskCompact(yc[o:o+p.HW], as32(gs), as32(gs), as32(pre))
			} else {
				reluBackwardSerial(y[o:o+p.HW], gs, gs)
			}
		case ClipActivation:
			unaryBackwardSerial(act.unary(), nil, y[o:o+p.HW], gs, gs)
		case SiLUActivation:
			bnPreActivation(p, x, a, b, n, pre)
			unaryBackwardSerial(act.unary(), pre, nil, gs, gs)
		}
	}
}

// BatchNormInferenceBackwardData computes dx = dy*scale/sqrt(variance+eps),
// the input gradient of [BatchNormInference], where the statistics are
// constants. dx is overwritten.
func BatchNormInferenceBackwardData[T Float](p BatchNormParams, scale, variance, dy, dx []T) {
	const name = "BatchNormInferenceBackwardData"
	need(name, "dy", dy, p.XLen())
	need(name, "dx", dx, p.XLen())
	need(name, "scale", scale, p.C)
	need(name, "variance", variance, p.C)
	bnChannels(p, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			a := float64(scale[c]) / math.Sqrt(float64(variance[c])+p.Epsilon)
			channelAffine(p, dy, dx, c, T(a), 0)
		}
	})
}

// BatchNormInferenceBackwardScale computes dscale[c], the sum over channel c
// of dy*(x-mean)/sqrt(variance+eps): the scale gradient of
// [BatchNormInference]. dscale is overwritten.
func BatchNormInferenceBackwardScale[T Float](p BatchNormParams, x, mean, variance, dy, dscale []T) {
	const name = "BatchNormInferenceBackwardScale"
	need(name, "x", x, p.XLen())
	need(name, "dy", dy, p.XLen())
	need(name, "mean", mean, p.C)
	need(name, "variance", variance, p.C)
	need(name, "dscale", dscale, p.C)
	bnChannels(p, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			dscale[c] = T(channelDot(p, x, dy, c, float64(mean[c])) * bnInvStd(float64(variance[c]), p.Epsilon))
		}
	})
}

// BatchNormBackwardBias computes dbias[c], the sum of dy over channel c: the
// bias gradient in both inference and training mode. dbias is overwritten.
func BatchNormBackwardBias[T Float](p BatchNormParams, dy, dbias []T) {
	const name = "BatchNormBackwardBias"
	need(name, "dy", dy, p.XLen())
	need(name, "dbias", dbias, p.C)
	for c := 0; c < p.C; c++ {
		dbias[c] = T(channelSum(p, dy, c))
	}
}

// BatchNormTrainForward normalizes x with the statistics of the batch:
// y = scale*(x - mean_B)/sqrt(var_B + eps) + bias, where mean_B and var_B are
// each channel's mean and biased (divide by m = N*HW) variance, computed in
// float64 with two passes.
//
// saveMean and saveInvStd receive mean_B and 1/sqrt(var_B + eps) for the
// backward functions; either may be nil when not needed.
//
// When runningMean and runningVar are not nil they are updated in place
// with ONNX's momentum convention:
//
//	runningMean = runningMean*Momentum + mean_B*(1-Momentum)
//	runningVar  = runningVar*Momentum  + var_B*m/(m-1)*(1-Momentum)
//
// The running variance takes the unbiased batch variance, as PyTorch does
// (ONNX's reference implementation uses the biased one; PyTorch-exported
// models and their users expect PyTorch's statistics). With m == 1 the
// unbiased variance is undefined and the biased one (zero) is used.
func BatchNormTrainForward[T Float](p BatchNormParams, x, scale, bias, y, saveMean, saveInvStd, runningMean, runningVar []T) {
	BatchNormTrainForwardAct(p, x, scale, bias, y, saveMean, saveInvStd, runningMean, runningVar, Activation{})
}

// BatchNormTrainForwardAct is [BatchNormTrainForward] followed by act, a channel at a
// time while it is in the cache.
func BatchNormTrainForwardAct[T Float](p BatchNormParams, x, scale, bias, y, saveMean, saveInvStd, runningMean, runningVar []T, act Activation) {
	batchNormTrainForward(p, x, scale, bias, y, saveMean, saveInvStd, runningMean, runningVar, act, nil)
}

// BatchNormTrainForwardCopy is [BatchNormTrainForwardAct] that also writes x's compact
// copy into xc (float32, BF16Len(p.XLen()) slots; the same bits as [ToBF16]'s), a
// channel at a time while the channel is in the cache, instead of a pass over x after
// it: the copy a gradient that reads x rounded reads. With xc nil it is
// BatchNormTrainForwardAct.
func BatchNormTrainForwardCopy[T Float](p BatchNormParams, x, scale, bias, y, saveMean, saveInvStd, runningMean, runningVar []T, act Activation, xc []T) {
	c := compactView(xc, p.XLen())
	if xc != nil && c == nil {
		panic("kernels: BatchNormTrainForward: xc is not the compact copy of x (float32, BF16Len(p.XLen()) slots)")
	}
	batchNormTrainForward(p, x, scale, bias, y, saveMean, saveInvStd, runningMean, runningVar, act, c)
}

func batchNormTrainForward[T Float](p BatchNormParams, x, scale, bias, y, saveMean, saveInvStd, runningMean, runningVar []T, act Activation, xc []uint16) {
	const name = "BatchNormTrainForward"
	need(name, "x", x, p.XLen())
	need(name, "y", y, p.XLen())
	need(name, "scale", scale, p.C)
	need(name, "bias", bias, p.C)
	for _, s := range [][]T{saveMean, saveInvStd, runningMean, runningVar} {
		if s != nil {
			need(name, "saved or running statistics", s, p.C)
		}
	}
	if (runningMean == nil) != (runningVar == nil) {
		panic("kernels: " + name + ": runningMean and runningVar must both be given or both be nil")
	}
	m := float64(p.N * p.HW)
	bnChannels(p, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			mean := channelSum(p, x, c) / m
			ss := channelSqDev(p, x, c, mean)
			v := ss / m
			inv := bnInvStd(v, p.Epsilon)
			a, b := bnAffine(act, scale[c], bias[c], mean, inv)
			for n := 0; xc != nil && n < p.N; n++ { // before y, which may be x
				o := (n*p.C + c) * p.HW
				toBF16Run(as32(x)[o:o+p.HW], xc[o:o+p.HW])
			}
			channelAffine(p, x, y, c, a, b)
			channelActivation(p, y, c, act)
			if saveMean != nil {
				saveMean[c] = T(mean)
			}
			if saveInvStd != nil {
				saveInvStd[c] = T(inv)
			}
			if runningMean != nil {
				unbiased := v
				if m > 1 {
					unbiased = ss / (m - 1)
				}
				runningMean[c] = T(float64(runningMean[c])*p.Momentum + mean*(1-p.Momentum))
				runningVar[c] = T(float64(runningVar[c])*p.Momentum + unbiased*(1-p.Momentum))
			}
		}
	})
}

// BatchNormTrainBackwardData computes dx, the input gradient of
// [BatchNormTrainForward] through the batch statistics:
//
//	dx = scale*invStd * (dy - mean(dy) - xhat*mean(dy*xhat)),  xhat = (x-mean_B)*invStd
//
// with the means taken over each channel. saveMean and saveInvStd are those
// of the forward pass. dx is overwritten.
func BatchNormTrainBackwardData[T Float](p BatchNormParams, x, scale, saveMean, saveInvStd, dy, dx []T) {
	BatchNormTrainBackward(p, x, scale, nil, saveMean, saveInvStd, Activation{}, nil, dy, dx, make([]float64, p.C), make([]float64, p.C))
}

// BatchNormTrainBackward is [BatchNormTrainBackwardSums] and then
// [BatchNormTrainBackwardDataSums] a channel at a time: the data gradient of a channel
// follows its sums while its x and dy are still in the cache, rather than after every
// channel's (one pass over memory instead of two on large maps). The same arithmetic,
// the same bits. With an activation fused after the normalization
// ([BatchNormTrainForwardAct]), y is its output and dy the gradient there, turned in
// place, a channel at a time, into the one at the normalization's output (as
// BatchNormActivationMask, which reads bias for a SiLU, and a Relu's y from its compact
// copy); y is unused without one or with a SiLU, bias but with a SiLU.
func BatchNormTrainBackward[T Float](p BatchNormParams, x, scale, bias, saveMean, saveInvStd []T, act Activation, y, dy, dx []T, sumDy, sumDyXhat []float64) {
	const name = "BatchNormTrainBackward"
	needBackward(name, p, x, scale, saveMean, saveInvStd, dy, dx, sumDy, sumDyXhat)
	switch act.Kind {
	case NoActivation:
	case SiLUActivation:
		need(name, "bias", bias, p.C)
	default:
		needValues(name, "y", y, p.XLen())
	}
	yc, xc := compactView(y, p.XLen()), compactView(x, p.XLen())
	bnChannels(p, func(lo, hi int) {
		pre, xbuf := maskScratch[T](p, act, yc), channelScratch[T](p, xc)
		defer putBuf(pre)
		defer putBuf(xbuf)
		for c := lo; c < hi; c++ {
			xv := channelOf(p, x, xc, c, xbuf)
			if act.Kind != NoActivation {
				channelActivationMask(p, act, xv, scale, bias, saveMean, saveInvStd, y, yc, dy, c, pre)
			}
			channelSums(p, xv, dy, saveMean, saveInvStd, sumDy, sumDyXhat, c)
			bnBackwardChannel(p, xv, scale, saveMean, saveInvStd, sumDy, sumDyXhat, dy, dx, c)
		}
	})
}

// needBackward checks the lengths of a data gradient's arguments (dx and scale not
// checked when nil).
func needBackward[T Float](name string, p BatchNormParams, x, scale, saveMean, saveInvStd, dy, dx []T, sumDy, sumDyXhat []float64) {
	needValues(name, "x", x, p.XLen())
	need(name, "dy", dy, p.XLen())
	if dx != nil {
		need(name, "dx", dx, p.XLen())
	}
	if scale != nil {
		need(name, "scale", scale, p.C)
	}
	need(name, "saveMean", saveMean, p.C)
	need(name, "saveInvStd", saveInvStd, p.C)
	need(name, "sumDy", sumDy, p.C)
	need(name, "sumDyXhat", sumDyXhat, p.C)
}

// channelSums sets sumDy[c] and sumDyXhat[c] (BatchNormTrainBackwardSums) of channel c.
func channelSums[T Float](p BatchNormParams, x channelValues[T], dy, saveMean, saveInvStd []T, sumDy, sumDyXhat []float64, c int) {
	s, d := channelSumDot(p, x, dy, c, x.centre(saveMean[c]))
	sumDy[c], sumDyXhat[c] = s, d*float64(saveInvStd[c])
}

// BatchNormTrainBackwardSums computes the two sums over each channel that the three
// gradients of [BatchNormTrainForward] share, in one pass over x and dy: sumDy[c] = Σ dy
// (the bias gradient) and sumDyXhat[c] = Σ dy·xhat, xhat = (x - saveMean)·saveInvStd
// (the scale gradient), in float64.
func BatchNormTrainBackwardSums[T Float](p BatchNormParams, x, saveMean, saveInvStd, dy []T, sumDy, sumDyXhat []float64) {
	needBackward("BatchNormTrainBackwardSums", p, x, nil, saveMean, saveInvStd, dy, nil, sumDy, sumDyXhat)
	xc := compactView(x, p.XLen())
	bnChannels(p, func(lo, hi int) {
		xbuf := channelScratch[T](p, xc)
		defer putBuf(xbuf)
		for c := lo; c < hi; c++ {
			channelSums(p, channelOf(p, x, xc, c, xbuf), dy, saveMean, saveInvStd, sumDy, sumDyXhat, c)
		}
	})
}

// BatchNormTrainBackwardDataSums is [BatchNormTrainBackwardData] given the sums of
// [BatchNormTrainBackwardSums].
func BatchNormTrainBackwardDataSums[T Float](p BatchNormParams, x, scale, saveMean, saveInvStd []T, sumDy, sumDyXhat []float64, dy, dx []T) {
	needBackward("BatchNormTrainBackwardData", p, x, scale, saveMean, saveInvStd, dy, dx, sumDy, sumDyXhat)
	xc := compactView(x, p.XLen())
	bnChannels(p, func(lo, hi int) {
		xbuf := channelScratch[T](p, xc)
		defer putBuf(xbuf)
		for c := lo; c < hi; c++ {
			bnBackwardChannel(p, channelOf(p, x, xc, c, xbuf), scale, saveMean, saveInvStd, sumDy, sumDyXhat, dy, dx, c)
		}
	})
}

// bnBackwardChannel writes the data gradient of channel c given its sums.
func bnBackwardChannel[T Float](p BatchNormParams, x channelValues[T], scale, saveMean, saveInvStd []T, sumDy, sumDyXhat []float64, dy, dx []T, c int) {
	m := float64(p.N * p.HW)
	l := normLoopsFor[T]()
	h := l.vecHead(p.HW)
	mean, inv := x.centre(saveMean[c]), float64(saveInvStd[c])
	meanDy := sumDy[c] / m
	meanDyXhat := sumDyXhat[c] / m
	k := float64(scale[c]) * inv
	// dx = k*dy - k*meanDy - k*inv*meanDyXhat*(x - mean)
	a := T(k)
	b := T(k * inv * meanDyXhat)
	d := T(k*meanDy - k*inv*meanDyXhat*mean)
	for n := 0; n < p.N; n++ {
		o := (n*p.C + c) * p.HW
		xn := x.plane(n, p.HW)
		if h > 0 {
			l.bnBack(h, float32(a), float32(b), float32(d), &as32(xn)[0], &as32(dy)[o], &as32(dx)[o])
		}
		xs, gs, ds := xn[h:], dy[o+h:o+p.HW], dx[o+h:o+p.HW]
		for i, g := range gs {
			ds[i] = a*g - b*xs[i] - d
		}
	}
}

// BatchNormTrainBackwardScale computes dscale[c], the sum over channel c of
// dy*xhat with xhat = (x - saveMean)*saveInvStd: the scale gradient of
// [BatchNormTrainForward]. dscale is overwritten.
func BatchNormTrainBackwardScale[T Float](p BatchNormParams, x, saveMean, saveInvStd, dy, dscale []T) {
	need("BatchNormTrainBackwardScale", "dscale", dscale, p.C)
	sumDy, sumDyXhat := make([]float64, p.C), make([]float64, p.C)
	BatchNormTrainBackwardSums(p, x, saveMean, saveInvStd, dy, sumDy, sumDyXhat)
	for c, v := range sumDyXhat {
		dscale[c] = T(v)
	}
}
