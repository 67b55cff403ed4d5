package kernels

import "runtime"

// Small output maps at small batches (ResNet's last stage at batch 1: 7×7 maps of 512
// channels) computed with the output positions as the product's rows. Every other
// path's product has the positions as C's columns, in panels of nr (32 on AVX-512):
// 49 positions are two panels, 64 columns computed for 49 kept, a quarter of the
// multiply-adds thrown away. Here Cᵀ = patches·Wᵀ: A's rows are the positions
// (gathered from the images' padded copies as A is packed, mr to a panel: a partial
// panel costs only its rows), B is the weights transposed (packed whole once, kept in
// the cache with constant weights), C's columns the output channels (a multiple of nr
// in the usual networks); then y = act(Cᵀᵀ + bias), a pass over the output.

// positionsMaxRows caps the rows of one product (the positions of a group of images):
// C's scratch and the group's padded copies stay small, and a large batch keeps its
// usual path (byPositionsOn).
const positionsMaxRows = 512

// byPositionsOn reports whether p's forward pass on kern runs with the positions as
// the product's rows (convForwardByPositions): an ungrouped convolution whose usual
// product would throw away a fifth or more of the columns it computes, where this one's
// output channels fill their panels well enough to waste less.
func (p Conv2DParams) byPositionsOn(kern *gemmKernel) bool {
	if kern == nil || p.Group > 1 || p.winogradOn(kern) {
		return false
	}
	P := p.OutH * p.OutW
	kept, computed := P, kern.panelCols(P)
	switch {
	case p.forwardFastOn(kern) && p.paddedOn(kern):
		computed = kern.panelCols(p.paddedColumns(kern, p.paddedLayout().wq))
	case p.forwardFastOn(kern):
		g := gatherGroupSize(p)
		kept, computed = g*P, kern.panelCols(g*P)
	case !p.direct():
		return false
	}
	own := float64(p.M) / float64(kern.panelCols(p.M))
	return float64(kept) < 0.8*own*float64(computed)
}

// positionsGroupSize is how many images share one product of convForwardByPositions.
func positionsGroupSize(p Conv2DParams) int {
	P := p.OutH * p.OutW
	return max(1, min(p.N, positionsMaxRows/P))
}

// convForwardByPositions is Conv2DForward on kern with the positions as the product's
// rows (see byPositionsOn), per group of images: A gathered from the group's padded
// copies (or from x itself where there is no padding) through positionOffsets and
// tapOffsets, B the weights transposed (bp: packed whole by the caller's cache, or nil
// to pack them here), C a scratch [g·P, M] written to y transposed with the bias (added
// to y with add) and act.
func convForwardByPositions(kern *gemmKernel, p Conv2DParams, x, w, bp, bias, y []float32, act Activation, add bool) {
	kern.positionRuns.Add(1)
	procs := runtime.GOMAXPROCS(0)
	K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
	padded := p.PadTop+p.PadBottom+p.PadLeft+p.PadRight > 0
	_, wp, plane := p.paddedDims() // the image itself where there is no padding
	g := positionsGroupSize(p)
	tab, pos := gatherOffsets(p, wp, plane, g)
	defer putInt32s(tab)
	defer putInt32s(pos)
	wt := dense(w, K, true)
	if bp == nil {
		bp = getBuf[float32](packedBLen(kern, K, p.M))
		defer putBuf(bp)
		packBWhole(kern, procs, wt, K, p.M, bp)
	}
	var xp []float32
	if padded {
		xp = getBuf[float32](g * p.C * plane)
		defer putBuf(xp)
	}
	// C's rows a cache line longer than its M columns: at a power-of-two stride the
	// transposing reads would all fall in the same few sets of the L1 cache.
	ldc := p.M + 16
	ct := getBuf[float32](g * P * ldc)
	defer putBuf(ct)
	xs, ys := p.C*p.H*p.W, p.M*P
	for n0 := 0; n0 < p.N; n0 += g {
		gi := min(g, p.N-n0)
		src := x[n0*xs : (n0+gi)*xs]
		if padded {
			padPlanes(p, x, xp, n0, gi, procs)
			src = xp[:gi*p.C*plane]
		}
		sgemmPacked(kern, procs, gemmArgs{
			m: gi * P, n: p.M, k: K, alpha: 1,
			a: matView{data: src, rows: axis{tab: pos[:gi*P]}, cols: axis{tab: tab}},
			b: wt, bp: bp, c: ct, ldc: ldc,
		})
		parallelFor(gi*p.M, min(procs, workers(gi*p.M, P)), func(_, lo, hi int) {
			for u := lo; u < hi; u++ {
				i, m := u/p.M, u%p.M
				row := y[(n0+i)*ys+m*P : (n0+i)*ys+(m+1)*P]
				col := ct[i*P*ldc+m:]
				var b float32
				if bias != nil {
					b = bias[m]
				}
				if add {
					for s := range row {
						row[s] += col[s*ldc] + b
					}
					continue
				}
				for s := range row {
					row[s] = col[s*ldc] + b
				}
			}
		})
		if act.Kind != NoActivation {
			out := y[n0*ys : (n0+gi)*ys]
			ActivationForward(act, out, out)
		}
	}
}
