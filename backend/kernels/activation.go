package kernels

import "math"

// Element-wise activations. Forward functions allow y to alias x and
// backward functions allow dx to alias dy. Backward functions take whichever
// of x and y determines the derivative: Relu and LeakyRelu take x (Relu's y
// works as well, since y > 0 exactly where x > 0), Sigmoid and Tanh take y.

func need2[T any](name string, a, b []T) {
	if len(b) < len(a) {
		panic("kernels: " + name + ": output has " + itoa(len(b)) + " elements, input " + itoa(len(a)))
	}
}

// ReluForward sets y = max(x, 0) (NaN stays NaN, as in PyTorch). It is
// branch-free (a branch on the sign mispredicts half the time on real
// activations, which made it six times slower), in the vector loop of the
// kernel in use (normLoops) where it has one, and splits large tensors
// across goroutines.
func ReluForward[T Float](x, y []T) {
	need2("ReluForward", x, y)
	y = y[:len(x)]
	parallelFor(len(x), workers(len(x), 1), func(_, lo, hi int) {
		reluForwardSerial(x[lo:hi], y[lo:hi])
	})
}

// reluForwardSerial is ReluForward on the calling goroutine.
func reluForwardSerial[T Float](x, y []T) {
	lo, l := 0, normLoopsFor[T]()
	if h := l.vecHead(len(x)); h > 0 {
		l.relu(h, &as32(x)[0], &as32(y)[0])
		lo = h
	}
	ys := y[lo:len(x)]
	for i, v := range x[lo:] {
		ys[i] = max(v, 0)
	}
}

// ReluBackward sets dx = dy where x > 0 and 0 elsewhere (the derivative at
// 0 is taken as 0, as in PyTorch, and so is the derivative at NaN). It is
// branch-free: the sign test becomes a bit mask. x may be the Relu's output given as
// its compact copy (ToBF16: IsCompact), read as [ReluBackwardCompact] reads it.
func ReluBackward[T Float](x, dy, dx []T) {
	if compactView(x, len(dy)) != nil {
		ReluBackwardCompact(as32(x), as32(dy), as32(dx))
		return
	}
	need2("ReluBackward", x, dy)
	need2("ReluBackward", x, dx)
	parallelFor(len(x), workers(len(x), 1), func(_, lo, hi int) {
		reluBackwardSerial(x[lo:hi], dy[lo:hi], dx[lo:hi])
	})
}

// reluBackwardSerial is ReluBackward on the calling goroutine.
func reluBackwardSerial[T Float](x, dy, dx []T) {
	l := normLoopsFor[T]()
	lo, hi := 0, len(x)
	if h := l.vecHead(hi); h > 0 {
		l.reluBack(h, &as32(x)[0], &as32(dy)[0], &as32(dx)[0])
		lo = h
	}
	if is32[T]() {
		reluMask32(as32(x[lo:hi]), as32(dy[lo:hi]), as32(dx[lo:hi]))
	} else {
		reluMask64(as64(x[lo:hi]), as64(dy[lo:hi]), as64(dx[lo:hi]))
	}
}

// reluMask32 sets dx[i] = dy[i] where x[i] > 0, else 0, without branches
// (positiveMask).
func reluMask32(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	for i, v := range x {
		dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & positiveMask(v))
	}
}

func reluMask64(x, dy, dx []float64) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	for i, v := range x {
		t := int64(math.Float64bits(v))
		m := ((-t) &^ t) >> 63
		m &^= (0x7ff0000000000000 - t) >> 63
		dx[i] = math.Float64frombits(math.Float64bits(dy[i]) & uint64(m))
	}
}

// LeakyReluForward sets y = x for x >= 0 and alpha*x otherwise (ONNX
// LeakyRelu; ONNX's default alpha is 0.01).
func LeakyReluForward[T Float](alpha T, x, y []T) {
	need2("LeakyReluForward", x, y)
	for i, v := range x {
		if v < 0 {
			y[i] = alpha * v
		} else {
			y[i] = v
		}
	}
}

// LeakyReluBackward sets dx = dy where x > 0 and alpha*dy elsewhere.
func LeakyReluBackward[T Float](alpha T, x, dy, dx []T) {
	need2("LeakyReluBackward", x, dy)
	need2("LeakyReluBackward", x, dx)
	for i, v := range x {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = alpha * dy[i]
		}
	}
}

// SigmoidForward sets y = 1/(1+exp(-x)), computed without overflow for
// large |x|, split across goroutines. On the AVX-512 and AVX2 kernels float32
// runs in vector assembly (Cephes's expf: within 2 ulp of the float64 result,
// 0 below x = -88.4, 1 above 87, NaN kept); elsewhere it goes through float64.
func SigmoidForward[T Float](x, y []T) {
	need2("SigmoidForward", x, y)
	y = y[:len(x)]
	kern := packedKernel[T]()
	parallelFor(len(x), workers(len(x), 16), func(_, lo, hi int) {
		if kern != nil && kern.sigmoid != nil && hi > lo {
			kern.sigmoid(hi-lo, &as32(x)[lo], &as32(y)[lo])
			return
		}
		for i, v := range x[lo:hi] {
			f := float64(v)
			if f >= 0 {
				y[lo+i] = T(1 / (1 + math.Exp(-f)))
			} else {
				e := math.Exp(f)
				y[lo+i] = T(e / (1 + e))
			}
		}
	})
}

// SigmoidBackward sets dx = dy*y*(1-y) from the sigmoid's output y.
func SigmoidBackward[T Float](y, dy, dx []T) {
	need2("SigmoidBackward", y, dy)
	need2("SigmoidBackward", y, dx)
	for i, v := range y {
		dx[i] = dy[i] * v * (1 - v)
	}
}

// TanhForward sets y = tanh(x).
func TanhForward[T Float](x, y []T) {
	need2("TanhForward", x, y)
	for i, v := range x {
		y[i] = T(math.Tanh(float64(v)))
	}
}

// TanhBackward sets dx = dy*(1-y²) from tanh's output y.
func TanhBackward[T Float](y, dy, dx []T) {
	need2("TanhBackward", y, dy)
	need2("TanhBackward", y, dx)
	for i, v := range y {
		dx[i] = dy[i] * (1 - v*v)
	}
}
