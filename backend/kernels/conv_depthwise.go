package kernels

// Depthwise convolutions (MobileNet's and EfficientNet's) on padded planes.
// The input plane is copied once into a zero-bordered buffer, split by
// stride into phases (phase (a, b) holds the padded rows a, a+StrideH, ...
// and columns b, b+StrideW, ...; stride 1 has one phase, the padded plane),
// each wq = ⌈Wp/StrideW⌉ wide. The output is computed in rows of the same
// width (the last wq-OutW values of each row are not wanted). A filter tap
// (kh, kw) is then one phase shifted by a constant, so each tap reads the
// whole plane at one offset: the forward pass computes a plane in one call of
// the kernel's vector loop over all its taps (dwTaps: eight vectors of outputs
// in registers, each tap's products added in order, the store once, with the
// bias and a clamp), the gradients one axpy or dot per tap, instead of one per
// output row: on the 7×7 and 14×14 maps of these networks the per-row calls
// were most of the work.
//
// The gradients take zeros where the unwanted values sit. An infinite input
// value can therefore turn the weight gradient of a tap that never reads it
// into NaN (0·Inf); a run with infinite activations has diverged anyway.

// depthwisePadded is the phase layout of a depthwise convolution's planes.
type depthwisePadded struct {
	wq, hq int // a phase's width and height
	phase  int // values per phase: wq·hq
	span   int // values an output plane covers in rows of wq: (OutH-1)·wq+OutW
}

// paddedLayout returns the phase layout of p's planes.
func (p Conv2DParams) paddedLayout() depthwisePadded {
	wp, hp := p.PadLeft+p.W+p.PadRight, p.PadTop+p.H+p.PadBottom
	wq, hq := (wp+p.StrideW-1)/p.StrideW, (hp+p.StrideH-1)/p.StrideH
	return depthwisePadded{wq: wq, hq: hq, phase: wq * hq, span: (p.OutH-1)*wq + p.OutW}
}

// size is the length of the phase buffer.
func (l depthwisePadded) size(p Conv2DParams) int { return p.StrideH * p.StrideW * l.phase }

// tap returns the offset, in the phase buffer, of filter tap (kh, kw).
func (l depthwisePadded) tap(p Conv2DParams, kh, kw int) int {
	dh, dw := kh*p.DilH, kw*p.DilW
	ph := (dh%p.StrideH)*p.StrideW + dw%p.StrideW
	return ph*l.phase + dh/p.StrideH*l.wq + dw/p.StrideW
}

// padPlane copies the H×W plane x into the phase buffer xp. Only the cells of
// the plane are written: the zeros around them are the caller's, who clears xp
// once and then pads plane after plane into it.
func padPlane[T Float](p Conv2DParams, l depthwisePadded, x, xp []T) {
	xp = xp[:l.size(p)]
	kern := packedKernel[T]()
	if p.StrideH == 1 && p.StrideW == 1 { // one phase: the padded plane
		copyPlaneRows(kern, p.W, p.H, x, p.W, xp[p.PadTop*l.wq+p.PadLeft:], l.wq)
		return
	}
	if p.StrideW == 2 && kern != nil && kern.evenOdd != nil && p.W >= 2 {
		// The even and odd columns in one pass (MobileNet's and EfficientNet's
		// stride-2 layers), one call for each class of rows going to one row phase:
		// w = 2i goes to column phase c%2 at c/2 with c = PadLeft+2i.
		c0, c1 := p.PadLeft, p.PadLeft+1
		for h0 := 0; h0 < min(p.StrideH, p.H); h0++ {
			r := p.PadTop + h0
			base := (r%p.StrideH)*p.StrideW*l.phase + r/p.StrideH*l.wq
			rows := (p.H - h0 + p.StrideH - 1) / p.StrideH
			last := base + (rows-1)*l.wq + p.W/2 - 1 // the last row's last pair, checked
			_, _ = xp[last+(c0%2)*l.phase+c0/2], xp[last+(c1%2)*l.phase+c1/2]
			kern.evenOdd(p.W/2, &as32(x)[h0*p.W], &as32(xp)[base+(c0%2)*l.phase+c0/2], &as32(xp)[base+(c1%2)*l.phase+c1/2],
				rows, p.StrideH*p.W, l.wq)
		}
		if p.W%2 == 1 {
			for h := 0; h < p.H; h++ {
				r, c := p.PadTop+h, p.PadLeft+p.W-1
				xp[(r%p.StrideH)*p.StrideW*l.phase+r/p.StrideH*l.wq+(c%2)*l.phase+c/2] = x[(h+1)*p.W-1]
			}
		}
		return
	}
	for h := 0; h < p.H; h++ {
		r := p.PadTop + h
		base := (r%p.StrideH)*p.StrideW*l.phase + r/p.StrideH*l.wq
		row := x[h*p.W : (h+1)*p.W]
		// Column w goes to phase (PadLeft+w) % StrideW at (PadLeft+w) / StrideW: the
		// columns of one phase are every StrideW-th, to consecutive places.
		for w0 := 0; w0 < min(p.StrideW, p.W); w0++ {
			c := p.PadLeft + w0
			dst := xp[base+(c%p.StrideW)*l.phase+c/p.StrideW:]
			for i, w := 0, w0; w < p.W; i, w = i+1, w+p.StrideW {
				dst[i] = row[w]
			}
		}
	}
}

