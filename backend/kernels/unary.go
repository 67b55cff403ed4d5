package kernels

import "math"

// UnaryOp names an element-wise function of one input computed by [UnaryForward] and
// [UnaryBackward].
type UnaryOp int

// The element-wise functions, with the ONNX operator each one computes. Parameters come
// from [Unary]'s fields as noted.
const (
	Exp         UnaryOp = iota // e^x
	Log                        // ln x
	Sqrt                       // √x
	Neg                        // -x
	Abs                        // |x| (derivative sign(x), 0 at 0)
	Reciprocal                 // 1/x
	Erf                        // erf(x)
	Gelu                       // x·Φ(x), Φ the standard normal CDF (Gelu, approximate "none")
	GeluTanh                   // Gelu with approximate "tanh": 0.5x(1+tanh(√(2/π)(x+0.044715x³)))
	Elu                        // x > 0 ? x : Alpha(e^x-1)
	Selu                       // Gamma·(x > 0 ? x : Alpha(e^x-1))
	Softplus                   // ln(1+e^x)
	Softsign                   // x/(1+|x|)
	HardSigmoid                // max(0, min(1, Alpha·x+Beta))
	HardSwish                  // x·min(max(x+3, 0), 6)/6
	Clip                       // min(max(x, Lo), Hi)
	SiLU                       // x·σ(x), σ the logistic function (no ONNX op of its own: a Sigmoid and a Mul)
)

// Unary is an element-wise function and its parameters.
type Unary struct {
	Op UnaryOp
	// Alpha and Beta are Elu's and Selu's alpha, HardSigmoid's slope and offset; Gamma
	// is Selu's scale; Lo and Hi are Clip's bounds (±Inf when absent).
	Alpha, Beta, Gamma, Lo, Hi float64
}

var unaryNames = [...]string{"Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Erf", "Gelu", "GeluTanh",
	"Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Clip", "SiLU"}

func (op UnaryOp) String() string {
	if int(op) >= 0 && int(op) < len(unaryNames) {
		return unaryNames[op]
	}
	return "UnaryOp(" + itoa(int(op)) + ")"
}

// unaryCost is the work of one element in multiply-add units, for the split across
// goroutines: the transcendental functions cost tens of them.
func unaryCost(op UnaryOp) int {
	switch op {
	case Neg, Abs, Clip, HardSigmoid, HardSwish, Softsign, Reciprocal:
		return 1
	}
	return 16
}

const (
	sqrt2      = math.Sqrt2
	invSqrt2Pi = 0.3989422804014327 // 1/√(2π)
	geluTanhK  = 0.7978845608028654 // √(2/π)
	twoSqrtPi  = 1.1283791670955126 // 2/√π
)

// UnaryForward sets y = f(x) element-wise; y may alias x. The functions follow the ONNX
// operators (and PyTorch, which agrees with them): Softplus is computed stably as
// max(x, 0) + ln(1+e^-|x|).
func UnaryForward[T Float](u Unary, x, y []T) {
	need2("UnaryForward", x, y)
	y = y[:len(x)]
	parallelFor(len(x), workers(len(x), unaryCost(u.Op)), func(_, lo, hi int) {
		unaryForwardSerial(u, x[lo:hi], y[lo:hi])
	})
}

// unaryForwardSerial is UnaryForward on the calling goroutine: the vector loops of the
// kernel in use where it has them, else unaryForward.
func unaryForwardSerial[T Float](u Unary, x, y []T) {
	if u.Op == SiLU && is32[T]() && siluForward32(as32(x), as32(y)) {
		return
	}
	if u.Op == Gelu && is32[T]() {
		geluForward32(as32(x), as32(y))
		return
	}
	lo, l := 0, normLoopsFor[T]()
	if u.Op == HardSwish && l != nil {
		hardSwish32(l, as32(x), as32(y))
		return
	}
	if h := l.vecHead(len(x)); u.Op == Clip && h > 0 {
		// The vector loop keeps a NaN; a -0 stays -0 where max(-0, 0) in Go is +0.
		l.clip(h, float32(u.Lo), float32(u.Hi), &as32(x)[0], &as32(y)[0])
		lo = h
	}
	unaryForward(u, x[lo:], y[lo:])
}

