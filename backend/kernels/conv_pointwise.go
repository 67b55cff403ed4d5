package kernels

import "runtime"

// Pointwise convolutions (1×1, stride 1, unpadded: p.direct()), half of ResNet-50's
// multiply-adds, on the packed GEMM: each image's product is the image itself, y[n] =
// W·x[n] and dx[n] = Wᵀ·dy[n]. With images enough for every core, the images run in
// parallel, each product on one core, rather than one image at a time with each
// product split across the cores (ResNet-50's 1×1 layers at batch 16 ran at 90-180
// GFLOP/s on two Zen 5 cores that way, the splits too fine for 49 to 3136 columns;
// BenchmarkConv2DResNet1x1). Each image's product is computed alone, so the bits do
// not depend on the split. The weight gradient is convBackwardWeightFast's single
// product over every image's positions, reading the images in place.

// pointwiseForward is Conv2DForward of a pointwise convolution on kern: y[n] = W·x[n]
// + bias (+ y[n] with add), then act.
// With a trusted cache (Conv2DForwardConstant) the packed weights are kept in it (see
// packedWeights).
func pointwiseForward(kern *gemmKernel, p Conv2DParams, x, w, bias, y []float32, act Activation, cache filterUse, add bool) {
	var ap, apCols []float32
	if kern.tileRows != nil && p.N > 1 {
		ap = packedWeights(kern, cache, cachePacked, w, p.M, p.C)
	} else {
		// B packed: the bfloat16 kernel's, and a batch of one, whose image has no slack
		// after it for the products to read it in place.
		apCols = packedWeights(kern, cache, cachePackedCols, w, p.M, p.C)
	}
	var beta float32
	if add {
		beta = 1
	}
	pointwiseProducts(kern, p.N, p.M, p.C, p.H*p.W, dense(w, p.C, false), ap, apCols, x, y, bias, beta, act)
}

// packedWeights returns the m×k weights w packed as the products read A (kind
// cachePacked: B read in place, sgemmInPlace; cachePackedCols: B packed, sgemmByCols),
// kept in use's cache from call to call: trusted (Conv2DForwardConstant) always,
// with a checked call only where the cache already holds them (which the call uses,
// and so refreshes, after checking the weights' fingerprint). nil: pack as usual.
func packedWeights(kern *gemmKernel, use filterUse, kind cacheKind, w []float32, m, k int) []float32 {
	if !use.on() || !use.trusted && (use.cache.kind != kind || use.cache.u == nil) {
		return nil
	}
	return use.get(kern, kind, packedALen(kern, m, k), w, func(u []float32) {
		packAAll(kern, kind == cachePacked, dense(w, k, false), m, k, u)
	})
}

// packedWeightsB returns the m×k weights w packed whole as the products read B (Wᵀ,
// k×m; packBWhole), kept in use's cache as packedWeights keeps A. nil: pack as usual.
func packedWeightsB(kern *gemmKernel, use filterUse, w []float32, k, m int) []float32 {
	if !use.on() || !use.trusted && (use.cache.kind != cachePackedB || use.cache.u == nil) {
		return nil
	}
	return use.get(kern, cachePackedB, packedBLen(kern, k, m), w, func(u []float32) {
		packBWhole(kern, runtime.GOMAXPROCS(0), dense(w, k, true), k, m, u)
	})
}

// pointwiseBackwardData is Conv2DBackwardData of a pointwise convolution on kern:
// dx[n] = Wᵀ·dy[n].
func pointwiseBackwardData(kern *gemmKernel, p Conv2DParams, w, dy, dx []float32) {
	pointwiseProducts(kern, p.N, p.C, p.M, p.H*p.W, dense(w, p.C, true), nil, nil, dy, dx, nil, 0, Activation{})
}

// pointwiseProducts sets c[n] = a·b[n] (+ bias) for the n images of b [k, P] and c [m,
// P], then act, a packed once for every image: as the caller gives it (ap as sgemmInPlace
// reads it, or apCols as sgemmByCols does), else here. On a kernel that reads B in place
// each image is read where it is (an image without nr values of slack after it, the
// last, is packed instead, with ap where that layout is sgemmByCols' too: one k block);
// on the others (the bfloat16 kernel, which rounds B as it packs it), or with apCols,
// each image is packed.
func pointwiseProducts(kern *gemmKernel, images, m, k, P int, a matView, ap, apCols []float32, b, c, bias []float32, beta float32, act Activation) {
	// On the bfloat16 kernel an even number of channels is read in place as pairs
	// (pairImage; a pointwise product's k is the channel, already in the pairs' order)
	// where the products have few rows (pointwisePairsMaxRows).
	pairs := kern.pairRows != nil && apCols == nil && ap == nil && k%2 == 0 && m <= pointwisePairsMaxRows
	var tab []int32
	switch {
	case pairs:
		ap = packAOnce(kern, true, a, m, k)
		defer putBuf(ap)
		tab = getInt32s(k)
		defer putInt32s(tab)
		for i := range tab {
			tab[i] = int32(i / 2 * P)
		}
	case apCols != nil: // the caller's
	case kern.tileRows == nil:
		apCols = packAOnce(kern, false, a, m, k)
		defer putBuf(apCols)
	case ap == nil && images == 1 && len(b) < k*P+kern.nr:
		// The one image is packed (no slack after it to be read in place).
		apCols = packAOnce(kern, false, a, m, k)
		defer putBuf(apCols)
	case ap == nil:
		ap = packAOnce(kern, true, a, m, k)
		defer putBuf(ap)
	}
	eachOnOneCore(images, func(n, nw int) {
		g := gemmArgs{
			m: m, n: P, k: k, alpha: 1, beta: beta, a: a,
			b: dense(b[n*k*P:(n+1)*k*P], P, false), c: c[n*m*P : (n+1)*m*P], ldc: P,
			bias: bias, act: act, apCols: apCols,
		}
		switch {
		case pairs:
			xp2 := getBuf[float32](k/2*P + kern.nr)
			defer putBuf(xp2)
			clear(xp2[k/2*P:]) // read into columns past the last, never used
			pairImage(b[n*k*P:(n+1)*k*P], xp2, k, P, nw)
			g.b = matView{data: xp2, rows: axis{tab: tab}, cols: axis{stride: 1}}
			g.ap, g.bInPlace, g.bPairs = ap, true, true
		case ap != nil && len(b)-n*k*P >= k*P+kern.nr:
			g.ap, g.bInPlace = ap, true
			g.b.data = b[n*k*P:]
		case ap != nil && k <= min(kern.kc, kern.kcRows):
			// The last image, packed: in one k block, a packed for B read in place is a
			// packed as sgemmByCols reads it too, so it is not packed again (MobileNet's
			// layers at batch 1, every call).
			g.apCols = ap
		}
		sgemmPacked(kern, nw, g)
	})
}