// copyPlaneRows sets dst[r·ds+j] = src[r·ss+j] for j < n and r < rows, in kern's
// vector loop where it has one (one call a plane: a copy a row was most of the work
// on 7×7 and 14×14 maps).
func copyPlaneRows[T Float](kern *gemmKernel, n, rows int, src []T, ss int, dst []T, ds int) {
	if n <= 0 || rows <= 0 {
		return
	}
	_, _ = src[(rows-1)*ss+n-1], dst[(rows-1)*ds+n-1] // the last row's last value, checked
	if kern != nil && kern.copyRows != nil {
		kern.copyRows(n, &as32(src)[0], &as32(dst)[0], rows, ss, ds)
		return
	}
	for r := range rows {
		copy(dst[r*ds:r*ds+n], src[r*ss:r*ss+n])
	}
}

// unpadPlane adds nothing and copies the inner H×W values of the phase
// buffer xp into the plane x: the inverse of padPlane.
func unpadPlane[T Float](p Conv2DParams, l depthwisePadded, xp, x []T) {
	if p.StrideH == 1 && p.StrideW == 1 {
		copyPlaneRows(packedKernel[T](), p.W, p.H, xp[p.PadTop*l.wq+p.PadLeft:], l.wq, x, p.W)
		return
	}
	for h := 0; h < p.H; h++ {
		r := p.PadTop + h
		base := (r%p.StrideH)*p.StrideW*l.phase + r/p.StrideH*l.wq
		row := x[h*p.W : (h+1)*p.W]
		if p.StrideW == 1 {
			copy(row, xp[base+p.PadLeft:])
			continue
		}
		for w0 := 0; w0 < min(p.StrideW, p.W); w0++ {
			c := p.PadLeft + w0
			src := xp[base+(c%p.StrideW)*l.phase+c/p.StrideW:]
			for i, w := 0, w0; w < p.W; i, w = i+1, w+p.StrideW {
				row[w] = src[i]
			}
		}
	}
}

// spreadPlane copies the OutH×OutW plane y into rows of width wq (span values).
// The values between the rows are the caller's, who clears yq once: nothing else
// writes them.
func spreadPlane[T Float](p Conv2DParams, l depthwisePadded, y, yq []T) {
	copyPlaneRows(packedKernel[T](), p.OutW, p.OutH, y, p.OutW, yq, l.wq)
}

// dwRowsMin is the narrowest output the depthwise forward pass computes row by row.
const dwRowsMin = 32

// tapsGroupMax is the most input channels per group a grouped convolution's forward
// pass takes through the taps' loop (depthwiseForward) rather than a product per image
// and group, and tapsGroupMaxSmall the most on output maps of at most tapsSmallMap
// values. A group's output plane then sums C/Group·KH·KW shifted planes, one vector
// load per multiply-add, where the products packed a few-row A and an im2col B per
// group and ran the groups one after another, each too small to split across the
// cores. One 3×3 layer on the Zen 5's two cores (BenchmarkConv2DGroups), taps against
// products: groups of 8 channels 59-81 against 35-53 GFLOP/s at 56×56 to 14×14 and 29
// against 7 at 7×7; of 24, 95-106 against 30-95; of 32, 96 against 128 at 56×56 and 74
// against 41 at 7×7; of 64, 89 against 239 at 56×56, 105 against 84 at 14×14.
const (
	tapsGroupMax      = 24
	tapsGroupMaxSmall = 64
	tapsSmallMap      = 14 * 14
)

