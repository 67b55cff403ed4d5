package kernels

// Grouped convolutions (the ONNX group attribute): the C input channels
// and M output channels are cut into Group groups, and each group of
// outputs sees only its own inputs. A depthwise convolution (one input
// channel per group, MobileNet's and EfficientNet's) runs on padded
// planes, a vector loop per filter tap (conv_depthwise.go), and so does the
// forward pass of groups of few input channels (RegNet's, ResNeXt's: byTaps);
// the rest, and their gradients, run as one ordinary convolution per image
// and group, on the paths of Conv2DForward and its backward functions.

// groupParams returns the ordinary convolution of one group of one image.
func (p Conv2DParams) groupParams() Conv2DParams {
	q := p
	q.N, q.C, q.M, q.Group = 1, p.C/p.Group, p.M/p.Group, 1
	return q
}

// Depthwise reports whether p has one input channel per group.
func (p Conv2DParams) Depthwise() bool { return p.Group > 1 && p.C == p.Group }

// groupSlices calls fn for each image n and group g with the group's
// input, weight and output offsets.
func (p Conv2DParams) forGroups(fn func(n, g, xo, wo, yo, bo int)) {
	q := p.groupParams()
	for n := 0; n < p.N; n++ {
		for g := 0; g < p.Group; g++ {
			fn(n, g, n*p.C*p.H*p.W+g*q.C*p.H*p.W, g*q.WLen(), n*p.M*p.OutH*p.OutW+g*q.M*p.OutH*p.OutW, g*q.M)
		}
	}
}

func conv2DGroupedForward[T Float](p Conv2DParams, x, w, bias, y []T, act Activation) {
	if p.byTaps() {
		depthwiseForward(p, x, w, bias, y, act)
		return
	}
	q := p.groupParams()
	p.forGroups(func(n, g, xo, wo, yo, bo int) {
		var b []T
		if bias != nil {
			b = bias[bo : bo+q.M]
		}
		xs, ws, ys := x[xo:xo+q.XLen()], w[wo:wo+q.WLen()], y[yo:yo+q.YLen()]
		Conv2DForwardAct(q, xs, ws, b, ys, act)
	})
}

func conv2DGroupedBackwardData[T Float](p Conv2DParams, w, dy, dx []T) {
	if p.Depthwise() {
		depthwiseBackwardData(p, w, dy, dx)
		return
	}
	q := p.groupParams()
	p.forGroups(func(n, g, xo, wo, yo, _ int) {
		Conv2DBackwardData(q, w[wo:wo+q.WLen()], dy[yo:yo+q.YLen()], dx[xo:xo+q.XLen()])
	})
}

func conv2DGroupedBackwardWeight[T Float](p Conv2DParams, x, dy, dw []T) {
	if p.Depthwise() {
		depthwiseBackwardWeight(p, x, dy, dw)
		return
	}
	q := p.groupParams()
	tmp := getBuf[T](q.WLen())
	defer putBuf(tmp)
	p.forGroups(func(n, g, xo, wo, yo, _ int) {
		dst := dw[wo : wo+q.WLen()]
		if n == 0 {
			Conv2DBackwardWeight(q, x[xo:xo+q.XLen()], dy[yo:yo+q.YLen()], dst)
			return
		}
		Conv2DBackwardWeight(q, x[xo:xo+q.XLen()], dy[yo:yo+q.YLen()], tmp)
		addTo(dst, tmp)
	})
}

// axpyT sets y[i] += a*x[i], with the vector kernel for float32.
func axpyT[T Float](a T, x, y []T) {
	if is32[T]() {
		axpy32(float32(a), as32(x), as32(y))
		return
	}
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

// dotT returns Σ x[i]*y[i], with the vector kernel for float32.
func dotT[T Float](x, y []T) T {
	if is32[T]() {
		return T(dot32(as32(x), as32(y)))
	}
	y = y[:len(x)]
	var s T
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// affineT sets y[i] = a*x[i] + b, in the vector loop of the kernel in use for whole
// blocks of float32.
func affineT[T Float](a, b T, x, y []T) {
	y = y[:len(x)]
	l := normLoopsFor[T]()
	h := l.vecHead(len(x))
	if h > 0 {
		l.affine(h, float32(a), float32(b), &as32(x)[0], &as32(y)[0])
	}
	for i, v := range x[h:] {
		y[h+i] = a*v + b
	}
}
