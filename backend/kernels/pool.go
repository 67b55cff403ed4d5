package kernels

import "errors"

// Pool2DParams describes a 2-D max or average pooling over NCHW input X
// [N, C, H, W] producing Y [N, C, OutH, OutW].
//
// Zero strides and dilations mean 1. Pads may be asymmetric. OutH and OutW
// are given by the caller, who chooses floor or ceil mode (see
// [PoolOutSize]); windows that reach past the padded input (possible in ceil
// mode) are clipped.
type Pool2DParams struct {
	N, C, H, W int
	KH, KW     int

	StrideH, StrideW int
	DilH, DilW       int

	PadTop, PadLeft, PadBottom, PadRight int

	OutH, OutW int

	// CountIncludePad selects the average-pool divisor (ONNX
	// count_include_pad): when set, a window's divisor counts its cells
	// inside the input or the explicit padding, but not cells beyond the
	// padding (ceil-mode overhang), as PyTorch does; when clear, only the
	// cells inside the input. Max pooling ignores it.
	CountIncludePad bool
}

// PoolOutSize is the output length of pooling along one axis, with ONNX's
// and PyTorch's formula: (in + padBegin + padEnd - dil*(k-1) - 1) / stride
// + 1, rounded down, or up when ceil is set; in ceil mode a last window that
// would start inside the end padding is dropped (PyTorch's rule, also that
// of ONNX Runtime). A zero stride or dilation means 1.
func PoolOutSize(in, k, stride, dil, padBegin, padEnd int, ceil bool) int {
	stride, dil = one(stride), one(dil)
	span := in + padBegin + padEnd - dil*(k-1) - 1
	if span < 0 {
		return 0
	}
	out := span/stride + 1
	if ceil {
		if span%stride != 0 {
			out++
		}
		if (out-1)*stride >= in+padBegin {
			out--
		}
	}
	return out
}

func (p Pool2DParams) norm() Pool2DParams {
	p.StrideH, p.StrideW = one(p.StrideH), one(p.StrideW)
	p.DilH, p.DilW = one(p.DilH), one(p.DilW)
	return p
}

// WithOutSize returns p with OutH and OutW computed by [PoolOutSize].
func (p Pool2DParams) WithOutSize(ceil bool) Pool2DParams {
	p.OutH = PoolOutSize(p.H, p.KH, p.StrideH, p.DilH, p.PadTop, p.PadBottom, ceil)
	p.OutW = PoolOutSize(p.W, p.KW, p.StrideW, p.DilW, p.PadLeft, p.PadRight, ceil)
	return p
}

// Validate reports whether the parameters describe a supported pooling.
func (p Pool2DParams) Validate() error {
	q := p.norm()
	switch {
	case q.N < 0 || q.C < 1 || q.H < 1 || q.W < 1 || q.KH < 1 || q.KW < 1:
		return errors.New("kernels: Pool2D: N must be >= 0 and C, H, W, KH, KW >= 1")
	case q.StrideH < 0 || q.StrideW < 0 || q.DilH < 0 || q.DilW < 0:
		return errors.New("kernels: Pool2D: negative stride or dilation")
	case q.PadTop < 0 || q.PadLeft < 0 || q.PadBottom < 0 || q.PadRight < 0:
		return errors.New("kernels: Pool2D: negative padding")
	case q.OutH < 1 || q.OutW < 1:
		return errors.New("kernels: Pool2D: output size must be at least 1x1")
	}
	return nil
}

func (p Pool2DParams) mustValid(kernel string) Pool2DParams {
	if err := p.Validate(); err != nil {
		panic(err.Error() + " (in " + kernel + ")")
	}
	return p.norm()
}

// XLen and YLen are the element counts of X and Y.
func (p Pool2DParams) XLen() int { return p.N * p.C * p.H * p.W }
func (p Pool2DParams) YLen() int { return p.N * p.C * p.OutH * p.OutW }