// byTaps reports whether p's forward pass runs depthwiseForward's taps' loop: the
// depthwise convolutions (MobileNet's, EfficientNet's) and those of few channels per
// group (RegNet's 8-24, ResNeXt's 4-16; up to 64 on small maps).
func (p Conv2DParams) byTaps() bool {
	if p.Depthwise() {
		return true
	}
	cg := p.C / max(p.Group, 1)
	return p.Group > 1 && (cg <= tapsGroupMax || cg <= tapsGroupMaxSmall && p.OutH*p.OutW <= tapsSmallMap)
}

// depthwiseForward computes a depthwise convolution (or one of few input channels per
// group, byTaps) plane by plane: output channel m reads the C/Group input channels of
// its group through its filter, each input plane padded into the phase buffer, each
// filter tap of each input channel one shifted read of it; the planes stored as act(y).
func depthwiseForward[T Float](p Conv2DParams, x, w, bias, y []T, act Activation) {
	l := p.paddedLayout()
	cg, mg := p.C/p.Group, p.M/p.Group // input and output channels per group
	HW, OHW, KHW := p.H*p.W, p.OutH*p.OutW, p.KH*p.KW
	taps, size := cg*KHW, l.size(p)
	planes := p.N * p.M
	kern := packedKernel[T]()
	vector := kern != nil && kern.dwTaps != nil
	offs := make([]int, taps) // each tap's offset in the phase buffers of the group
	for t := range offs {
		c, k := t/KHW, t%KHW
		offs[t] = c*size + l.tap(p, k/p.KW, k%p.KW)
	}
	// The taps' loop stores a clamp; a SiLU is applied to each plane as it is done,
	// while the plane is in cache (no pass over y after the convolution).
	floor, ceil := act.bounds()
	perPlane := !vector || act.Kind == SiLUActivation
	// Wide outputs are computed row by row straight into y; narrow ones (a few
	// vectors a row) over the whole span, in rows of wq, and copied out: fewer,
	// longer runs of the vector loop.
	byRows := vector && p.OutW >= dwRowsMin
	parallelFor(planes, workers(planes, OHW*taps), func(_, lo, hi int) {
		xp := getBuf[T](cg * size)
		clear(xp) // the zeros around every plane padded into it
		defer putBuf(xp)
		var yq []T
		if !byRows {
			yq = getBuf[T](l.span)
			defer putBuf(yq)
		}
		lastInput := -1
		var wm []T // the plane's filter, and its bias
		var b T
		taps32 := func(n, rows, xs, ys int, yd *float32) bool {
			kern.dwTaps(n, taps, &as32(wm)[0], &offs[0], &as32(xp)[0], yd, float32(b), floor, ceil, rows, xs, ys)
			return false
		}
		for pl := lo; pl < hi; pl++ {
			n, m := pl/p.M, pl%p.M
			if in := n*p.C + m/mg*cg; in != lastInput { // the group's first input plane
				for c := range cg {
					padPlane(p, l, x[(in+c)*HW:(in+c+1)*HW], xp[c*size:(c+1)*size])
				}
				lastInput = in
			}
			b = 0
			if bias != nil {
				b = bias[m]
			}
			wm = w[m*taps : (m+1)*taps]
			yp := y[pl*OHW : (pl+1)*OHW]
			if vector {
				planeByTaps(kern, l, p.OutH, p.OutW, as32(yq), as32(yp), taps32)
			} else {
				depthwiseTapsGo(l, offs, wm, b, xp, yq)
				copyPlaneRows(kern, p.OutW, p.OutH, yq, l.wq, yp, p.OutW)
			}
			if perPlane {
				activationSerial(act, yp)
			}
		}
	})
}

