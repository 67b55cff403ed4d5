package kernels

import (
	"errors"
	"runtime"
)

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
	// convolution. C and M must be multiples of it (conv_grouped.go).
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
	case q.Group < 1 || q.C%q.Group != 0 || q.M%q.Group != 0:
		return errors.New("kernels: Conv2D: group " + itoa(q.Group) + " does not divide the " + itoa(q.C) + " input and " + itoa(q.M) + " output channels")
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
	P := p.OutH * p.OutW
	im2col(p, x, col, P, 0, p.OutH, 0, p.C)
}

// im2col fills, for channels [c0, c1) and output rows [oh0, oh1), the rows
// (c*KH+kh)*KW+kw of col (leading dimension ld) with (oh1-oh0)*OutW
// columns each, starting at col[0] for row 0.
func im2col[T Float](p Conv2DParams, x, col []T, ld, oh0, oh1, c0, c1 int) {
	if useGather(p, oh0, oh1) {
		im2colSmall(p, x, col, ld, oh0, oh1, c0, c1)
		return
	}
	H, W, OW := p.H, p.W, p.OutW
	P := (oh1 - oh0) * OW
	sh, sw := p.StrideH, p.StrideW
	r := c0 * p.KH * p.KW
	for c := c0; c < c1; c++ {
		xc := x[c*H*W : (c+1)*H*W]
		for kh := 0; kh < p.KH; kh++ {
			hoff := kh*p.DilH - p.PadTop
			for kw := 0; kw < p.KW; kw++ {
				off := kw*p.DilW - p.PadLeft
				lo, hi := colRange(off, sw, W, OW)
				row := col[r*ld : r*ld+P]
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

// maxGather bounds the gather table of im2colSmall (KH*KW*positions
// entries, on the stack).
const maxGather = 2304

// im2colSmall is im2col for maps at most 4 wide (VGG19's 2×2 and 4×4 at
// 32×32 input), where the row-by-row copies of im2col cost more in calls
// than in copying: one table of source offsets per tap and output position
// serves every channel (measured 2.5x faster at 4×4 and 3-5x at 2×2; at
// 8×8 the row copies are faster again).
func im2colSmall[T Float](p Conv2DParams, x, col []T, ld, oh0, oh1, c0, c1 int) {
	var tbl [maxGather]int32
	t, pt := gatherTable(p, oh0, oh1, tbl[:])
	HW, KHW := p.H*p.W, p.KH*p.KW
	for c := c0; c < c1; c++ {
		xc := x[c*HW : (c+1)*HW]
		for r := 0; r < KHW; r++ {
			dst := col[(c*KHW+r)*ld : (c*KHW+r)*ld+pt]
			for q, o := range t[r*pt : (r+1)*pt] {
				var v T
				if o >= 0 {
					v = xc[o]
				}
				dst[q] = v
			}
		}
	}
}

// col2imSmall is col2im for the maps im2colSmall serves.
func col2imSmall[T Float](p Conv2DParams, col, dx []T, ld, oh0, oh1, c0, c1 int) {
	var tbl [maxGather]int32
	t, pt := gatherTable(p, oh0, oh1, tbl[:])
	HW, KHW := p.H*p.W, p.KH*p.KW
	for c := c0; c < c1; c++ {
		xc := dx[c*HW : (c+1)*HW]
		for r := 0; r < KHW; r++ {
			src := col[(c*KHW+r)*ld : (c*KHW+r)*ld+pt]
			for q, o := range t[r*pt : (r+1)*pt] {
				if o >= 0 {
					xc[o] += src[q]
				}
			}
		}
	}
}

// useGather reports whether im2col and col2im use the gather table for
// output rows [oh0, oh1).
func useGather(p Conv2DParams, oh0, oh1 int) bool {
	return p.OutW <= 4 && p.KH*p.KW*(oh1-oh0)*p.OutW <= maxGather
}

// gatherTable fills tbl[(kh*KW+kw)*pt+q], for each tap and each output
// position q of rows [oh0, oh1), with the offset in an input plane that
// the tap reads, or -1 in the padding; it returns the table and pt.
func gatherTable(p Conv2DParams, oh0, oh1 int, tbl []int32) ([]int32, int) {
	OW := p.OutW
	pt := (oh1 - oh0) * OW
	t := tbl[:p.KH*p.KW*pt]
	for kh := 0; kh < p.KH; kh++ {
		for kw := 0; kw < p.KW; kw++ {
			e := t[(kh*p.KW+kw)*pt : (kh*p.KW+kw+1)*pt]
			for q := range e {
				oh, ow := oh0+q/OW, q%OW
				ih, iw := oh*p.StrideH+kh*p.DilH-p.PadTop, ow*p.StrideW+kw*p.DilW-p.PadLeft
				e[q] = -1
				if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
					e[q] = int32(ih*p.W + iw)
				}
			}
		}
	}
	return t, pt
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
	col2im(p, col, dx, p.OutH*p.OutW, 0, p.OutH, 0, p.C)
}

// col2im accumulates into the channels [c0, c1) of dx the columns of
// output rows [oh0, oh1) held in col (leading dimension ld), laid out as
// [im2col] writes them.
func col2im[T Float](p Conv2DParams, col, dx []T, ld, oh0, oh1, c0, c1 int) {
	if useGather(p, oh0, oh1) {
		col2imSmall(p, col, dx, ld, oh0, oh1, c0, c1)
		return
	}
	H, W, OW := p.H, p.W, p.OutW
	P := (oh1 - oh0) * OW
	sh, sw := p.StrideH, p.StrideW
	r := c0 * p.KH * p.KW
	for c := c0; c < c1; c++ {
		xc := dx[c*H*W : (c+1)*H*W]
		for kh := 0; kh < p.KH; kh++ {
			hoff := kh*p.DilH - p.PadTop
			for kw := 0; kw < p.KW; kw++ {
				off := kw*p.DilW - p.PadLeft
				lo, hi := colRange(off, sw, W, OW)
				row := col[r*ld : r*ld+P]
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

// maxColElems bounds the im2col buffer of one product (4 MB in float32, so
// that it stays in the last-level cache between being written and being
// packed by the GEMM). Small images are unfolded several at a time into one
// buffer, and large ones in bands of output rows.
const maxColElems = 1 << 20

// minBandCols is the fewest output positions a band of a large image holds.
const minBandCols = 1024

// plan returns how a convolution is cut into products: nb images at a time
// (their columns side by side), or, when one image's columns exceed
// maxColElems, one image at a time in bands of band output rows.
//
// Folding images together makes each product wide enough for the GEMM to
// run at full speed (the 2×2 maps at the end of VGG19 at 32×32 would
// otherwise be products only 4 columns wide) and packs the weights once per
// group instead of once per image.
func (p Conv2DParams) plan() (nb, band int) {
	K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
	if K*P >= maxColElems/2 || p.N <= 1 {
		// At least minBandCols columns per product, even past the buffer
		// bound: the weights are packed once per product, and a 28×28 map
		// with 512 channels would otherwise repack 9 MB of them for every
		// 224 columns.
		rows := max(maxColElems/max(1, K*p.OutW), (minBandCols+p.OutW-1)/p.OutW)
		return 1, max(1, min(rows, p.OutH))
	}
	nb = min(p.N, max(1, maxColElems/(K*P)))
	// Spread the images evenly over the groups.
	groups := (p.N + nb - 1) / nb
	return (p.N + groups - 1) / groups, p.OutH
}

// band returns how many output rows are unfolded at a time.
func (p Conv2DParams) band() int {
	_, b := p.plan()
	return b
}

// convScratch returns the scratch buffers the products of p's plan need: col for
// the unfolded images, unless the products read the images directly (direct), and
// tmp for the outputs of a group of images, when images are grouped. Buffers not
// needed are nil; release both with putBuf.
func convScratch[T Float](p Conv2DParams) (direct bool, col, tmp []T) {
	nb, band := p.plan()
	direct = p.direct() && nb == 1 && band == p.OutH
	if !direct {
		col = getBuf[T](p.C * p.KH * p.KW * nb * band * p.OutW)
	}
	if nb > 1 {
		tmp = getBuf[T](p.M * nb * p.OutH * p.OutW)
	}
	return direct, col, tmp
}

// convGroups calls fn for each product of the plan: images [n0, n0+g) and
// output rows [oh0, oh1) (all rows when g > 1).
func convGroups(p Conv2DParams, fn func(n0, g, oh0, oh1 int)) {
	nb, band := p.plan()
	for n0 := 0; n0 < p.N; n0 += nb {
		g := min(nb, p.N-n0)
		for oh0 := 0; oh0 < p.OutH; oh0 += band {
			fn(n0, g, oh0, min(oh0+band, p.OutH))
		}
	}
}

// im2colGroup unfolds images [n0, n0+g), output rows [oh0, oh1), into col
// (leading dimension g*(oh1-oh0)*OutW, image i's columns at i*(oh1-oh0)*OutW),
// splitting the images' channels across goroutines.
func im2colGroup[T Float](p Conv2DParams, x, col []T, n0, g, oh0, oh1 int) {
	xs, pt := p.C*p.H*p.W, (oh1-oh0)*p.OutW
	ld := g * pt
	units := g * p.C
	parallelFor(units, workers(units, p.KH*p.KW*pt), func(_, lo, hi int) {
		for u := lo; u < hi; {
			i, c := u/p.C, u%p.C
			c1 := min(p.C, c+hi-u)
			im2col(p, x[(n0+i)*xs:(n0+i+1)*xs], col[i*pt:], ld, oh0, oh1, c, c1)
			u += c1 - c
		}
	})
}

// col2imGroup is the adjoint of im2colGroup, accumulating into dx.
func col2imGroup[T Float](p Conv2DParams, col, dx []T, n0, g, oh0, oh1 int) {
	xs, pt := p.C*p.H*p.W, (oh1-oh0)*p.OutW
	ld := g * pt
	units := g * p.C
	parallelFor(units, workers(units, p.KH*p.KW*pt), func(_, lo, hi int) {
		for u := lo; u < hi; {
			i, c := u/p.C, u%p.C
			c1 := min(p.C, c+hi-u)
			col2im(p, col[i*pt:], dx[(n0+i)*xs:(n0+i+1)*xs], ld, oh0, oh1, c, c1)
			u += c1 - c
		}
	})
}

// gatherGroup copies the maps of images [n0, n0+g) of t [N, M, P] side by
// side into dst [M, g*P]; scatterGroup does the reverse, adding bias[m]
// when bias is not nil.
func gatherGroup[T Float](M, P int, t, dst []T, n0, g int) {
	parallelFor(M, workers(M, g*P), func(_, lo, hi int) {
		for m := lo; m < hi; m++ {
			for i := 0; i < g; i++ {
				copy(dst[m*g*P+i*P:m*g*P+(i+1)*P], t[((n0+i)*M+m)*P:((n0+i)*M+m+1)*P])
			}
		}
	})
}

func scatterGroup[T Float](M, P int, src, t, bias []T, n0, g int) {
	scatterGroupOn(runtime.GOMAXPROCS(0), M, P, src, t, bias, n0, g)
}

// scatterGroupOn is scatterGroup on up to nw goroutines.
func scatterGroupOn[T Float](nw, M, P int, src, t, bias []T, n0, g int) {
	parallelFor(M, min(nw, workers(M, g*P)), func(_, lo, hi int) {
		for m := lo; m < hi; m++ {
			for i := 0; i < g; i++ {
				d := t[((n0+i)*M+m)*P : ((n0+i)*M+m+1)*P]
				s := src[m*g*P+i*P : m*g*P+(i+1)*P]
				if bias == nil {
					copy(d, s)
					continue
				}
				b := bias[m]
				for j, v := range s {
					d[j] = v + b
				}
			}
		}
	})
}

// Conv2DForward computes y = conv(x, w) + bias for x [N, C, H, W], w
// [M, C/Group, KH, KW] and y [N, M, OutH, OutW]; bias [M] may be nil. On
// the toolkit's own GEMM it takes the paths of conv_fast.go; otherwise
// images are unfolded with im2col (skipped for a whole image under a 1×1
// unit-stride unpadded kernel, whose image is its own column matrix),
// several small images or one band of a large image at a time, and
// multiplied by the weight with [Gemm]. Each step runs on every core: the
// unfolding split by channels, the product by [Gemm].
func Conv2DForward[T Float](p Conv2DParams, x, w, bias, y []T) {
	conv2DForward("Conv2DForward", p, x, w, bias, y, Activation{}, filterUse{}, false)
}

// Conv2DForwardCached is Conv2DForward followed by act (as Conv2DForwardAct) that
// keeps what it derives from the weights alone in cache from call to call
// while they stay the same (see [FilterCache]).
func Conv2DForwardCached[T Float](cache *FilterCache, p Conv2DParams, x, w, bias, y []T, act Activation) {
	conv2DForward("Conv2DForwardCached", p, x, w, bias, y, act, filterUse{cache: cache}, false)
}

// Conv2DForwardConstant is Conv2DForwardCached for weights the caller promises are those
// of the cache's earlier calls (an inference program over a model that is not
// trained): the cache is used without checking them, and it also keeps the weights
// packed for the products of every path but Winograd's (which keeps its transformed
// filters either way). Weights changed in place give wrong results until the
// next call of Conv2DForwardCached with the cache (which checks them).
func Conv2DForwardConstant[T Float](cache *FilterCache, p Conv2DParams, x, w, bias, y []T, act Activation) {
	conv2DForward("Conv2DForwardConstant", p, x, w, bias, y, act, filterUse{cache: cache, trusted: true}, false)
}

// Conv2DForwardConstantAdd is Conv2DForwardConstant added to what y holds: y =
// act(conv(x, w) + bias + y), a convolution ending a residual block fused with the Add
// of the block's other branch (and the Relu after it). Where the products write y
// directly (pointwise convolutions, and small maps computed with the positions as
// rows) they add it as they store their output; elsewhere the convolution goes to a
// scratch buffer and is added to y in a pass after it.
func Conv2DForwardConstantAdd[T Float](cache *FilterCache, p Conv2DParams, x, w, bias, y []T, act Activation) {
	conv2DForward("Conv2DForwardConstantAdd", p, x, w, bias, y, act, filterUse{cache: cache, trusted: true}, true)
}

// Conv2DForwardRelu computes y = max(conv(x, w) + bias, 0): a
// convolution fused with the Relu after it (Conv2DForwardAct with a Relu).
func Conv2DForwardRelu[T Float](p Conv2DParams, x, w, bias, y []T) {
	conv2DForward("Conv2DForwardRelu", p, x, w, bias, y, Activation{Kind: ReluActivation}, filterUse{}, false)
}

// Conv2DForwardAct computes y = act(conv(x, w) + bias): a convolution fused with the
// Relu, Clip (ReLU6) or SiLU after it. On the toolkit's own kernels a Relu or Clip is
// applied as the output is stored (no second pass over y), and so is a SiLU by the
// AVX-512 products (not by Winograd's, AVX2's or the portable ones) and a depthwise
// convolution (each plane as it is done); elsewhere it is Conv2DForward followed by
// [ActivationForward], with the same bits.
func Conv2DForwardAct[T Float](p Conv2DParams, x, w, bias, y []T, act Activation) {
	conv2DForward("Conv2DForwardAct", p, x, w, bias, y, act, filterUse{}, false)
}

// conv2DForward computes y = act(conv(x, w) + bias), or with add y = act(conv(x, w) +
// bias + y).
func conv2DForward[T Float](name string, p Conv2DParams, x, w, bias, y []T, act Activation, cache filterUse, add bool) {
	p = p.mustValid(name)
	need(name, "x", x, p.XLen())
	need(name, "w", w, p.WLen())
	need(name, "y", y, p.YLen())
	if bias != nil {
		need(name, "bias", bias, p.M)
	}
	if add && !p.addsInProducts(packedKernel[T]()) {
		// These products overwrite their output: the convolution goes to a scratch
		// buffer, added to y in a pass after it.
		n := p.YLen()
		t := getBuf[T](n)
		defer putBuf(t)
		conv2DForward(name, p, x, w, bias, t[:n], Activation{}, cache, false)
		addTo(y[:n], t[:n])
		if act.Kind != NoActivation {
			ActivationForward(act, y[:n], y[:n])
		}
		return
	}
	if act.Kind == SiLUActivation && !p.siluStored(packedKernel[T]()) {
		// These products store clamps only: a SiLU is a pass over y after them.
		conv2DForward(name, p, x, w, bias, y, Activation{}, cache, add)
		ActivationForward(act, y[:p.YLen()], y[:p.YLen()])
		return
	}
	if p.Group > 1 {
		conv2DGroupedForward(p, x, w, bias, y, act)
		return
	}
	if kern := packedKernel[T](); kern != nil && p.byPositionsOn(kern) {
		K := p.C * p.KH * p.KW
		convForwardByPositions(kern, p, as32(x), as32(w), packedWeightsB(kern, cache, as32(w), K, p.M), as32(bias), as32(y), act, add)
		return
	}
	if kern := packedKernel[T](); kern != nil && p.winogradOn(kern) {
		convForwardWinograd(kern, p, as32(x), winoWeights(p.C, as32(w)), as32(bias), as32(y), act, cache)
		return
	}
	if kern := packedKernel[T](); kern != nil && p.forwardFastOn(kern) {
		K := p.C * p.KH * p.KW
		kind := cachePackedCols
		if p.paddedOn(kern) && kern.tileRows != nil {
			kind = cachePacked
		}
		ap := packedWeights(kern, cache, kind, as32(w), p.M, K)
		convForwardFast(kern, p, as32(x), dense(as32(w), K, false), ap, as32(bias), as32(y), act)
		return
	}
	if kern := packedKernel[T](); kern != nil && p.direct() {
		pointwiseForward(kern, p, as32(x), as32(w), as32(bias), as32(y), act, cache, add)
		return
	}
	K, P, OW := p.C*p.KH*p.KW, p.OutH*p.OutW, p.OutW
	xs, ys := p.C*p.H*p.W, p.M*P
	direct, col, tmp := convScratch[T](p)
	defer putBuf(col)
	defer putBuf(tmp)
	convGroups(p, func(n0, g, oh0, oh1 int) {
		pt := (oh1 - oh0) * OW
		if g > 1 {
			im2colGroup(p, x, col, n0, g, oh0, oh1)
			Gemm(false, false, p.M, g*pt, K, 1, w, K, col, g*pt, 0, tmp, g*pt)
			scatterGroup(p.M, P, tmp, y, bias, n0, g)
			return
		}
		yn := y[n0*ys : (n0+1)*ys]
		if direct {
			gemmBias(p.M, P, K, w, K, x[n0*xs:(n0+1)*xs], P, bias, yn, P)
			return
		}
		im2colGroup(p, x, col, n0, 1, oh0, oh1)
		gemmBias(p.M, pt, K, w, K, col, pt, bias, yn[oh0*OW:], P)
	})
	if act.Kind != NoActivation {
		ActivationForward(act, y[:p.YLen()], y[:p.YLen()])
	}
}

// addsInProducts reports whether p's forward pass on kern adds its output to y as the
// products store it (conv2DForward with add): the paths whose products write y
// directly, pointwise convolutions and those computed with the positions as rows.
func (p Conv2DParams) addsInProducts(kern *gemmKernel) bool {
	if kern == nil || p.Group > 1 {
		return false
	}
	return p.byPositionsOn(kern) || !p.winogradOn(kern) && !p.forwardFastOn(kern) && p.direct()
}

// siluStored reports whether p's forward pass on kern applies a SiLU without a pass
// over y after it: the depthwise and few-channel grouped convolutions (each plane as
// it is done, byTaps), and where the products store it (kern.siluStore) the
// padded-grid, gathered and pointwise paths; not Winograd's nor the other grouped
// convolutions.
func (p Conv2DParams) siluStored(kern *gemmKernel) bool {
	if p.byTaps() {
		return true
	}
	if kern == nil || !kern.siluStore || p.Group > 1 || p.winogradOn(kern) {
		return false
	}
	return p.forwardFastOn(kern) || p.direct()
}

// Conv2DBackwardData computes dx [N, C, H, W], the gradient with respect to
// the input, from the weight w and the output gradient dy [N, M, OutH,
// OutW]: dx = col2im(wᵀ · dy) per image, with the images grouped or banded
// as in [Conv2DForward]. dx is overwritten.
func Conv2DBackwardData[T Float](p Conv2DParams, w, dy, dx []T) {
	const name = "Conv2DBackwardData"
	p = p.mustValid(name)
	need(name, "w", w, p.WLen())
	need(name, "dy", dy, p.YLen())
	need(name, "dx", dx, p.XLen())
	if p.Group > 1 {
		conv2DGroupedBackwardData(p, w, dy, dx)
		return
	}
	if q, ok := p.flipped(); ok {
		if kern := packedKernel[T](); kern != nil && q.winogradOn(kern) {
			convForwardWinograd(kern, q, as32(dy), winoFlipped(p, as32(w)), nil, as32(dx), Activation{}, filterUse{})
			return
		}
		if kern := packedKernel[T](); kern != nil && q.forwardFastOn(kern) && p.flipPays() {
			wf := getBuf[float32](p.WLen())
			defer putBuf(wf)
			flipWeights(p, as32(w), wf, runtime.GOMAXPROCS(0))
			convForwardFast(kern, q, as32(dy), dense(wf, p.M*p.KH*p.KW, false), nil, nil, as32(dx), Activation{})
			return
		}
	}
	if kern := packedKernel[T](); kern != nil {
		switch {
		case p.direct():
			pointwiseBackwardData(kern, p, as32(w), as32(dy), as32(dx))
			return
		case imagesApart(p):
			convBackwardDataImages(kern, p, as32(w), as32(dy), as32(dx))
			return
		}
	}
	K, P, OW := p.C*p.KH*p.KW, p.OutH*p.OutW, p.OutW
	xs, ys := p.C*p.H*p.W, p.M*P
	// The products take wᵀ [K, M]. The packed GEMMs read w transposed as
	// they pack it; for gonum, whose untransposed case is the fastest, w is
	// transposed first.
	wt, ldw, transW := w, K, true
	if _, ok := blasImpl.(gonumBLAS); ok {
		wt, ldw, transW = getBuf[T](K*p.M), p.M, false
		defer putBuf(wt)
		transpose2D(p.M, K, w, wt)
	}
	direct, col, tmp := convScratch[T](p)
	defer putBuf(col)
	defer putBuf(tmp)
	if !direct {
		clear(dx[:p.XLen()])
	}
	convGroups(p, func(n0, g, oh0, oh1 int) {
		pt := (oh1 - oh0) * OW
		if direct {
			Gemm(transW, false, K, P, p.M, 1, wt, ldw, dy[n0*ys:(n0+1)*ys], P, 0, dx[n0*xs:(n0+1)*xs], P)
			return
		}
		src, ld := dy[n0*ys+oh0*OW:], P
		if g > 1 {
			gatherGroup(p.M, P, dy, tmp, n0, g)
			src, ld = tmp, g*pt
		}
		Gemm(transW, false, K, g*pt, p.M, 1, wt, ldw, src, ld, 0, col, g*pt)
		col2imGroup(p, col, dx, n0, g, oh0, oh1)
	})
}

// Conv2DBackwardWeight computes dw [M, C, KH, KW], the gradient with respect
// to the weight, from the input x and the output gradient dy: the sum over
// the batch of dy[n] · im2col(x[n])ᵀ, with the images grouped or banded as
// in [Conv2DForward] (a group's images add up inside one product). dw is
// overwritten. x may be its compact copy (ToBF16: IsCompact; p.Group 1), read as
// [Conv2DBackwardWeightCompact] reads it.
func Conv2DBackwardWeight[T Float](p Conv2DParams, x, dy, dw []T) {
	const name = "Conv2DBackwardWeight"
	p = p.mustValid(name)
	if compactView(x, p.XLen()) != nil {
		Conv2DBackwardWeightCompact(p, as32(x), as32(dy), as32(dw))
		return
	}
	need(name, "x", x, p.XLen())
	need(name, "dy", dy, p.YLen())
	need(name, "dw", dw, p.WLen())
	if p.N == 0 {
		clear(dw[:p.WLen()])
		return
	}
	if p.Group > 1 {
		conv2DGroupedBackwardWeight(p, x, dy, dw)
		return
	}
	K, P, OW := p.C*p.KH*p.KW, p.OutH*p.OutW, p.OutW
	xs, ys := p.C*p.H*p.W, p.M*P
	dw = dw[:p.M*K]
	if kern := packedKernel[T](); kern != nil && kern.fastGather {
		convBackwardWeightFast(kern, p, as32(x), false, as32(dy), as32(dw))
		return
	}
	direct, col, tmp := convScratch[T](p)
	defer putBuf(col)
	defer putBuf(tmp)
	var beta T // the first product overwrites dw, the others add to it
	convGroups(p, func(n0, g, oh0, oh1 int) {
		pt := (oh1 - oh0) * OW
		if direct {
			Gemm(false, true, p.M, K, P, 1, dy[n0*ys:(n0+1)*ys], P, x[n0*xs:(n0+1)*xs], P, beta, dw, K)
			beta = 1
			return
		}
		src, ld := dy[n0*ys+oh0*OW:], P
		if g > 1 {
			gatherGroup(p.M, P, dy, tmp, n0, g)
			src, ld = tmp, g*pt
		}
		im2colGroup(p, x, col, n0, g, oh0, oh1)
		Gemm(false, true, p.M, K, g*pt, 1, src, ld, col, g*pt, beta, dw, K)
		beta = 1
	})
}

// Conv2DBackwardWeightCompact is [Conv2DBackwardWeight] with x given as its compact
// copy (ToBF16; p.Group 1), with the same bits as from the values the copy holds: on the
// packed GEMM that gathers fast (the bfloat16 one, which programs keeping values in
// bfloat16 run), a group of images at a time is read back into the buffer the padded
// images go to anyway, which the bfloat16 packers round again to the same values;
// elsewhere x is read back whole first, into a buffer of its float32 size.
func Conv2DBackwardWeightCompact(p Conv2DParams, x, dy, dw []float32) {
	const name = "Conv2DBackwardWeightCompact"
	p = p.mustValid(name)
	need(name, "x", x, BF16Len(p.XLen()))
	if p.Group > 1 {
		panic("kernels: " + name + ": grouped convolution")
	}
	if kern := packedKernel[float32](); kern != nil && kern.fastGather && p.N > 0 {
		need(name, "dy", dy, p.YLen())
		need(name, "dw", dw, p.WLen())
		convBackwardWeightFast(kern, p, x, true, dy, dw[:p.WLen()])
		return
	}
	xf := getBuf[float32](p.XLen())
	defer putBuf(xf)
	FromBF16(x, xf[:p.XLen()])
	Conv2DBackwardWeight(p, xf[:p.XLen()], dy, dw)
}

// Conv2DBackwardBias computes db [M], the gradient with respect to the bias:
// the sum of dy over the batch and the output positions. db is overwritten.
func Conv2DBackwardBias[T Float](p Conv2DParams, dy, db []T) {
	const name = "Conv2DBackwardBias"
	p = p.norm()
	P := p.OutH * p.OutW
	need(name, "dy", dy, p.N*p.M*P)
	need(name, "db", db, p.M)
	// Channels in parallel; each channel's sum runs in the same order
	// whatever the split, so db does not depend on the number of cores.
	parallelFor(p.M, workers(p.M, p.N*P), func(_, lo, hi int) {
		for m := lo; m < hi; m++ {
			var s float64
			for n := 0; n < p.N; n++ {
				s += sum(dy[(n*p.M+m)*P : (n*p.M+m+1)*P])
			}
			db[m] = T(s)
		}
	})
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

// dot64 returns Σ x[i]·y[i] in float64 with four accumulators (sum's order).
func dot64[T Float](x, y []T) float64 {
	y = y[:len(x)]
	var a0, a1, a2, a3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a0 += float64(x[i]) * float64(y[i])
		a1 += float64(x[i+1]) * float64(y[i+1])
		a2 += float64(x[i+2]) * float64(y[i+2])
		a3 += float64(x[i+3]) * float64(y[i+3])
	}
	for ; i < len(x); i++ {
		a0 += float64(x[i]) * float64(y[i])
	}
	return (a0 + a1) + (a2 + a3)
}

// addTo sets dst[i] += src[i], in the vector loop for float32 (a multiply-add by 1:
// the same bits).
func addTo[T Float](dst, src []T) { axpyT(1, src[:len(dst)], dst) }

// transpose2D writes the transpose of the r×c matrix a into t (c×r), in
// cache-friendly tiles.
func transpose2D[T any](r, c int, a, t []T) { transpose2DRows(r, c, 0, r, a, t) }
