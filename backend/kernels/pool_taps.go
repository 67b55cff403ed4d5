package kernels

import (
	"math"
	"slices"
	"sync/atomic"
)

// maxPoolTaps pools p's planes without the positions (an inference's forward pass) on
// the depthwise convolution's phase layout (conv_depthwise.go): each plane copied into
// a buffer bordered with -Inf (the pads and a ceil-mode overhang), split by stride into
// phases, so that each window cell (kh, kw) is one phase read at a constant offset, and
// the outputs are the maximum of those reads, whole rows (or whole planes, narrow ones)
// of windows in one call of kern.maxTaps. The window search (pool.go) found each
// window's first maximum's position and read its value back; this takes the same value
// (ties to the first cell in row-major order, so the same zero's sign). A -Inf border
// cell never beats an input cell, and every window holds one, so the borders change
// nothing. A plane whose windows' sums come out NaN (a NaN in it, or infinities of both
// signs) is pooled again by maxPoolWindow, where a NaN wins. It reports false, doing
// nothing, where the kernel has no maxTaps or some window holds no input cell.
func maxPoolTaps[T Float](p Pool2DParams, x, y []T) bool {
	kern := packedKernel[T]()
	if kern == nil || kern.maxTaps == nil || !is32[T]() {
		return false
	}
	// Every window must hold an input cell (one without gives 0, by the general rule).
	for oh := range p.OutH {
		if lo, hi := taps(oh*p.StrideH-p.PadTop, p.DilH, p.KH, p.H); lo >= hi {
			return false
		}
	}
	for ow := range p.OutW {
		if lo, hi := taps(ow*p.StrideW-p.PadLeft, p.DilW, p.KW, p.W); lo >= hi {
			return false
		}
	}
	HW, OHW := p.H*p.W, p.OutH*p.OutW
	poolPlanesByTaps(kern, p, as32(x), as32(y), float32(math.Inf(-1)),
		func(offs []int, xp, yd *float32, n, rows, xs, ys int) bool {
			return kern.maxTaps(n, len(offs), &offs[0], xp, yd, rows, xs, ys)
		},
		func(pl int, nan bool) bool {
			if !nan {
				return true
			}
			for oh := range p.OutH {
				for ow := range p.OutW {
					maxPoolWindow(p, x[pl*HW:(pl+1)*HW], y[pl*OHW:(pl+1)*OHW], nil, oh, ow)
				}
			}
			return false
		}, &kern.maxTapPlanes)
	return true
}

// avgPoolTaps computes p's average pooling by the depthwise convolution's taps' loop
// (kern.dwTaps) on the same phase layout, bordered with zeros: each window's sum, its
// cells added in row-major order from +0 (a border cell adds +0, which changes no sum
// that starts from +0), then divided by its divisor: the bits of the window rule. Where
// every window has the same divisor and it is a power of two (DenseNet's 2×2 pools),
// each cell is multiplied by its reciprocal as it is added, which scales every partial
// sum exactly; otherwise the sums are divided in a pass over each plane. It reports
// false, doing nothing, where the kernel has no taps' loop.
func avgPoolTaps[T Float](p Pool2DParams, x, y []T) bool {
	kern := packedKernel[T]()
	if kern == nil || kern.dwTaps == nil || !is32[T]() {
		return false
	}
	OHW, KHW := p.OutH*p.OutW, p.KH*p.KW
	// Each output's divisor; one for all, a power of two, goes into the weights.
	divs := make([]int, OHW)
	for oh := range p.OutH {
		hs := oh*p.StrideH - p.PadTop
		khLo, khHi := taps(hs, p.DilH, p.KH, p.H)
		for ow := range p.OutW {
			ws := ow*p.StrideW - p.PadLeft
			kwLo, kwHi := taps(ws, p.DilW, p.KW, p.W)
			divs[oh*p.OutW+ow] = p.avgDivisor(hs, ws, khLo, khHi, kwLo, kwHi)
		}
	}
	weight := float32(1)
	if d := divs[0]; d > 0 && d&(d-1) == 0 && !slices.ContainsFunc(divs, func(v int) bool { return v != d }) {
		weight, divs = 1/float32(d), nil
	}
	wts := make([]float32, KHW)
	fill(wts, weight)
	inf := float32(math.Inf(1))
	ys := as32(y)
	poolPlanesByTaps(kern, p, as32(x), ys, 0,
		func(offs []int, xp, yd *float32, n, rows, xs, ys int) bool {
			kern.dwTaps(n, KHW, &wts[0], &offs[0], xp, yd, 0, -inf, inf, rows, xs, ys)
			return false
		},
		func(pl int, _ bool) bool {
			yp := ys[pl*OHW : (pl+1)*OHW]
			for o, d := range divs {
				if d == 0 {
					yp[o] = 0
				} else {
					yp[o] /= float32(d)
				}
			}
			return false
		}, nil)
	return true
}