// taps returns the range [lo, hi) of kernel taps k for which
// start + k*dil lies in [0, n).
func taps(start, dil, k, n int) (lo, hi int) {
	if start < 0 {
		lo = (-start + dil - 1) / dil
	}
	last := n - 1 - start
	if last < 0 {
		return 0, 0
	}
	hi = min(k, last/dil+1)
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// paddedTaps counts the taps k of a window starting at start (>= -padBegin)
// that lie before n + padEnd, the end of the padded input.
func paddedTaps(start, dil, k, n, padEnd int) int {
	last := n + padEnd - 1 - start
	if last < 0 {
		return 0
	}
	return min(k, last/dil+1)
}

// MaxPool2DForward computes y = maxpool(x) and, when argmax is not nil, the
// position in its input plane (ih*W + iw) of each output's maximum (the cell
// [MaxPool2DBackward] sends the gradient to). Padding never wins: windows take the maximum over
// their cells inside the input only. Ties go to the first cell in row-major
// window order; a NaN in a window wins (as in PyTorch). A window with no
// input cell at all gives 0 with argmax -1.
func MaxPool2DForward[T Float](p Pool2DParams, x, y []T, argmax []int32) {
	const name = "MaxPool2DForward"
	p = p.mustValid(name)
	need(name, "x", x, p.XLen())
	need(name, "y", y, p.YLen())
	if argmax != nil {
		need(name, "argmax", argmax, p.YLen())
	}
	HW, OHW := p.H*p.W, p.OutH*p.OutW
	planes := p.N * p.C
	if argmax == nil && maxPoolTaps(p, x, y) {
		return
	}
	if search := newWindowSearch[T](p); search != nil {
		parallelFor(planes, workers(planes, OHW*p.KH*p.KW), func(_, lo, hi int) {
			searchPlanes(search, p, lo, hi, func(pl int) []T { return x[pl*HW : (pl+1)*HW] }, y, argmax)
		})
		return
	}
	if argmax == nil && p.DilH == 1 && p.DilW == 1 {
		parallelFor(planes, workers(planes, OHW*p.KH+p.OutH*p.KH*p.W), func(_, lo, hi int) {
			cols := getBuf[T](p.W)
			defer putBuf(cols)
			for pl := lo; pl < hi; pl++ {
				maxPoolPlaneSeparable(p, x[pl*HW:(pl+1)*HW], y[pl*OHW:(pl+1)*OHW], cols)
			}
		})
		return
	}
	parallelFor(planes, workers(planes, OHW*p.KH*p.KW), func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			var ap []int32
			if argmax != nil {
				ap = argmax[pl*OHW : (pl+1)*OHW]
			}
			maxPoolPlane(p, x[pl*HW:(pl+1)*HW], y[pl*OHW:(pl+1)*OHW], ap)
		}
	})
}

// maxPoolPlane pools one plane (ap nil only with a dilation: MaxPool2DForward pools
// the others without positions apart).
func maxPoolPlane[T Float](p Pool2DParams, xp, yp []T, ap []int32) {
	// Windows of outputs [ow0, ow1) of rows [oh0, oh1) lie inside the input: their
	// first cell's position plus the window's span is inside it.
	oh0, oh1 := colRange(-p.PadTop, p.StrideH, p.H-(p.KH-1)*p.DilH, p.OutH)
	ow0, ow1 := colRange(-p.PadLeft, p.StrideW, p.W-(p.KW-1)*p.DilW, p.OutW)
	// 2×2 windows with stride 2 (VGG's pooling) and 3×3 ones (ResNet's) take
	// branch-free paths for the windows inside the image; comparing branch by branch
	// mispredicts on most windows.
	fast := p.KH == 2 && p.KW == 2 && p.StrideH == 2 && p.StrideW == 2 && p.DilH == 1 && p.DilW == 1
	for oh := 0; oh < p.OutH; oh++ {
		if oh < oh0 || oh >= oh1 || ow0 >= ow1 {
			for ow := 0; ow < p.OutW; ow++ {
				maxPoolWindow(p, xp, yp, ap, oh, ow)
			}
			continue
		}
		for ow := 0; ow < ow0; ow++ {
			maxPoolWindow(p, xp, yp, ap, oh, ow)
		}
		switch hs := oh*p.StrideH - p.PadTop; {
		case fast:
			maxPool2x2Row(xp[hs*p.W:(hs+2)*p.W], p.W, 2*ow0-p.PadLeft, hs*p.W, yp[oh*p.OutW+ow0:oh*p.OutW+ow1], ap, oh*p.OutW+ow0)
		case p.KH == 3 && p.KW == 3 && p.DilH == 1 && p.DilW == 1:
			maxPool3x3Row(xp[hs*p.W:(hs+3)*p.W], p.W, ow0*p.StrideW-p.PadLeft, p.StrideW, hs*p.W, yp[oh*p.OutW+ow0:oh*p.OutW+ow1], ap, oh*p.OutW+ow0)
		default:
			for ow := ow0; ow < ow1; ow++ {
				maxPoolWindowInside(p, xp, yp, ap, oh, ow)
			}
		}
		for ow := ow1; ow < p.OutW; ow++ {
			maxPoolWindow(p, xp, yp, ap, oh, ow)
		}
	}
}