// hardSwish32 computes y = x·relu6(x+3)/6 in l's vector loop (PyTorch's form: x+3 exact
// near -3, where x/6 + 1/2 cancels; the products in that order, by 1/6 rather than a
// division). y may alias x. MobileNet-V3's HardSwish took a third of its forward pass
// in the Go loop, a division and two branches per value, and then 0.5 of 2.8 ms in
// vector loops over chunks with the products in Go.
func hardSwish32(l *normLoops, x, y []float32) {
	if len(x) > 0 {
		l.hardSwish(len(x), &x[0], &y[0])
	}
}

// siluForward32 computes y = x·σ(x) in the vector loop of the kernel in use, and
// reports whether it has one. y may alias x.
func siluForward32(x, y []float32) bool {
	kern := packedKernel[float32]()
	if kern == nil || kern.silu == nil {
		return false
	}
	if len(x) > 0 {
		kern.silu(len(x), &x[0], &y[0])
	}
	return true
}

// siluBackward32 computes dx = dy·σ(x)·(1 + x·(1-σ(x))) in the vector loop of the
// kernel in use, and reports whether it has one. dx may alias dy.
func siluBackward32(x, dy, dx []float32) bool {
	kern := packedKernel[float32]()
	if kern == nil || kern.siluBack == nil {
		return false
	}
	if len(x) > 0 {
		kern.siluBack(len(x), &x[0], &dy[0], &dx[0])
	}
	return true
}

func unaryForward[T Float](u Unary, x, y []T) {
	switch u.Op {
	case Exp:
		for i, v := range x {
			y[i] = T(math.Exp(float64(v)))
		}
	case Log:
		for i, v := range x {
			y[i] = T(math.Log(float64(v)))
		}
	case Sqrt:
		for i, v := range x {
			y[i] = T(math.Sqrt(float64(v)))
		}
	case Neg:
		for i, v := range x {
			y[i] = -v
		}
	case Abs:
		for i, v := range x {
			y[i] = T(math.Abs(float64(v)))
		}
	case Reciprocal:
		for i, v := range x {
			y[i] = 1 / v
		}
	case Erf:
		for i, v := range x {
			y[i] = T(math.Erf(float64(v)))
		}
	case Gelu:
		for i, v := range x {
			f := float64(v)
			y[i] = T(0.5 * f * (1 + math.Erf(f/sqrt2)))
		}
	case GeluTanh:
		for i, v := range x {
			f := float64(v)
			y[i] = T(0.5 * f * (1 + math.Tanh(geluTanhK*(f+0.044715*f*f*f))))
		}
	case Elu, Selu:
		gamma := 1.0
		if u.Op == Selu {
			gamma = u.Gamma
		}
		for i, v := range x {
			f := float64(v)
			if f <= 0 {
				f = u.Alpha * math.Expm1(f)
			}
			y[i] = T(gamma * f)
		}
	case Softplus:
		for i, v := range x {
			f := float64(v)
			y[i] = T(math.Max(f, 0) + math.Log1p(math.Exp(-math.Abs(f))))
		}
	case Softsign:
		for i, v := range x {
			y[i] = v / (1 + T(math.Abs(float64(v))))
		}
	case HardSigmoid:
		a, b := T(u.Alpha), T(u.Beta)
		for i, v := range x {
			y[i] = min(max(a*v+b, 0), 1)
		}
	case HardSwish:
		for i, v := range x {
			y[i] = v * min(max(v+3, 0), 6) / 6
		}
	case SiLU:
		for i, v := range x {
			y[i] = T(float64(v) * logistic(float64(v)))
		}
	case Clip:
		lo, hi := T(u.Lo), T(u.Hi)
		for i, v := range x {
			y[i] = min(max(v, lo), hi)
		}
	default:
		panic("kernels: UnaryForward: unknown op " + u.Op.String())
	}
}

