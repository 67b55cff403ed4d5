package kernels

// Grouped convolutions (the ONNX group attribute): the C input channels
// and M output channels are cut into Group groups, and each group of
// outputs sees only its own inputs. A depthwise convolution (one input
// channel per group, MobileNet's and EfficientNet's) runs on direct loops
// over each plane; wider groups (ResNeXt, RegNet) run as one ordinary
// convolution per image and group, on the paths of Conv2DForward and its
// backward functions.

// groupParams returns the ordinary convolution of one group of one image.
func (p Conv2DParams) groupParams() Conv2DParams {
	q := p
	q.N, q.C, q.M, q.Group = 1, p.C/p.Group, p.M/p.Group, 1
	return q
}

// depthwise reports whether p has one input channel per group.
func (p Conv2DParams) depthwise() bool { return p.Group > 1 && p.C == p.Group }

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

func conv2DGroupedForward[T Float](p Conv2DParams, x, w, bias, y []T, relu bool) {
	if p.depthwise() {
		depthwiseForward(p, x, w, bias, y)
		if relu {
			ReluForward(y[:p.YLen()], y[:p.YLen()])
		}
		return
	}
	q := p.groupParams()
	p.forGroups(func(n, g, xo, wo, yo, bo int) {
		var b []T
		if bias != nil {
			b = bias[bo : bo+q.M]
		}
		xs, ws, ys := x[xo:xo+q.XLen()], w[wo:wo+q.WLen()], y[yo:yo+q.YLen()]
		if relu {
			Conv2DForwardRelu(q, xs, ws, b, ys)
		} else {
			Conv2DForward(q, xs, ws, b, ys)
		}
	})
}

func conv2DGroupedBackwardData[T Float](p Conv2DParams, w, dy, dx []T) {
	if p.depthwise() {
		depthwiseBackwardData(p, w, dy, dx)
		return
	}
	q := p.groupParams()
	p.forGroups(func(n, g, xo, wo, yo, _ int) {
		Conv2DBackwardData(q, w[wo:wo+q.WLen()], dy[yo:yo+q.YLen()], dx[xo:xo+q.XLen()])
	})
}

func conv2DGroupedBackwardWeight[T Float](p Conv2DParams, x, dy, dw []T) {
	if p.depthwise() {
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

// depthwiseForward computes a depthwise convolution plane by plane: output
// channel m reads input channel m/(M/C) through its KH×KW filter.
func depthwiseForward[T Float](p Conv2DParams, x, w, bias, y []T) {
	mult := p.M / p.C
	HW, OHW, KHW := p.H*p.W, p.OutH*p.OutW, p.KH*p.KW
	planes := p.N * p.M
	parallelFor(planes, workers(planes, OHW*KHW), func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			n, m := pl/p.M, pl%p.M
			xc := x[(n*p.C+m/mult)*HW : (n*p.C+m/mult+1)*HW]
			yp := y[pl*OHW : (pl+1)*OHW]
			wm := w[m*KHW : (m+1)*KHW]
			var b T
			if bias != nil {
				b = bias[m]
			}
			for i := range yp {
				yp[i] = b
			}
			for kh := 0; kh < p.KH; kh++ {
				for kw := 0; kw < p.KW; kw++ {
					wv := wm[kh*p.KW+kw]
					off := kw*p.DilW - p.PadLeft
					lo, hi := colRange(off, p.StrideW, p.W, p.OutW)
					for oh := 0; oh < p.OutH; oh++ {
						ih := oh*p.StrideH - p.PadTop + kh*p.DilH
						if ih < 0 || ih >= p.H || lo >= hi {
							continue
						}
						row := xc[ih*p.W : (ih+1)*p.W]
						dst := yp[oh*p.OutW : (oh+1)*p.OutW]
						if p.StrideW == 1 {
							axpyT(wv, row[lo+off:hi+off], dst[lo:hi])
							continue
						}
						for ow := lo; ow < hi; ow++ {
							dst[ow] += wv * row[ow*p.StrideW+off]
						}
					}
				}
			}
		}
	})
}

// depthwiseBackwardData computes dx plane by plane: input channel c gathers
// the gradients of its mult output channels through their filters.
func depthwiseBackwardData[T Float](p Conv2DParams, w, dy, dx []T) {
	mult := p.M / p.C
	HW, OHW, KHW := p.H*p.W, p.OutH*p.OutW, p.KH*p.KW
	planes := p.N * p.C
	parallelFor(planes, workers(planes, mult*OHW*KHW), func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			n, c := pl/p.C, pl%p.C
			dxc := dx[pl*HW : (pl+1)*HW]
			clear(dxc)
			for j := 0; j < mult; j++ {
				m := c*mult + j
				dyp := dy[(n*p.M+m)*OHW : (n*p.M+m+1)*OHW]
				wm := w[m*KHW : (m+1)*KHW]
				for kh := 0; kh < p.KH; kh++ {
					for kw := 0; kw < p.KW; kw++ {
						wv := wm[kh*p.KW+kw]
						off := kw*p.DilW - p.PadLeft
						lo, hi := colRange(off, p.StrideW, p.W, p.OutW)
						for oh := 0; oh < p.OutH; oh++ {
							ih := oh*p.StrideH - p.PadTop + kh*p.DilH
							if ih < 0 || ih >= p.H || lo >= hi {
								continue
							}
							row := dxc[ih*p.W : (ih+1)*p.W]
							src := dyp[oh*p.OutW : (oh+1)*p.OutW]
							if p.StrideW == 1 {
								axpyT(wv, src[lo:hi], row[lo+off:hi+off])
								continue
							}
							for ow := lo; ow < hi; ow++ {
								row[ow*p.StrideW+off] += wv * src[ow]
							}
						}
					}
				}
			}
		}
	})
}

// depthwiseBackwardWeight computes dw filter by filter, summing over the
// batch in order (deterministically).
func depthwiseBackwardWeight[T Float](p Conv2DParams, x, dy, dw []T) {
	mult := p.M / p.C
	HW, OHW, KHW := p.H*p.W, p.OutH*p.OutW, p.KH*p.KW
	parallelFor(p.M, workers(p.M, p.N*OHW*KHW), func(_, lo, hi int) {
		for m := lo; m < hi; m++ {
			c := m / mult
			for kh := 0; kh < p.KH; kh++ {
				for kw := 0; kw < p.KW; kw++ {
					off := kw*p.DilW - p.PadLeft
					lo, hi := colRange(off, p.StrideW, p.W, p.OutW)
					var s float64
					for n := 0; n < p.N && lo < hi; n++ {
						xc := x[(n*p.C+c)*HW : (n*p.C+c+1)*HW]
						dyp := dy[(n*p.M+m)*OHW : (n*p.M+m+1)*OHW]
						for oh := 0; oh < p.OutH; oh++ {
							ih := oh*p.StrideH - p.PadTop + kh*p.DilH
							if ih < 0 || ih >= p.H {
								continue
							}
							row := xc[ih*p.W : (ih+1)*p.W]
							g := dyp[oh*p.OutW : (oh+1)*p.OutW]
							if p.StrideW == 1 {
								s += float64(dotT(g[lo:hi], row[lo+off:hi+off]))
								continue
							}
							var acc T
							for ow := lo; ow < hi; ow++ {
								acc += g[ow] * row[ow*p.StrideW+off]
							}
							s += float64(acc)
						}
					}
					dw[m*KHW+kh*p.KW+kw] = T(s)
				}
			}
		}
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