// maxPool3x3Row pools len(y) windows of 3×3 cells (ResNet's stem pooling), stride
// apart, from the three rows held in rows (row length w), the first window starting at
// column c0; base is the plane index of rows[0], o the index of y[0] in the plane's
// positions ap. The rule of maxPoolWindowInside, unrolled: ties go to the
// first cell in row-major order; a window with a NaN takes maxPoolWindow's rule (the
// last NaN wins).
func maxPool3x3Row[T Float](rows []T, w, c0, stride, base int, y []T, ap []int32, o int) {
	r0, r1, r2 := rows[:w], rows[w:2*w], rows[2*w:3*w]
	for j := range y {
		c := c0 + stride*j
		a0, a1, a2 := r0[c], r0[c+1], r0[c+2]
		b0, b1, b2 := r1[c], r1[c+1], r1[c+2]
		d0, d1, d2 := r2[c], r2[c+1], r2[c+2]
		m := max(max(max(a0, a1), max(a2, b0)), max(max(b1, b2), max(d0, max(d1, d2))))
		if m != m {
			i := -1
			for k, v := range [9]T{a0, a1, a2, b0, b1, b2, d0, d1, d2} {
				if v != v {
					i = k
				}
			}
			y[j], ap[o+j] = m, int32(base+i/3*w+c+i%3)
			continue
		}
		i := 2*w + 2
		if d1 == m {
			i = 2*w + 1
		}
		if d0 == m {
			i = 2 * w
		}
		if b2 == m {
			i = w + 2
		}
		if b1 == m {
			i = w + 1
		}
		if b0 == m {
			i = w
		}
		if a2 == m {
			i = 2
		}
		if a1 == m {
			i = 1
		}
		if a0 == m {
			i = 0
		}
		y[j], ap[o+j] = rows[i+c], int32(base+c+i)
	}
}

// maxPoolWindowInside is maxPoolWindow for a window inside the input, without
// branches on the values: the maximum first, then its first cell in row-major order
// found from the last cell back by conditional moves (a branch on which cell holds the
// maximum mispredicts on most windows). A window with a NaN takes maxPoolWindow.
func maxPoolWindowInside[T Float](p Pool2DParams, xp, yp []T, ap []int32, oh, ow int) {
	base := (oh*p.StrideH-p.PadTop)*p.W + ow*p.StrideW - p.PadLeft
	dh, dw := p.DilH*p.W, p.DilW
	m := xp[base]
	for kh := 0; kh < p.KH; kh++ {
		row := xp[base+kh*dh:]
		for kw := 0; kw < p.KW; kw++ {
			m = max(m, row[kw*dw])
		}
	}
	o := oh*p.OutW + ow
	if ap == nil {
		yp[o] = m
		return
	}
	if m != m {
		maxPoolWindow(p, xp, yp, ap, oh, ow)
		return
	}
	best := base
	for kh := p.KH - 1; kh >= 0; kh-- {
		for kw := p.KW - 1; kw >= 0; kw-- {
			i := base + kh*dh + kw*dw
			if xp[i] == m {
				best = i
			}
		}
	}
	yp[o], ap[o] = xp[best], int32(best) // xp[best], not m: the sign of a zero as maxPoolWindow's
}