// UnaryBackward sets dx = dy · f'(x) element-wise, given the forward pass's input x and
// output y (dx may alias dy). Only the one of x and y that [UnaryBackwardReads] names is
// read; the other may be nil. At kinks it follows PyTorch: Abs has derivative 0 at 0;
// Clip (PyTorch's hardtanh, which ReLU6 is) and HardSigmoid pass the gradient strictly
// inside their linear range (where y is strictly inside its range: the output serves);
// HardSwish's derivative is x/3+1/2 on [-3, 3].
func UnaryBackward[T Float](u Unary, x, y, dy, dx []T) {
	n := len(dy)
	readsX, readsY := UnaryBackwardReads(u.Op)
	if readsX {
		need("UnaryBackward", "x", x, n)
	} else {
		x = nil
	}
	if readsY {
		need("UnaryBackward", "y", y, n)
	} else {
		y = nil
	}
	need("UnaryBackward", "dx", dx, n)
	part := func(s []T, lo, hi int) []T {
		if s == nil {
			return nil
		}
		return s[lo:hi]
	}
	parallelFor(n, workers(n, unaryCost(u.Op)), func(_, lo, hi int) {
		unaryBackwardSerial(u, part(x, lo, hi), part(y, lo, hi), dy[lo:hi], dx[lo:hi])
	})
}

// unaryBackwardSerial is UnaryBackward on the calling goroutine (x or y nil where the
// derivative does not read it).
func unaryBackwardSerial[T Float](u Unary, x, y, dy, dx []T) {
	if u.Op == SiLU && is32[T]() && siluBackward32(as32(x), as32(dy), as32(dx)) {
		return
	}
	if u.Op == Gelu && is32[T]() {
		geluBackward32(as32(x), as32(dy), as32(dx))
		return
	}
	lo, l := 0, normLoopsFor[T]()
	if h := l.vecHead(len(dy)); u.Op == Clip && h > 0 {
		l.clipBack(h, float32(u.Lo), float32(u.Hi), &as32(y)[0], &as32(dy)[0], &as32(dx)[0])
		lo = h
	}
	if x != nil {
		x = x[lo:]
	}
	if y != nil {
		y = y[lo:]
	}
	unaryBackward(u, x, y, dy[lo:], dx[lo:])
}

// UnaryBackwardReads reports which of the forward pass's values [UnaryBackward] reads for
// op: its input x, its output y (neither for Neg).
func UnaryBackwardReads(op UnaryOp) (x, y bool) {
	switch op {
	case Exp, Sqrt, Reciprocal, HardSigmoid, Clip:
		return false, true
	case Neg:
		return false, false
	}
	return true, false
}

