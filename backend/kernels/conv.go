package kernels

import "errors"

// Conv2DParams describes a 2-D convolution over NCHW input, with the ONNX
// Conv attributes spelled out. X is [N, C, H, W], the weight W is
// [M, C/Group, KH, KW], the optional bias is [M] and Y is [N, M, OutH, OutW].
//
// Zero strides and dilations mean 1 (so a literal only needs the fields that
// differ from the defaults); pads may be asymmetric. OutH and OutW must equal
// [ConvOutSize] of the other fields; [Conv2DParams.WithOutSize] fills them.
type Conv2DParams struct {
	N, C, H, W int // input batch, channels, height, width
	M          int // output channels (feature maps)
	KH, KW     int // kernel height and width

	StrideH, StrideW int
	DilH, DilW       int

	PadTop, PadLeft, PadBottom, PadRight int

	OutH, OutW int

	// Group is the ONNX group attribute; 0 and 1 both mean an ordinary
	// convolution. Grouped and depthwise convolutions are not implemented
	// yet and fail validation; the field exists so that adding them does
	// not change the struct.
	Group int
}

// ConvOutSize is the output length of a convolution (or floor-mode pooling)
// along one axis: floor((in + padBegin + padEnd - dil*(k-1) - 1) / stride) + 1.
// A zero stride or dilation means 1.
func ConvOutSize(in, k, stride, dil, padBegin, padEnd int) int {
	stride, dil = one(stride), one(dil)
	span := in + padBegin + padEnd - dil*(k-1) - 1
	if span < 0 {
		return 0
	}
	return span/stride + 1
}

func one(v int) int {
	if v == 0 {
		return 1
	}
	return v
}

func (p Conv2DParams) norm() Conv2DParams {
	p.StrideH, p.StrideW = one(p.StrideH), one(p.StrideW)
	p.DilH, p.DilW = one(p.DilH), one(p.DilW)
	p.Group = one(p.Group)
	return p
}

// WithOutSize returns p with OutH and OutW computed by [ConvOutSize].
func (p Conv2DParams) WithOutSize() Conv2DParams {
	p.OutH = ConvOutSize(p.H, p.KH, p.StrideH, p.DilH, p.PadTop, p.PadBottom)
	p.OutW = ConvOutSize(p.W, p.KW, p.StrideW, p.DilW, p.PadLeft, p.PadRight)
	return p
}

// Validate reports whether the parameters describe a supported convolution.
func (p Conv2DParams) Validate() error {
	q := p.norm()
	switch {
	case q.N < 0 || q.C < 1 || q.H < 1 || q.W < 1 || q.M < 1 || q.KH < 1 || q.KW < 1:
		return errors.New("kernels: Conv2D: N must be >= 0 and C, H, W, M, KH, KW >= 1")
	case q.StrideH < 0 || q.StrideW < 0 || q.DilH < 0 || q.DilW < 0:
		return errors.New("kernels: Conv2D: negative stride or dilation")
	case q.PadTop < 0 || q.PadLeft < 0 || q.PadBottom < 0 || q.PadRight < 0:
		return errors.New("kernels: Conv2D: negative padding")
	case q.Group != 1:
		return errors.New("kernels: Conv2D: group " + itoa(q.Group) + " is not supported (only group 1)")
	}
	w := q.WithOutSize()
	if w.OutH < 1 || w.OutW < 1 {
		return errors.New("kernels: Conv2D: kernel larger than padded input")
	}
	if q.OutH != w.OutH || q.OutW != w.OutW {
		return errors.New("kernels: Conv2D: output size " + itoa(q.OutH) + "x" + itoa(q.OutW) +
			" does not match the geometry (" + itoa(w.OutH) + "x" + itoa(w.OutW) + ")")
	}
	return nil
}

func (p Conv2DParams) mustValid(kernel string) Conv2DParams {
	if err := p.Validate(); err != nil {
		panic(err.Error() + " (in " + kernel + ")")
	}
	return p.norm()
}

// XLen, WLen, YLen and BLen are the element counts of X, the weight, Y and
// the bias.
func (p Conv2DParams) XLen() int { return p.N * p.C * p.H * p.W }
func (p Conv2DParams) WLen() int { return p.M * (p.C / one(p.Group)) * p.KH * p.KW }
func (p Conv2DParams) YLen() int { return p.N * p.M * p.OutH * p.OutW }
func (p Conv2DParams) BLen() int { return p.M }

// FLOPs is the floating-point operation count (2 per multiply-add) of the
// forward pass, which is also that of each of the data and weight backward
// passes.
func (p Conv2DParams) FLOPs() int64 {
	return 2 * int64(p.N) * int64(p.M) * int64(p.OutH*p.OutW) * int64(p.C/one(p.Group)*p.KH*p.KW)
}