// searchPlanes pools planes [lo, hi) by the window search s for p on the calling
// goroutine: plane pl's values from plane(pl), its outputs into y and its positions
// into argmax (nil: a scratch of its own); it counts the planes the search took.
func searchPlanes[T Float](s *windowSearch, p Pool2DParams, lo, hi int, plane func(pl int) []T, y []T, argmax []int32) {
	OHW := p.OutH * p.OutW
	bufs := s.bufs()
	defer bufs.put()
	ap := argmax
	if argmax == nil {
		ap = getInt32s(OHW)
		defer putInt32s(ap)
	}
	searched := 0
	for pl := lo; pl < hi; pl++ {
		if argmax != nil {
			ap = argmax[pl*OHW : (pl+1)*OHW]
		}
		if searchPlane(s, p, plane(pl), y[pl*OHW:(pl+1)*OHW], ap, bufs, true) {
			searched++
		}
	}
	s.kern.searchedPlanes.Add(int64(searched))
}

// maxPoolPlaneSeparable pools one plane without the positions (an inference's
// or a forward pass's outputs alone), dilation 1: per output row, the maximum over
// the window's rows of every column (cols, W values), then over each window's
// columns of that. A NaN in a window wins, as in maxPoolWindow; a window with no
// input cell gives 0. Only the sign of a zero maximum may differ from
// maxPoolWindow's (max(-0, +0) is +0 whichever comes first).
func maxPoolPlaneSeparable[T Float](p Pool2DParams, xp, yp, cols []T) {
	for oh := 0; oh < p.OutH; oh++ {
		yr := yp[oh*p.OutW : (oh+1)*p.OutW]
		hs := oh*p.StrideH - p.PadTop
		khLo, khHi := taps(hs, 1, p.KH, p.H)
		if khLo >= khHi {
			clear(yr)
			continue
		}
		copy(cols, xp[(hs+khLo)*p.W:(hs+khLo+1)*p.W])
		for kh := khLo + 1; kh < khHi; kh++ {
			row := xp[(hs+kh)*p.W : (hs+kh+1)*p.W]
			for i, v := range row {
				cols[i] = max(cols[i], v)
			}
		}
		for ow := range yr {
			ws := ow*p.StrideW - p.PadLeft
			kwLo, kwHi := taps(ws, 1, p.KW, p.W)
			if kwLo >= kwHi {
				yr[ow] = 0
				continue
			}
			m := cols[ws+kwLo]
			for _, v := range cols[ws+kwLo+1 : ws+kwHi] {
				m = max(m, v)
			}
			yr[ow] = m
		}
	}
}

// maxPool2x2Row pools len(y) windows of 2×2 cells with stride 2 from the
// two rows held in rows (row length w), the first window starting at
// column c0; base is the plane index of rows[0], o the index of y[0] in
// the plane's positions ap. Ties go to the first cell in
// row-major order and a NaN wins (the last NaN), as in maxPoolWindow.
func maxPool2x2Row[T Float](rows []T, w, c0, base int, y []T, ap []int32, o int) {
	r0, r1 := rows[:w], rows[w:2*w]
	for j := range y {
		c := c0 + 2*j
		a, b, cc, d := r0[c], r0[c+1], r1[c], r1[c+1]
		m := max(max(a, b), max(cc, d))
		y[j] = m
		i := c + w + 1
		if cc == m {
			i = c + w
		}
		if b == m {
			i = c + 1
		}
		if a == m {
			i = c
		}
		if m != m { // a NaN: the last one wins, as in maxPoolWindow
			if a != a {
				i = c
			}
			if b != b {
				i = c + 1
			}
			if cc != cc {
				i = c + w
			}
			if d != d {
				i = c + w + 1
			}
		}
		ap[o+j] = int32(base + i)
	}
}

// maxPoolWindow computes output (oh, ow) of one plane by the general rule.
func maxPoolWindow[T Float](p Pool2DParams, xp, yp []T, ap []int32, oh, ow int) {
	hs := oh*p.StrideH - p.PadTop
	khLo, khHi := taps(hs, p.DilH, p.KH, p.H)
	ws := ow*p.StrideW - p.PadLeft
	kwLo, kwHi := taps(ws, p.DilW, p.KW, p.W)
	o := oh*p.OutW + ow
	if khLo >= khHi || kwLo >= kwHi {
		yp[o] = 0
		if ap != nil {
			ap[o] = -1
		}
		return
	}
	best := (hs+khLo*p.DilH)*p.W + ws + kwLo*p.DilW
	bv := xp[best]
	for kh := khLo; kh < khHi; kh++ {
		row := (hs + kh*p.DilH) * p.W
		for kw := kwLo; kw < kwHi; kw++ {
			i := row + ws + kw*p.DilW
			if v := xp[i]; v > bv || v != v {
				bv, best = v, i
			}
		}
	}
	yp[o] = bv
	if ap != nil {
		ap[o] = int32(best)
	}
}