// poolPlanesByTaps runs p's planes of x through loop, a taps' loop (given the window
// cells' offsets, the phase buffer and its other arguments), on the phase layout of
// tapsLayout, each plane copied inside a border of border values, its outputs into y
// (planeByTaps); then done(pl, flagged) finishes plane pl with what the loop returned
// and reports whether it counts in counted (nil: no count).
func poolPlanesByTaps(kern *gemmKernel, p Pool2DParams, x, y []float32, border float32,
	loop func(offs []int, xp, y *float32, n, rows, xs, ys int) bool,
	done func(pl int, flagged bool) bool, counted *atomic.Int64) {
	q, l, offs := p.tapsLayout()
	HW, OHW := p.H*p.W, p.OutH*p.OutW
	planes := p.N * p.C
	parallelFor(planes, workers(planes, OHW*p.KH*p.KW), func(_, lo, hi int) {
		xp := getBuf[float32](l.size(q))
		defer putBuf(xp)
		fill(xp, border) // each plane's cells are copied inside it
		var yq []float32
		if p.OutW < dwRowsMin { // as the depthwise planes: narrow ones over the span
			yq = getBuf[float32](l.span)
			defer putBuf(yq)
		}
		run := func(n, rows, xs, ys int, yd *float32) bool { return loop(offs, &xp[0], yd, n, rows, xs, ys) }
		n := int64(0)
		for pl := lo; pl < hi; pl++ {
			padPlane(q, l, x[pl*HW:(pl+1)*HW], xp)
			if done(pl, planeByTaps(kern, l, p.OutH, p.OutW, yq, y[pl*OHW:(pl+1)*OHW], run)) {
				n++
			}
		}
		if counted != nil {
			counted.Add(n)
		}
	})
}

// tapsLayout returns the one-plane convolution whose phase layout maxPoolTaps and
// avgPoolTaps pool on (p's windows, a ceil-mode overhang past the bottom and right pads
// taken as padding too), the layout, and each window cell's offset in it, in row-major
// order.
func (p Pool2DParams) tapsLayout() (Conv2DParams, depthwisePadded, []int) {
	overH := max(0, (p.OutH-1)*p.StrideH+(p.KH-1)*p.DilH+1-(p.PadTop+p.H+p.PadBottom))
	overW := max(0, (p.OutW-1)*p.StrideW+(p.KW-1)*p.DilW+1-(p.PadLeft+p.W+p.PadRight))
	q := Conv2DParams{N: 1, C: 1, H: p.H, W: p.W, M: 1, KH: p.KH, KW: p.KW,
		StrideH: p.StrideH, StrideW: p.StrideW, DilH: p.DilH, DilW: p.DilW,
		PadTop: p.PadTop, PadLeft: p.PadLeft, PadBottom: p.PadBottom + overH, PadRight: p.PadRight + overW,
		OutH: p.OutH, OutW: p.OutW}.norm()
	l := q.paddedLayout()
	offs := make([]int, p.KH*p.KW)
	for t := range offs {
		offs[t] = l.tap(q, t/p.KW, t%p.KW)
	}
	return q, l, offs
}