// ColLen is the length of the im2col buffer for one image:
// (C*KH*KW) × (OutH*OutW).
func (p Conv2DParams) ColLen() int { return p.C / one(p.Group) * p.KH * p.KW * p.OutH * p.OutW }

// direct reports whether the im2col matrix of an image is the image itself
// (1×1 kernel, unit stride, no padding).
func (p Conv2DParams) direct() bool {
	return p.KH == 1 && p.KW == 1 && p.StrideH == 1 && p.StrideW == 1 &&
		p.PadTop == 0 && p.PadLeft == 0 && p.PadBottom == 0 && p.PadRight == 0
}

// colRange returns the range [lo, hi) of output columns ow whose input column
// ow*stride + off lies inside [0, w).
func colRange(off, stride, w, outW int) (lo, hi int) {
	// lo = ceil(-off / stride) for off < 0.
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	last := w - 1 - off // need ow*stride <= last
	if last < 0 {
		return 0, 0
	}
	hi = last/stride + 1
	if hi > outW {
		hi = outW
	}
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// Im2Col unfolds one image x [C, H, W] into col [(C*KH*KW), (OutH*OutW)]:
// col[(c*KH+kh)*KW+kw][oh*OutW+ow] = x[c][oh*StrideH-PadTop+kh*DilH][ow*StrideW-PadLeft+kw*DilW],
// zero where that falls in the padding. It uses p's geometry but ignores N
// and M.
func Im2Col[T Float](p Conv2DParams, x, col []T) {
	p = p.norm()
	need("Im2Col", "x", x, p.C*p.H*p.W)
	need("Im2Col", "col", col, p.ColLen())
	im2col(p, x, col, 0, p.OutH)
}

// im2col fills col [(C*KH*KW), (oh1-oh0)*OutW] with the columns of output
// rows [oh0, oh1).
func im2col[T Float](p Conv2DParams, x, col []T, oh0, oh1 int) {
	H, W, OW := p.H, p.W, p.OutW
	P := (oh1 - oh0) * OW
	sh, sw := p.StrideH, p.StrideW
	r := 0
	for c := 0; c < p.C; c++ {
		xc := x[c*H*W : (c+1)*H*W]
		for kh := 0; kh < p.KH; kh++ {
			hoff := kh*p.DilH - p.PadTop
			for kw := 0; kw < p.KW; kw++ {
				off := kw*p.DilW - p.PadLeft
				lo, hi := colRange(off, sw, W, OW)
				row := col[r*P : (r+1)*P]
				r++
				for oh := oh0; oh < oh1; oh++ {
					dst := row[(oh-oh0)*OW : (oh-oh0+1)*OW]
					ih := oh*sh + hoff
					if ih < 0 || ih >= H {
						clear(dst)
						continue
					}
					src := xc[ih*W : (ih+1)*W]
					clear(dst[:lo])
					clear(dst[hi:])
					if sw == 1 {
						copy(dst[lo:hi], src[lo+off:hi+off])
					} else {
						iw := lo*sw + off
						for ow := lo; ow < hi; ow++ {
							dst[ow] = src[iw]
							iw += sw
						}
					}
				}
			}
		}
	}
}

// Col2Im folds col [(C*KH*KW), (OutH*OutW)] back into one image dx
// [C, H, W], summing the entries that map to the same input cell and
// dropping those that fall in the padding: the adjoint of [Im2Col]. dx is
// overwritten.
func Col2Im[T Float](p Conv2DParams, col, dx []T) {
	p = p.norm()
	need("Col2Im", "col", col, p.ColLen())
	need("Col2Im", "dx", dx, p.C*p.H*p.W)
	clear(dx[:p.C*p.H*p.W])
	col2im(p, col, dx, 0, p.OutH)
}

// col2im accumulates into dx the columns of output rows [oh0, oh1) held in
// col [(C*KH*KW), (oh1-oh0)*OutW].
func col2im[T Float](p Conv2DParams, col, dx []T, oh0, oh1 int) {
	H, W, OW := p.H, p.W, p.OutW
	P := (oh1 - oh0) * OW
	sh, sw := p.StrideH, p.StrideW
	r := 0
	for c := 0; c < p.C; c++ {
		xc := dx[c*H*W : (c+1)*H*W]
		for kh := 0; kh < p.KH; kh++ {
			hoff := kh*p.DilH - p.PadTop
			for kw := 0; kw < p.KW; kw++ {
				off := kw*p.DilW - p.PadLeft
				lo, hi := colRange(off, sw, W, OW)
				row := col[r*P : (r+1)*P]
				r++
				if lo >= hi {
					continue
				}
				for oh := oh0; oh < oh1; oh++ {
					ih := oh*sh + hoff
					if ih < 0 || ih >= H {
						continue
					}
					src := row[(oh-oh0)*OW+lo : (oh-oh0)*OW+hi]
					if sw == 1 {
						dst := xc[ih*W+lo+off : ih*W+hi+off]
						for i, v := range src {
							dst[i] += v
						}
					} else {
						dst := xc[ih*W : (ih+1)*W]
						iw := lo*sw + off
						for _, v := range src {
							dst[iw] += v
							iw += sw
						}
					}
				}
			}
		}
	}
}

// convWorkers decides how many goroutines split the batch. BLAS already
// parallelises each product whose output has enough 64×64 blocks; splitting
// the batch on top of that also shares the im2col/col2im work and keeps
// both cores busy when the per-image products are small.
func convWorkers(p Conv2DParams) int {
	return workers(p.N, p.M*p.OutH*p.OutW*p.C*p.KH*p.KW)
}

// maxColElems bounds one worker's im2col buffer: larger images are unfolded
// and multiplied in bands of output rows (a 224×224 VGG layer would
// otherwise need a 115 MB buffer per worker in float32).
const maxColElems = 1 << 22

// band returns how many output rows are unfolded at a time.
func (p Conv2DParams) band() int {
	rows := maxColElems / max(1, p.C*p.KH*p.KW*p.OutW)
	return max(1, min(rows, p.OutH))
}

// Conv2DForward computes y = conv(x, w) + bias for x [N, C, H, W], w
// [M, C, KH, KW] and y [N, M, OutH, OutW]; bias [M] may be nil. Each image
// is unfolded with [Im2Col] (skipped for 1×1 unit-stride unpadded kernels,
// whose image is its own column matrix) and multiplied by the weight with
// [Gemm]; the batch is split across goroutines.
func Conv2DForward[T Float](p Conv2DParams, x, w, bias, y []T) {
	const name = "Conv2DForward"
	p = p.mustValid(name)
	need(name, "x", x, p.XLen())
	need(name, "w", w, p.WLen())
	need(name, "y", y, p.YLen())
	if bias != nil {
		need(name, "bias", bias, p.M)
	}
	K, P, OW := p.C*p.KH*p.KW, p.OutH*p.OutW, p.OutW
	xs, ys := p.C*p.H*p.W, p.M*P
	direct, band := p.direct(), p.band()
	parallelFor(p.N, convWorkers(p), func(_, lo, hi int) {
		var col []T
		if !direct {
			col = getBuf[T](K * band * OW)
			defer putBuf(col)
		}
		for n := lo; n < hi; n++ {
			xn := x[n*xs : (n+1)*xs]
			yn := y[n*ys : (n+1)*ys]
			var beta T
			if bias != nil {
				for m := 0; m < p.M; m++ {
					fill(yn[m*P:(m+1)*P], bias[m])
				}
				beta = 1
			}
			if direct {
				Gemm(false, false, p.M, P, K, 1, w, K, xn, P, beta, yn, P)
				continue
			}
			for oh0 := 0; oh0 < p.OutH; oh0 += band {
				oh1 := min(oh0+band, p.OutH)
				pt := (oh1 - oh0) * OW
				im2col(p, xn, col, oh0, oh1)
				Gemm(false, false, p.M, pt, K, 1, w, K, col, pt, beta, yn[oh0*OW:], P)
			}
		}
	})
}

// Conv2DBackwardData computes dx [N, C, H, W], the gradient with respect to
// the input, from the weight w and the output gradient dy [N, M, OutH,
// OutW]: dx = col2im(wᵀ · dy) per image. dx is overwritten.
func Conv2DBackwardData[T Float](p Conv2DParams, w, dy, dx []T) {
	const name = "Conv2DBackwardData"
	p = p.mustValid(name)
	need(name, "w", w, p.WLen())
	need(name, "dy", dy, p.YLen())
	need(name, "dx", dx, p.XLen())
	K, P, OW := p.C*p.KH*p.KW, p.OutH*p.OutW, p.OutW
	xs, ys := p.C*p.H*p.W, p.M*P
	// wᵀ [K, M], so that every product is an untransposed GEMM (gonum's
	// fastest case).
	wt := getBuf[T](K * p.M)
	defer putBuf(wt)
	transpose2D(p.M, K, w, wt)
	direct, band := p.direct(), p.band()
	parallelFor(p.N, convWorkers(p), func(_, lo, hi int) {
		var col []T
		if !direct {
			col = getBuf[T](K * band * OW)
			defer putBuf(col)
		}
		for n := lo; n < hi; n++ {
			dyn := dy[n*ys : (n+1)*ys]
			dxn := dx[n*xs : (n+1)*xs]
			if direct {
				Gemm(false, false, K, P, p.M, 1, wt, p.M, dyn, P, 0, dxn, P)
				continue
			}
			clear(dxn)
			for oh0 := 0; oh0 < p.OutH; oh0 += band {
				oh1 := min(oh0+band, p.OutH)
				pt := (oh1 - oh0) * OW
				Gemm(false, false, K, pt, p.M, 1, wt, p.M, dyn[oh0*OW:], P, 0, col, pt)
				col2im(p, col, dxn, oh0, oh1)
			}
		}
	})
}

// Conv2DBackwardWeight computes dw [M, C, KH, KW], the gradient with respect
// to the weight, from the input x and the output gradient dy: the sum over
// the batch of dy[n] · im2col(x[n])ᵀ. dw is overwritten.
func Conv2DBackwardWeight[T Float](p Conv2DParams, x, dy, dw []T) {
	const name = "Conv2DBackwardWeight"
	p = p.mustValid(name)
	need(name, "x", x, p.XLen())
	need(name, "dy", dy, p.YLen())
	need(name, "dw", dw, p.WLen())
	K, P, OW := p.C*p.KH*p.KW, p.OutH*p.OutW, p.OutW
	xs, ys := p.C*p.H*p.W, p.M*P
	dw = dw[:p.M*K]
	if p.N == 0 {
		clear(dw)
		return
	}
	direct, band := p.direct(), p.band()
	nw := convWorkers(p)
	// Worker 0 accumulates into dw itself, the others into partial sums
	// added at the end.
	var partial []T
	if nw > 1 {
		partial = getBuf[T]((nw - 1) * p.M * K)
		defer putBuf(partial)
	}
	parallelFor(p.N, nw, func(wk, lo, hi int) {
		acc := dw
		if wk > 0 {
			acc = partial[(wk-1)*p.M*K : wk*p.M*K]
		}
		clear(acc)
		var col []T
		if !direct {
			col = getBuf[T](K * band * OW)
			defer putBuf(col)
		}
		for n := lo; n < hi; n++ {
			xn := x[n*xs : (n+1)*xs]
			dyn := dy[n*ys : (n+1)*ys]
			if direct {
				Gemm(false, true, p.M, K, P, 1, dyn, P, xn, P, 1, acc, K)
				continue
			}
			for oh0 := 0; oh0 < p.OutH; oh0 += band {
				oh1 := min(oh0+band, p.OutH)
				pt := (oh1 - oh0) * OW
				im2col(p, xn, col, oh0, oh1)
				Gemm(false, true, p.M, K, pt, 1, dyn[oh0*OW:], P, col, pt, 1, acc, K)
			}
		}
	})
	for i := 1; i < nw; i++ {
		addTo(dw, partial[(i-1)*p.M*K:i*p.M*K])
	}
}

// Conv2DBackwardBias computes db [M], the gradient with respect to the bias:
// the sum of dy over the batch and the output positions. db is overwritten.
func Conv2DBackwardBias[T Float](p Conv2DParams, dy, db []T) {
	const name = "Conv2DBackwardBias"
	p = p.norm()
	P := p.OutH * p.OutW
	need(name, "dy", dy, p.N*p.M*P)
	need(name, "db", db, p.M)
	for m := 0; m < p.M; m++ {
		var s float64
		for n := 0; n < p.N; n++ {
			s += sum(dy[(n*p.M+m)*P : (n*p.M+m+1)*P])
		}
		db[m] = T(s)
	}
}

// sum adds s up in float64 with four accumulators.
func sum[T Float](s []T) float64 {
	var a0, a1, a2, a3 float64
	i := 0
	for ; i+4 <= len(s); i += 4 {
		a0 += float64(s[i])
		a1 += float64(s[i+1])
		a2 += float64(s[i+2])
		a3 += float64(s[i+3])
	}
	for ; i < len(s); i++ {
		a0 += float64(s[i])
	}
	return (a0 + a1) + (a2 + a3)
}

// addTo sets dst[i] += src[i].
func addTo[T Float](dst, src []T) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// transpose2D writes the transpose of the r×c matrix a into t (c×r), in
// cache-friendly tiles.
func transpose2D[T any](r, c int, a, t []T) {
	const tile = 32
	for i0 := 0; i0 < r; i0 += tile {
		i1 := min(i0+tile, r)
		for j0 := 0; j0 < c; j0 += tile {
			j1 := min(j0+tile, c)
			for i := i0; i < i1; i++ {
				row := a[i*c : i*c+c]
				for j := j0; j < j1; j++ {
					t[j*r+i] = row[j]
				}
			}
		}
	}
}