// MaxPool2DBackward computes dx, the gradient with respect to x, by adding each output
// gradient dy to the input cell of its window's maximum, which it finds again in x, the
// forward pass's input, by [MaxPool2DForward]'s rules (so the same cell, a plane at a
// time): a training step keeps nothing for a max pooling where it keeps its input anyway
// (a Relu's output, which the Relu's gradient reads), rather than the positions (as many
// as the outputs). dx is overwritten.
func MaxPool2DBackward[T Float](p Pool2DParams, x, dy, dx []T) {
	const name = "MaxPool2DBackward"
	p = p.mustValid(name)
	need(name, "x", x, p.XLen())
	need(name, "dy", dy, p.YLen())
	need(name, "dx", dx, p.XLen())
	HW, OHW := p.H*p.W, p.OutH*p.OutW
	planes := p.N * p.C
	search := newWindowSearch[T](p)
	parallelFor(planes, workers(planes, OHW*p.KH*p.KW+HW), func(_, lo, hi int) {
		ap := getInt32s(OHW)
		yp := getBuf[T](OHW)
		defer putInt32s(ap)
		defer putBuf(yp)
		var bufs windowSearchBufs
		if search != nil {
			bufs = search.bufs()
			defer bufs.put()
		}
		searched := 0
		for pl := lo; pl < hi; pl++ {
			if xp := x[pl*HW : (pl+1)*HW]; search == nil {
				maxPoolPlane(p, xp, yp, ap)
			} else if searchPlane(search, p, xp, yp, ap, bufs, false) {
				searched++
			}
			scatterMax(ap, dy[pl*OHW:(pl+1)*OHW], dx[pl*HW:(pl+1)*HW])
		}
		if search != nil {
			search.kern.searchedPlanes.Add(int64(searched))
		}
	})
}

// MaxPool2DBackwardAt computes dx like [MaxPool2DBackward], from the positions
// [MaxPool2DForward] gave (argmax, one per output, -1 for a window without an input
// cell) instead of the input: a training step that keeps the positions rather than the
// input. dx is overwritten.
func MaxPool2DBackwardAt[T Float](p Pool2DParams, argmax []int32, dy, dx []T) {
	const name = "MaxPool2DBackwardAt"
	p = p.mustValid(name)
	need(name, "argmax", argmax, p.YLen())
	need(name, "dy", dy, p.YLen())
	need(name, "dx", dx, p.XLen())
	HW, OHW := p.H*p.W, p.OutH*p.OutW
	planes := p.N * p.C
	parallelFor(planes, workers(planes, OHW+HW), func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			scatterMax(argmax[pl*OHW:(pl+1)*OHW], dy[pl*OHW:(pl+1)*OHW], dx[pl*HW:(pl+1)*HW])
		}
	})
}

// scatterMax sets a plane's gradient dx: each output gradient dy[o] added to the cell
// argmax[o] (none where it is -1), in the order of the outputs, the rest 0.
func scatterMax[T Float](argmax []int32, dy, dx []T) {
	clear(dx)
	for o, i := range argmax {
		if i >= 0 {
			dx[i] += dy[o]
		}
	}
}

// windowSearch finds the cells of a plane's max pooling windows that lie inside the
// input with the vector search of the kernel in use (gemmKernel.firstMax): for each
// window, the first tap in row-major order whose value equals the window's maximum,
// as maxPoolPlane's rule (a +0 and a -0 are equal there too). Columns of a stride-2
// pooling are first split into their two phases (gemmKernel.evenOdd), so that a tap's
// values for consecutive windows are consecutive. Windows that reach into the padding
// take maxPoolWindow; a plane with a NaN anywhere in the searched cells (or infinities
// of both signs, whose sum is NaN) is pooled by maxPoolPlane.
type windowSearch struct {
	kern       *gemmKernel
	oh0, oh1   int // the rows of windows inside the input
	ow0, n     int // their first column and count
	hs0, c0    int // the first input row and column they read
	inRows     int // the input rows they read
	even, odd  int // a row's values in the even and odd phase (stride 2)
	offs       []int
	planeOffs  []int32 // each tap's offset in the plane from its window's first cell
	rowStride  int     // from one window row to the next in the searched values
	phaseSplit bool
}