// pointwisePairsMaxRows bounds the pointwise products that read their images in place
// as pairs: each tile of 8 rows reads the image's rows from L2 again, where the packed
// panels are reused from L1, so only products of few rows gain (ResNet-50's 1×1
// layers at batch 16 on two Zen 4 cores, GFLOP per CPU-second, pairs / packed, ten
// calls of each in alternating order: 64 rows by 256 at 56 px 109 / 100 (forward) and
// 112 / 107 (data gradient), 128 by 512 at 28 px 142 / 131; 256 by 64 at 56 px 86-87 /
// 122-129, 512 by 128 at 28 px 121-144 / 138-165, 256 by 1024 at 14 px 104-113 /
// 109-110).
const pointwisePairsMaxRows = 128

// pairImage writes the pair image of xp's C planes of plane values each (C even): slot
// i of plane c/2 holds planes c and c+1's values i, rounded to bfloat16; on up to nw
// goroutines.
func pairImage(xp, dst []float32, C, plane, nw int) {
	_ = xp[C*plane-1]
	_ = dst[C/2*plane-1]
	parallelFor(C/2, min(nw, workers(C/2, plane/4)), func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			pairValues(xp[2*c*plane:(2*c+1)*plane], xp[(2*c+1)*plane:(2*c+2)*plane], dst[c*plane:(c+1)*plane])
		}
	})
}

// padPairImage writes image n of x, padded, straight into its pair image (p stride 1,
// C even: the pair planes are the padded planes' layout) on up to nw goroutines: one pass
// where padGrid and pairImage would take two.
func padPairImage(p Conv2DParams, x, dst []float32, n, nw int) {
	_, _, plane := p.paddedDims()
	HW := p.H * p.W
	parallelFor(p.C/2, min(nw, workers(p.C/2, plane/4)), func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			x0 := x[(n*p.C+2*c)*HW : (n*p.C+2*c+1)*HW]
			x1 := x[(n*p.C+2*c+1)*HW : (n*p.C+2*c+2)*HW]
			padPlaneWith(p, dst[c*plane:(c+1)*plane], func(h int, row []float32) {
				pairValues(x0[h*p.W:(h+1)*p.W], x1[h*p.W:(h+1)*p.W], row)
			})
		}
	})
}

// imagesApart reports whether the data gradient of p (a strided convolution, which
// has no flipped form) runs its images in parallel, each on one core
// (convBackwardDataImages): images enough for the cores, outputs of at least
// imagesApartMinCols positions (on smaller maps the grouped products are faster:
// ResNet-50's 7×7 outputs 1.35x slower apart, 28×28 and 56×56 1.1-1.25x faster;
// BenchmarkConv2DBackwardDataShapes), each image's unfolded gradient within
// maxColElems.
func imagesApart(p Conv2DParams) bool {
	procs := runtime.GOMAXPROCS(0)
	P := p.OutH * p.OutW
	return procs > 1 && p.N >= procs && P >= imagesApartMinCols && p.C*p.KH*p.KW*P <= maxColElems
}

const imagesApartMinCols = 128

// convBackwardDataImages is Conv2DBackwardData on kern with the images in parallel,
// each on one core: col = Wᵀ·dy[n], then col2im into dx[n] (ResNet-50's stride-2 layers
// at batch 16 ran one image at a time, each product split across the cores). Each
// image is computed alone, so the bits do not depend on the split.
func convBackwardDataImages(kern *gemmKernel, p Conv2DParams, w, dy, dx []float32) {
	K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
	xs, ys := p.C*p.H*p.W, p.M*P
	wt := dense(w, K, true)
	apCols := packAOnce(kern, false, wt, K, p.M)
	defer putBuf(apCols)
	parallelFor(p.N, runtime.GOMAXPROCS(0), func(_, lo, hi int) {
		col := getBuf[float32](K * P)
		defer putBuf(col)
		for n := lo; n < hi; n++ {
			sgemmPacked(kern, 1, gemmArgs{
				m: K, n: P, k: p.M, alpha: 1, a: wt, apCols: apCols,
				b: dense(dy[n*ys:(n+1)*ys], P, false), c: col, ldc: P,
			})
			dxn := dx[n*xs : (n+1)*xs]
			clear(dxn)
			col2im(p, col, dxn, P, 0, p.OutH, 0, p.C)
		}
	})
}