func unaryBackward[T Float](u Unary, x, y, dy, dx []T) {
	if is32[T]() && unaryMasked32(u, as32(x), as32(y), as32(dy), as32(dx)) {
		return
	}
	switch u.Op {
	case Exp:
		for i, g := range dy {
			dx[i] = g * y[i]
		}
	case Log:
		for i, g := range dy {
			dx[i] = g / x[i]
		}
	case Sqrt:
		for i, g := range dy {
			dx[i] = g / (2 * y[i])
		}
	case Neg:
		for i, g := range dy {
			dx[i] = -g
		}
	case Abs:
		for i, g := range dy {
			switch v := x[i]; {
			case v > 0:
				dx[i] = g
			case v < 0:
				dx[i] = -g
			default:
				dx[i] = 0
			}
		}
	case Reciprocal:
		for i, g := range dy {
			dx[i] = -g * y[i] * y[i]
		}
	case Erf:
		for i, g := range dy {
			f := float64(x[i])
			dx[i] = T(float64(g) * twoSqrtPi * math.Exp(-f*f))
		}
	case Gelu:
		for i, g := range dy {
			f := float64(x[i])
			cdf := 0.5 * (1 + math.Erf(f/sqrt2))
			pdf := invSqrt2Pi * math.Exp(-0.5*f*f)
			dx[i] = T(float64(g) * (cdf + f*pdf))
		}
	case GeluTanh:
		for i, g := range dy {
			f := float64(x[i])
			t := math.Tanh(geluTanhK * (f + 0.044715*f*f*f))
			d := 0.5*(1+t) + 0.5*f*(1-t*t)*geluTanhK*(1+3*0.044715*f*f)
			dx[i] = T(float64(g) * d)
		}
	case Elu, Selu:
		gamma := 1.0
		if u.Op == Selu {
			gamma = u.Gamma
		}
		for i, g := range dy {
			f := float64(x[i])
			d := gamma
			if f <= 0 {
				d = gamma * u.Alpha * math.Exp(f)
			}
			dx[i] = T(float64(g) * d)
		}
	case Softplus:
		for i, g := range dy {
			f := float64(x[i])
			var s float64 // the logistic function, computed stably
			if f >= 0 {
				s = 1 / (1 + math.Exp(-f))
			} else {
				e := math.Exp(f)
				s = e / (1 + e)
			}
			dx[i] = T(float64(g) * s)
		}
	case Softsign:
		for i, g := range dy {
			d := 1 + T(math.Abs(float64(x[i])))
			dx[i] = g / (d * d)
		}
	case HardSigmoid:
		a := T(u.Alpha)
		for i, g := range dy {
			if v := y[i]; v > 0 && v < 1 {
				dx[i] = g * a
			} else {
				dx[i] = 0
			}
		}
	case HardSwish:
		for i, g := range dy {
			switch v := x[i]; {
			case v < -3:
				dx[i] = 0
			case v <= 3:
				dx[i] = g * (v/3 + 0.5)
			default:
				dx[i] = g
			}
		}
	case SiLU:
		for i, g := range dy {
			f := float64(x[i])
			s := logistic(f)
			dx[i] = T(float64(g) * s * (1 + f*(1-s)))
		}
	case Clip:
		lo, hi := T(u.Lo), T(u.Hi)
		for i, g := range dy {
			if v := y[i]; v > lo && v < hi {
				dx[i] = g
			} else {
				dx[i] = 0
			}
		}
	default:
		panic("kernels: UnaryBackward: unknown op " + u.Op.String())
	}
}

// erf32 is erf(x) in float32 arithmetic: Eigen's rational approximation (the one
// TensorFlow and XLA use), x clamped to [-4, 4] (erf(4) rounds to 1 in float32), within
// 4.2e-7 absolute of erf (7 float32 ulp near ±1; measured over [-16, 16] in steps of
// 2^-16).
func erf32(x float32) float32 {
	// Clamped with comparisons: the built-in min and max, which order -0 before +0,
	// cost a third of the function (the same values, NaN and -0 included).
	if x > 4 {
		x = 4
	} else if x < -4 {
		x = -4
	}
	x2 := x * x
	p := float32(-2.72614225801306e-10)
	p = p*x2 + 2.77068142495902e-08
	p = p*x2 - 2.10102402082508e-06
	p = p*x2 - 5.69250639462346e-05
	p = p*x2 - 7.34990630326855e-04
	p = p*x2 - 2.95459980854025e-03
	p = p*x2 - 1.60960333262415e-02
	q := float32(-1.45660718464996e-05)
	q = q*x2 - 2.13374055278905e-04
	q = q*x2 - 1.68282697438203e-03
	q = q*x2 - 7.37332916720468e-03
	q = q*x2 - 1.42647390514189e-02
	return x * p / q
}