// windowSearchMaxTaps bounds the window size the vector search takes.
const windowSearchMaxTaps = 64

// newWindowSearch returns the search for p's windows, or nil where the kernel has no
// vector search, T is not float32, or p has a dilation, a column stride above 2 or no
// window inside the input.
func newWindowSearch[T Float](p Pool2DParams) *windowSearch {
	kern := packedKernel[T]()
	if kern == nil || kern.firstMax == nil || p.DilH != 1 || p.DilW != 1 || p.StrideW > 2 || p.KH*p.KW > windowSearchMaxTaps ||
		p.StrideW == 2 && kern.evenOdd == nil {
		return nil
	}
	s := &windowSearch{kern: kern, phaseSplit: p.StrideW == 2}
	s.oh0, s.oh1 = colRange(-p.PadTop, p.StrideH, p.H-(p.KH-1), p.OutH)
	ow0, ow1 := colRange(-p.PadLeft, p.StrideW, p.W-(p.KW-1), p.OutW)
	if s.oh0 >= s.oh1 || ow0 >= ow1 {
		return nil
	}
	s.ow0, s.n = ow0, ow1-ow0
	s.hs0, s.c0 = s.oh0*p.StrideH-p.PadTop, ow0*p.StrideW-p.PadLeft
	s.inRows = (s.oh1-1-s.oh0)*p.StrideH + p.KH
	rowLen := p.W
	if s.phaseSplit {
		s.even, s.odd = s.n+(p.KW-1)/2, s.n+(p.KW-2)/2
		rowLen = s.even + s.odd
	}
	s.rowStride = p.StrideH * rowLen
	s.offs, s.planeOffs = make([]int, 0, p.KH*p.KW), make([]int32, 0, p.KH*p.KW)
	for kh := 0; kh < p.KH; kh++ {
		for kw := 0; kw < p.KW; kw++ {
			off := kw
			if s.phaseSplit {
				off = kw / 2
				if kw%2 == 1 {
					off += s.even
				}
			}
			s.offs = append(s.offs, kh*rowLen+off)
			s.planeOffs = append(s.planeOffs, int32(kh*p.W+kw))
		}
	}
	return s
}

// windowSearchBufs are a worker's buffers for windowSearch.positions.
type windowSearchBufs struct {
	phases []float32
	codes  []int32
}

func (s *windowSearch) bufs() windowSearchBufs {
	b := windowSearchBufs{codes: getInt32s((s.oh1 - s.oh0) * s.n)}
	if s.phaseSplit {
		// One value past the last row: evenOdd writes as many odd values as even ones.
		b.phases = getBuf[float32](s.inRows*(s.even+s.odd) + 1)
	}
	return b
}

func (b windowSearchBufs) put() {
	putInt32s(b.codes)
	if b.phases != nil {
		putBuf(b.phases)
	}
}

// positions sets ap at the windows inside the input of the plane xp, and reports
// whether it did (false when a searched value is NaN, or +Inf and -Inf both are).
func (s *windowSearch) positions(p Pool2DParams, xp []float32, ap []int32, b windowSearchBufs) bool {
	x, xs := xp[s.hs0*p.W+s.c0:], p.StrideH*p.W
	if s.phaseSplit {
		pairs := min(s.even, (p.W-s.c0)/2)
		rowLen := s.even + s.odd
		s.kern.evenOdd(pairs, &x[0], &b.phases[0], &b.phases[s.even], s.inRows, p.W, rowLen)
		if pairs < s.even { // the last even value has no odd one after it in the row
			for r := 0; r < s.inRows; r++ {
				b.phases[r*rowLen+pairs] = x[r*p.W+2*pairs]
			}
		}
		x, xs = b.phases, s.rowStride
	}
	rows := s.oh1 - s.oh0
	if s.kern.firstMax(s.n, len(s.offs), &s.offs[0], &x[0], &b.codes[0], rows, xs, s.n) {
		return false
	}
	for r := 0; r < rows; r++ {
		oh := s.oh0 + r
		first := int32((oh*p.StrideH-p.PadTop)*p.W + s.c0)
		apr := ap[oh*p.OutW+s.ow0 : oh*p.OutW+s.ow0+s.n]
		for j, code := range b.codes[r*s.n : (r+1)*s.n] {
			apr[j] = first + int32(j*p.StrideW) + s.planeOffs[code]
		}
	}
	return true
}