// planeByTaps computes one output plane yp (outH×outW) by loop, one of the kernel's
// taps' loops over the phase layout l (dwTaps, maxTaps), given its arguments n, rows,
// xs, ys and the output: row by row straight into yp where yq is nil (outputs at least
// dwRowsMin wide), else over the whole span in rows of wq into yq, then copied out. It
// returns what loop returns.
func planeByTaps(kern *gemmKernel, l depthwisePadded, outH, outW int, yq, yp []float32, loop func(n, rows, xs, ys int, y *float32) bool) bool {
	if yq == nil {
		return loop(outW, outH, l.wq, outW, &yp[0])
	}
	flagged := loop(l.span, 1, 0, 0, &yq[0])
	copyPlaneRows(kern, outW, outH, yq, l.wq, yp, outW)
	return flagged
}

// depthwiseTapsGo computes one plane in rows of wq, yq = b + Σ_t wm[t]·(tap t of xp,
// at offs[t]): the first tap with the bias, then the others added, an axpy each.
func depthwiseTapsGo[T Float](l depthwisePadded, offs []int, wm []T, b T, xp, yq []T) {
	affineT(wm[0], b, xp[offs[0]:offs[0]+l.span], yq)
	for t := 1; t < len(wm); t++ {
		axpyT(wm[t], xp[offs[t]:offs[t]+l.span], yq)
	}
}

// depthwiseBackwardData computes dx plane by plane: input channel c gathers
// the gradients of its M/C output channels through their filters.
func depthwiseBackwardData[T Float](p Conv2DParams, w, dy, dx []T) {
	l := p.paddedLayout()
	mult := p.M / p.C
	HW, OHW, KHW := p.H*p.W, p.OutH*p.OutW, p.KH*p.KW
	planes := p.N * p.C
	parallelFor(planes, workers(planes, mult*OHW*KHW), func(_, lo, hi int) {
		dxp := getBuf[T](l.size(p))
		dyq := getBuf[T](l.span)
		clear(dyq) // the zeros between its rows (spreadPlane)
		defer putBuf(dxp)
		defer putBuf(dyq)
		for pl := lo; pl < hi; pl++ {
			n, c := pl/p.C, pl%p.C
			clear(dxp)
			for j := 0; j < mult; j++ {
				m := c*mult + j
				spreadPlane(p, l, dy[(n*p.M+m)*OHW:(n*p.M+m+1)*OHW], dyq)
				wm := w[m*KHW : (m+1)*KHW]
				for kh := 0; kh < p.KH; kh++ {
					for kw := 0; kw < p.KW; kw++ {
						o := l.tap(p, kh, kw)
						axpyT(wm[kh*p.KW+kw], dyq, dxp[o:o+l.span])
					}
				}
			}
			unpadPlane(p, l, dxp, dx[pl*HW:(pl+1)*HW])
		}
	})
}

// depthwiseBackwardWeight computes dw filter by filter, summing over the
// batch in order (deterministically).
func depthwiseBackwardWeight[T Float](p Conv2DParams, x, dy, dw []T) {
	l := p.paddedLayout()
	mult := p.M / p.C
	HW, OHW, KHW := p.H*p.W, p.OutH*p.OutW, p.KH*p.KW
	parallelFor(p.M, workers(p.M, p.N*OHW*KHW), func(_, lo, hi int) {
		xp := getBuf[T](l.size(p))
		clear(xp) // the zeros around every plane padded into it
		dyq := getBuf[T](l.span)
		clear(dyq) // the zeros between its rows (spreadPlane)
		sums := make([]float64, KHW)
		defer putBuf(xp)
		defer putBuf(dyq)
		for m := lo; m < hi; m++ {
			c := m / mult
			clear(sums)
			for n := 0; n < p.N; n++ {
				padPlane(p, l, x[(n*p.C+c)*HW:(n*p.C+c+1)*HW], xp)
				spreadPlane(p, l, dy[(n*p.M+m)*OHW:(n*p.M+m+1)*OHW], dyq)
				for kh := 0; kh < p.KH; kh++ {
					for kw := 0; kw < p.KW; kw++ {
						o := l.tap(p, kh, kw)
						sums[kh*p.KW+kw] += float64(dotT(dyq, xp[o:o+l.span]))
					}
				}
			}
			for i, s := range sums {
				dw[m*KHW+i] = T(s)
			}
		}
	})
}