// exp32 is e^x in float32 arithmetic for x <= 0 (Cephes's expf: x = n·ln 2 + r, a
// degree-5 polynomial in r, times 2^n), within 2 ulp; 0 below -87.
func exp32(x float32) float32 {
	if x < -87 {
		return 0
	}
	n := float32(math.Floor(float64(x*1.44269504088896341) + 0.5))
	r := x - n*0.693359375
	r -= n * -2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// geluForward32 and geluBackward32 are Gelu (x·Φ(x), Φ the normal CDF) and its
// gradient dy·(Φ(x) + x·φ(x)) in float32 arithmetic (erf32, exp32): the float64
// math.Erf per element was most of a ConvNeXt or ViT training step. They run in the
// vector loops of the kernel in use where it has them (the same approximations, with
// fused multiply-adds), else in Go. dx may be dy, y x.
func geluForward32(x, y []float32) {
	y = y[:len(x)]
	if kern := packedKernel[float32](); kern != nil && kern.gelu != nil {
		if len(x) > 0 {
			kern.gelu(len(x), &x[0], &y[0])
		}
		return
	}
	geluForwardGo(x, y)
}

func geluForwardGo(x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = 0.5 * v * (1 + erf32(v*0.70710678118654752))
	}
}

func geluBackward32(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	if kern := packedKernel[float32](); kern != nil && kern.geluBack != nil {
		if len(x) > 0 {
			kern.geluBack(len(x), &x[0], &dy[0], &dx[0])
		}
		return
	}
	geluBackwardGo(x, dy, dx)
}

func geluBackwardGo(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	for i, v := range x {
		cdf := 0.5 * (1 + erf32(v*0.70710678118654752))
		pdf := exp32(-0.5*v*v) * 0.3989422804014327
		if v != v {
			cdf, pdf = v, v
		}
		dx[i] = dy[i] * (cdf + v*pdf)
	}
}

// logistic is σ(f) = 1/(1+e^-f), computed without overflow.
func logistic(f float64) float64 {
	if f >= 0 {
		return 1 / (1 + math.Exp(-f))
	}
	e := math.Exp(f)
	return e / (1 + e)
}

// unaryMasked32 is the float32 backward pass of the piecewise-linear functions (Clip,
// HardSigmoid, HardSwish) without branches, and reports whether u is one of them: which
// piece x is on is random in real activations, so a branch on it mispredicts often (a
// ReLU6 backward pass was a fifth of MobileNet's training step). The comparisons become
// sign masks of differences, which have the comparisons' exact meaning in IEEE arithmetic
// (a-b > 0 exactly when a > b, NaN in neither); the results are those of the loops above.
// Clip and HardSigmoid read the output y, HardSwish the input x.
func unaryMasked32(u Unary, x, y, dy, dx []float32) bool {
	dx = dx[:len(dy)]
	switch u.Op {
	case Clip:
		lo, hi := float32(u.Lo), float32(u.Hi)
		for i, v := range y[:len(dy)] {
			m := positiveMask(v-lo) & positiveMask(hi-v)
			dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & m)
		}
	case HardSigmoid:
		a := float32(u.Alpha)
		for i, v := range y[:len(dy)] {
			m := positiveMask(v) & positiveMask(1-v)
			dx[i] = math.Float32frombits(math.Float32bits(dy[i]*a) & m)
		}
	case HardSwish:
		for i, v := range x[:len(dy)] {
			g := dy[i]
			inside := nonNegativeMask(v+3) & nonNegativeMask(3-v)
			above := ^(positiveMask(-3-v) | inside) // v > 3, and NaN as PyTorch has it
			dx[i] = math.Float32frombits(math.Float32bits(g*(v/3+0.5))&inside | math.Float32bits(g)&above)
		}
	default:
		return false
	}
	return true
}

// positiveMask is all ones where v > 0 (+Inf included, NaN not), else 0: an
// int32 view t of v is positive exactly for v > 0 and for positive NaNs
// (t > 0x7f800000), which the second mask removes.
func positiveMask(v float32) uint32 {
	t := int32(math.Float32bits(v))
	m := ((-t) &^ t) >> 31
	m &^= (0x7f800000 - t) >> 31
	return uint32(m)
}

// nonNegativeMask is all ones where v >= 0 and v is not -0 or NaN, else 0.
func nonNegativeMask(v float32) uint32 {
	t := int32(math.Float32bits(v))
	m := ^(t >> 31)
	m &^= (0x7f800000 - t) >> 31
	return uint32(m)
}