// searchPlane sets the positions ap of the plane xp's maxima by s, and its outputs yp
// when setY is set (else only those of the windows reaching into the padding), and
// reports whether the search did; a plane whose search finds a NaN is pooled by
// maxPoolPlane.
func searchPlane[T Float](s *windowSearch, p Pool2DParams, xp, yp []T, ap []int32, b windowSearchBufs, setY bool) bool {
	if !s.positions(p, as32(xp), ap, b) {
		maxPoolPlane(p, xp, yp, ap)
		return false
	}
	windowSearchBorders(s, p, xp, yp, ap)
	if !setY {
		return true
	}
	for oh := s.oh0; oh < s.oh1; oh++ {
		o := oh*p.OutW + s.ow0
		for j, i := range ap[o : o+s.n] {
			yp[o+j] = xp[i]
		}
	}
	return true
}

// windowSearchBorders sets ap (and yp) by maxPoolWindow at the windows that positions leaves:
// those reaching into the padding.
func windowSearchBorders[T Float](s *windowSearch, p Pool2DParams, xp, yp []T, ap []int32) {
	for oh := 0; oh < p.OutH; oh++ {
		if oh < s.oh0 || oh >= s.oh1 {
			for ow := 0; ow < p.OutW; ow++ {
				maxPoolWindow(p, xp, yp, ap, oh, ow)
			}
			continue
		}
		for ow := 0; ow < s.ow0; ow++ {
			maxPoolWindow(p, xp, yp, ap, oh, ow)
		}
		for ow := s.ow0 + s.n; ow < p.OutW; ow++ {
			maxPoolWindow(p, xp, yp, ap, oh, ow)
		}
	}
}

// avgDivisor returns the divisor of the window starting at (hs, ws).
func (p Pool2DParams) avgDivisor(hs, ws, khLo, khHi, kwLo, kwHi int) int {
	if p.CountIncludePad {
		return paddedTaps(hs, p.DilH, p.KH, p.H, p.PadBottom) * paddedTaps(ws, p.DilW, p.KW, p.W, p.PadRight)
	}
	return (khHi - khLo) * (kwHi - kwLo)
}

// AvgPool2DForward computes y = averagepool(x): each output is the sum of
// its window's cells inside the input divided by the divisor that
// p.CountIncludePad selects (see [Pool2DParams]). A window whose divisor is
// zero gives 0.
func AvgPool2DForward[T Float](p Pool2DParams, x, y []T) {
	const name = "AvgPool2DForward"
	p = p.mustValid(name)
	need(name, "x", x, p.XLen())
	need(name, "y", y, p.YLen())
	if avgPoolTaps(p, x, y) {
		return
	}
	HW, OHW := p.H*p.W, p.OutH*p.OutW
	planes := p.N * p.C
	parallelFor(planes, workers(planes, OHW*p.KH*p.KW), func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			xp := x[pl*HW : (pl+1)*HW]
			yp := y[pl*OHW : (pl+1)*OHW]
			for oh := 0; oh < p.OutH; oh++ {
				hs := oh*p.StrideH - p.PadTop
				khLo, khHi := taps(hs, p.DilH, p.KH, p.H)
				for ow := 0; ow < p.OutW; ow++ {
					ws := ow*p.StrideW - p.PadLeft
					kwLo, kwHi := taps(ws, p.DilW, p.KW, p.W)
					div := p.avgDivisor(hs, ws, khLo, khHi, kwLo, kwHi)
					if div == 0 {
						yp[oh*p.OutW+ow] = 0
						continue
					}
					var s T
					for kh := khLo; kh < khHi; kh++ {
						row := (hs + kh*p.DilH) * p.W
						for kw := kwLo; kw < kwHi; kw++ {
							s += xp[row+ws+kw*p.DilW]
						}
					}
					yp[oh*p.OutW+ow] = s / T(div)
				}
			}
		}
	})
}

// AvgPool2DBackward computes dx, the gradient of [AvgPool2DForward] with
// respect to x: each output gradient divided by its window's divisor is
// added to the window's input cells. dx is overwritten.
func AvgPool2DBackward[T Float](p Pool2DParams, dy, dx []T) {
	const name = "AvgPool2DBackward"
	p = p.mustValid(name)
	need(name, "dy", dy, p.YLen())
	need(name, "dx", dx, p.XLen())
	HW, OHW := p.H*p.W, p.OutH*p.OutW
	planes := p.N * p.C
	parallelFor(planes, workers(planes, OHW*p.KH*p.KW), func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			dxp := dx[pl*HW : (pl+1)*HW]
			clear(dxp)
			dyp := dy[pl*OHW : (pl+1)*OHW]
			for oh := 0; oh < p.OutH; oh++ {
				hs := oh*p.StrideH - p.PadTop
				khLo, khHi := taps(hs, p.DilH, p.KH, p.H)
				for ow := 0; ow < p.OutW; ow++ {
					ws := ow*p.StrideW - p.PadLeft
					kwLo, kwHi := taps(ws, p.DilW, p.KW, p.W)
					div := p.avgDivisor(hs, ws, khLo, khHi, kwLo, kwHi)
					if div == 0 {
						continue
					}
					g := dyp[oh*p.OutW+ow] / T(div)
					for kh := khLo; kh < khHi; kh++ {
						row := (hs + kh*p.DilH) * p.W
						for kw := kwLo; kw < kwHi; kw++ {
							dxp[row+ws+kw*p.DilW] += g
						}
					}
				}
			}
		}
	})
}

// GlobalAvgPoolForward computes y [N*C] as the mean of each of the N*C
// planes of x, each plane holding hw = H*W (or any spatial product) values; the
// planes are split across the cores, each summed alone: in float32 vector lanes where
// the kernel in use has the normalisation's loops (as a BatchNormalization's mean is),
// the values past the last whole vector added in float64.
func GlobalAvgPoolForward[T Float](n, c, hw int, x, y []T) {
	const name = "GlobalAvgPoolForward"
	need(name, "x", x, n*c*hw)
	need(name, "y", y, n*c)
	planes := n * c
	l := normLoopsFor[T]()
	parallelFor(planes, workers(planes, hw), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			y[i] = T(addPlaneSum(l, 0, x[i*hw:(i+1)*hw]) / float64(hw))
		}
	})
}

// GlobalAvgPoolBackward computes dx [N*C*hw] from dy [N*C]: each plane gets
// dy/hw. dx is overwritten.
func GlobalAvgPoolBackward[T Float](n, c, hw int, dy, dx []T) {
	const name = "GlobalAvgPoolBackward"
	need(name, "dy", dy, n*c)
	need(name, "dx", dx, n*c*hw)
	planes := n * c
	parallelFor(planes, workers(planes, hw), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			fill(dx[i*hw:(i+1)*hw], dy[i]/T(hw))
		}
	})
}

// GlobalMaxPoolForward computes y [N*C] as the maximum of each plane of x
// and, when argmax is not nil, its position within the plane (first on ties;
// a NaN wins).
func GlobalMaxPoolForward[T Float](n, c, hw int, x, y []T, argmax []int32) {
	const name = "GlobalMaxPoolForward"
	need(name, "x", x, n*c*hw)
	need(name, "y", y, n*c)
	if argmax != nil {
		need(name, "argmax", argmax, n*c)
	}
	if hw < 1 {
		panic("kernels: " + name + ": empty planes")
	}
	for i := 0; i < n*c; i++ {
		xp := x[i*hw : (i+1)*hw]
		best, bv := 0, xp[0]
		for j, v := range xp {
			if v > bv || v != v {
				best, bv = j, v
			}
		}
		y[i] = bv
		if argmax != nil {
			argmax[i] = int32(best)
		}
	}
}

// GlobalMaxPoolBackward computes dx: each plane's gradient is dy at its
// argmax and zero elsewhere. dx is overwritten.
func GlobalMaxPoolBackward[T Float](n, c, hw int, dy []T, argmax []int32, dx []T) {
	const name = "GlobalMaxPoolBackward"
	need(name, "dy", dy, n*c)
	need(name, "argmax", argmax, n*c)
	need(name, "dx", dx, n*c*hw)
	clear(dx[:n*c*hw])
	for i := 0; i < n*c; i++ {
		dx[i*hw+int(argmax[i])] = dy[i]
	}
}
