package kernels

import (
	"runtime"
	"sync/atomic"
)

// Float32 convolutions on the toolkit's own GEMM ([goBLAS]) skip the
// im2col buffer where they can: the products read the unfolded images
// straight from a zero-padded copy of each image, through offset tables.
//
// With stride 1, the taps of a convolution computed on the padded grid
// (width Wp = W + pads, output position q = oh*Wp + ow) are shifts of the
// padded image: tap (c, kh, kw) at q is xpad[c][q + kh*dilH*Wp + kw*dilW].
// So row (c, kh, kw) of the unfolded matrix is a contiguous run of xpad,
// and packing the product's B operand copies runs of 32 values. The
// positions q with ow >= OutW fall on the padding; the AVX-512 kernel
// drops them as it stores (a sparse column mask), so the output is
// written compactly in place. The weight gradient reads the same shifts
// as the transposed operand, through gathers. The data gradient of a
// stride-1 convolution is itself a stride-1 convolution of the output
// gradient with the flipped, transposed weights (pads dil*(k-1) - pad),
// so it runs on the forward path, with no col2im at all.
//
// The padded grid wastes (Wp - OutW)/Wp of the columns (2/34 at 32×32 with
// 3×3 kernels), so narrow maps keep the im2col path, where several images
// share one product.

// paddedMinWidth is the narrowest output for which the padded-grid
// products beat im2col (measured on VGG19's layers).
const paddedMinWidth = 12

// packedKernel returns the packed GEMM's micro-kernel when float32
// products over T run on it (the toolkit's own GEMM), else nil.
func packedKernel[T Float]() *gemmKernel {
	if b, ok := blasImpl.(goBLAS); ok && is32[T]() {
		return b.kern
	}
	return nil
}

// paddedOn reports whether p's forward pass can run on the padded grid
// with kernel kern: stride 1, a wide map, a kernel that reads B in place or
// stores sparse masks (the bfloat16 kernel, whose panels of B are then copied
// from the padded image's rows, not gathered).
func (p Conv2DParams) paddedOn(kern *gemmKernel) bool {
	return (kern.tileRows != nil || kern.sparse) && p.padded()
}

// forwardFastOn reports whether p's forward pass runs on this file's paths
// with kern (the padded grid, or gathers where they are fast); otherwise
// it unfolds the images with im2col, whose copies suit CPUs without fast
// gathers (AMD's, notably) better.
func (p Conv2DParams) forwardFastOn(kern *gemmKernel) bool {
	return !p.direct() && (p.paddedOn(kern) || kern.fastGather)
}

// padded reports whether p's products can read a padded image (with a stride above
// 1, its phases: padGrid, where the kernel spans the stride, so that every phase
// copied is read; a 1×1 stride-2 projection reads a quarter of the image and keeps the
// gathers).
func (p Conv2DParams) padded() bool {
	spans := (p.KH-1)*p.DilH+1 >= p.StrideH && (p.KW-1)*p.DilW+1 >= p.StrideW
	return p.OutW >= paddedMinWidth && spans
}

// The padded path's image copy: per channel a plane of the phase layout of the
// depthwise convolutions (paddedLayout: with stride 1 the padded plane itself, rows of
// Wp; with a larger stride the plane split into the stride's phases, phase (a, b)
// holding the padded rows a, a+StrideH, ... and columns b, b+StrideW, ...), the output
// computed on the grid of its rows (position q = oh*wq + ow). A tap is one phase
// shifted by a constant, so B is read in place, not gathered, with a stride too: the
// stems of MobileNet and EfficientNet (3×3, 3 channels at 224 px, batch 1) 0.33 to 0.22
// ms on two Zen 4 cores, ResNet's (7×7) 1.8 to 1.5 ms; ResNet's 3×3 stride-2 layers at
// batch 16 about a fifth faster (BenchmarkConv2DStridedBatch1).

// gridTapOffsets fills tab[(c*KH+kh)*KW+kw] with the offset of tap (c, kh, kw) in an
// image's copy of layout l.
func gridTapOffsets(p Conv2DParams, l depthwisePadded, tab []int32) {
	plane := l.size(p)
	for c := 0; c < p.C; c++ {
		for kh := 0; kh < p.KH; kh++ {
			for kw := 0; kw < p.KW; kw++ {
				tab[(c*p.KH+kh)*p.KW+kw] = int32(c*plane + l.tap(p, kh, kw))
			}
		}
	}
}

// padGrid copies image n of x into xp (C planes of layout l) on up to nw goroutines.
func padGrid(p Conv2DParams, l depthwisePadded, x, xp []float32, n, nw int) {
	if p.StrideH == 1 && p.StrideW == 1 {
		padImage(p, x, xp, n, nw) // the padded plane, its border written, not cleared first
		return
	}
	HW, plane := p.H*p.W, l.size(p)
	parallelFor(p.C, min(nw, workers(p.C, plane/4)), func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			dst := xp[c*plane : (c+1)*plane]
			clear(dst) // padPlane writes the plane's cells only
			padPlane(p, l, x[(n*p.C+c)*HW:(n*p.C+c+1)*HW], dst)
		}
	})
}

// paddedDims returns the padded image's height, width and plane size.
func (p Conv2DParams) paddedDims() (hp, wp, plane int) {
	hp, wp = p.H+p.PadTop+p.PadBottom, p.W+p.PadLeft+p.PadRight
	return hp, wp, hp * wp
}

// tapOffsets fills tab[(c*KH+kh)*KW+kw] with the offset of tap (c, kh, kw)
// in a padded image: c*plane + kh*dilH*wp + kw*dilW.
func tapOffsets(p Conv2DParams, wp, plane int, tab []int32) {
	for c := 0; c < p.C; c++ {
		for kh := 0; kh < p.KH; kh++ {
			for kw := 0; kw < p.KW; kw++ {
				tab[(c*p.KH+kh)*p.KW+kw] = int32(c*plane + kh*p.DilH*wp + kw*p.DilW)
			}
		}
	}
}

// padImages copies images [n0, n0+g) of x into xp, each as C planes of
// hp×wp with zero borders, splitting the planes across goroutines.
func padImages(p Conv2DParams, x, xp []float32, n0, g int) {
	padPlanes(p, x, xp, n0, g, runtime.GOMAXPROCS(0))
}

// weightGradGroup is how many images convBackwardWeightFast copies into its buffer at a
// time: about 1<<22 values' worth, counting with the copies the operand the product packs
// whole (dy's rows, or the taps where they are fewer than the output channels: a stem's
// 27 taps of 64 channels at 224×224 took 103 MB at batch 16 in whole-batch groups, and
// 2^27 bytes from the scratch lists, 8.4 MB an image of VGG19's peak). Unpadded images
// read back from a compact copy, where the float32 ones are read in place in one product,
// go in groups of whole k blocks of kc (g·P a multiple of kc), so that the blocks, and
// the sums, are the float32 product's.
func weightGradGroup(p Conv2DParams, compact bool, kc int) int {
	_, _, plane := p.paddedDims()
	if compact && plane == p.H*p.W {
		g := max(1, min(p.N, (1<<22)/max(1, p.C*plane)))
		step := kc / gcd(p.OutH*p.OutW, kc)
		return min(p.N, max(step, g/step*step))
	}
	// The product is M×K over g·P: it packs A (M rows, in panels of up to 8) whole
	// where K >= M, else B (K columns, in panels of up to 32).
	K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
	packed := P * ((p.M + 7) / 8 * 8)
	if K < p.M {
		packed = P * ((K + 31) / 32 * 32)
	}
	return max(1, min(p.N, (1<<22)/max(1, p.C*plane, packed)))
}

// WeightGradReadsCompact reports whether [Conv2DBackwardWeightCompact] reads p's input
// back a group at a time within about 1<<22 values (or one image): not an unpadded
// convolution whose groups of whole k blocks would take more (an odd number of output
// positions takes kc images at a time), which is better read back whole beforehand.
func (p Conv2DParams) WeightGradReadsCompact() bool {
	p = p.norm()
	kc := 256
	if kern := packedKernel[float32](); kern != nil {
		kc = kern.kc
	}
	_, _, plane := p.paddedDims()
	g := weightGradGroup(p, true, kc)
	return g == 1 || g*p.C*plane <= 1<<22
}

// gcd is the greatest common divisor of a and b (positive).
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// padImagesCompact is padImages from x's compact copy (ToBF16): the values read back.
func padImagesCompact(p Conv2DParams, x, xp []float32, n0, g int) {
	padCompact(p, x, xp, n0, g, fromBF16Run)
}

// padImagesCompactHalf is padImagesCompact keeping the values in bfloat16: the planes of
// images n0.. of x's compact copy into xh (g·C planes of bfloat16 values), bordered with
// zeros.
func padImagesCompactHalf(p Conv2DParams, x []float32, xh []uint16, n0, g int) {
	padCompact(p, x, xh, n0, g, func(src, dst []uint16) { copy(dst, src) })
}

// padCompact writes the planes of images n0.. of x's compact copy into dst, padded, each
// row through row.
func padCompact[T any](p Conv2DParams, x []float32, dst []T, n0, g int, row func(src []uint16, dst []T)) {
	_, _, plane := p.paddedDims()
	hw := p.H * p.W
	s := bf16s(x)
	units := g * p.C
	parallelFor(units, workers(units, plane/4), func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			src := s[(n0*p.C+u)*hw : (n0*p.C+u+1)*hw]
			padPlaneWith(p, dst[u*plane:(u+1)*plane], func(h int, r []T) { row(src[h*p.W:(h+1)*p.W], r) })
		}
	})
}

// padImage is padImages of image n on up to nw goroutines.
func padImage(p Conv2DParams, x, xp []float32, n, nw int) {
	padPlanes(p, x, xp, n, 1, nw)
}

func padPlanes(p Conv2DParams, x, xp []float32, n0, g, nw int) {
	_, _, plane := p.paddedDims()
	xs := p.C * p.H * p.W
	units := g * p.C
	parallelFor(units, min(nw, workers(units, plane/4)), func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			i, c := u/p.C, u%p.C
			src := x[(n0+i)*xs+c*p.H*p.W : (n0+i)*xs+(c+1)*p.H*p.W]
			padOnePlane(p, src, xp[u*plane:(u+1)*plane])
		}
	})
}

// padOnePlane copies the H×W plane src into dst, hp×wp (p.paddedDims), with
// a zero border.
func padOnePlane[T Float](p Conv2DParams, src, dst []T) {
	padPlaneWith(p, dst, func(h int, row []T) { copy(row, src[h*p.W:(h+1)*p.W]) })
}

// padPlaneWith writes a plane into dst, hp×wp (p.paddedDims), with a zero border:
// fill(h, row) writes row h of the H×W plane into row, its W inner cells.
func padPlaneWith[T any](p Conv2DParams, dst []T, fill func(h int, row []T)) {
	hp, wp, _ := p.paddedDims()
	clear(dst[:p.PadTop*wp])
	for h := 0; h < p.H; h++ {
		row := dst[(p.PadTop+h)*wp : (p.PadTop+h+1)*wp]
		clear(row[:p.PadLeft])
		fill(h, row[p.PadLeft:p.PadLeft+p.W])
		clear(row[p.PadLeft+p.W:])
	}
	clear(dst[(p.PadTop+p.H)*wp : hp*wp])
}

// convForwardFast is Conv2DForward on the packed GEMM where
// p.forwardFastOn(kern): the padded grid, else the gathered products. a
// is the weight as an M×K view (the weights themselves, or the flipped
// weights of a data gradient). The products store act(y): a convolution fused with
// the Relu or Clip after it. ap, when set, is a packed as the path reads it
// (packedWeights: cachePacked where B is read in place, else cachePackedCols).
func convForwardFast(kern *gemmKernel, p Conv2DParams, x []float32, a matView, ap, bias, y []float32, act Activation) {
	if p.paddedOn(kern) {
		convForwardPadded(kern, p, x, a, ap, bias, y, act)
		return
	}
	convForwardGathered(kern, p, x, a, ap, bias, y, act)
}

// paddedColumns returns the columns of an image's product on the padded grid (rows of
// wq) on kern: on a kernel with sparse stores the grid's positions up to the last
// output, q = oh*wq + ow; otherwise every output row rounded up to whole panels.
func (p Conv2DParams) paddedColumns(kern *gemmKernel, wq int) int {
	if kern.sparse {
		return (p.OutH-1)*wq + p.OutW
	}
	return p.OutH * kern.panelCols(p.OutW)
}

// convForwardPadded computes the convolution on the padded grid
// (p.paddedOn(kern)): one product per image, B read in place from the
// image's padded copy (or, on a kernel that does not read B in place, packed
// from its rows: copies, not gathers). On a kernel with sparse stores (AVX-512) the
// product's columns are the padded grid's positions q = oh*Wp + ow up to
// the last output, Q = (OutH-1)*Wp + OutW, and the stores drop the
// padding columns; otherwise each output row starts a new panel (its
// columns rounded up to whole panels) and the stores keep a prefix of
// each. Batches are split over the images (each goroutine pads and
// multiplies whole images, see imagesInParallel); a single image splits
// its product.
func convForwardPadded(kern *gemmKernel, p Conv2DParams, x []float32, a matView, ap, bias, y []float32, act Activation) {
	grid := p.paddedLayout()
	wp, plane := grid.wq, grid.size(p)
	K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
	ys := p.M * P
	// On the bfloat16 kernel, an even number of channels is read in place as pairs
	// (pairedA): no panel of B is packed.
	pairs := kern.pairRows != nil && ap == nil && p.C%2 == 0 && a.cols.unit()
	tab := getInt32s(K)
	defer putInt32s(tab)
	if pairs {
		a = pairedA(p, a)
		defer putInt32s(a.cols.tab)
		pairedTaps(p, grid, tab)
	} else {
		gridTapOffsets(p, grid, tab)
	}
	q := p.paddedColumns(kern, wp)
	cmap := &colMap{wp: wp, ow: p.OutW}
	cols := axis{stride: 1}
	if !kern.sparse {
		owp := kern.panelCols(p.OutW)
		cmap = &colMap{wp: owp, ow: p.OutW}
		ctab := getInt32s(q)
		defer putInt32s(ctab)
		for j := range ctab {
			ctab[j] = int32(j/owp*wp + j%owp)
		}
		cols = axis{tab: ctab}
	}
	if ap == nil && p.N > 1 {
		ap = packAOnce(kern, pairs || kern.tileRows != nil, a, p.M, K)
		defer putBuf(ap)
	}
	nw, gemmNW := imagesInParallel(p, int64(p.M)*int64(q)*int64(K))
	var next atomic.Int64
	// A stride-1 image is padded straight into its pairs (padPairImage), with no float32
	// copy; a strided one's phases are copied first, then paired.
	straight := pairs && p.StrideH == 1 && p.StrideW == 1
	parallelFor(nw, nw, func(_, _, _ int) {
		// 64 values of slack: the kernels read whole rows of B in place,
		// past the last column of the last row.
		var xp, xp2 []float32
		if !straight {
			xp = getBuf[float32](p.C*plane + 64)
			defer putBuf(xp)
		}
		if pairs {
			xp2 = getBuf[float32](p.C/2*plane + 64)
			defer putBuf(xp2)
			clear(xp2[p.C/2*plane:]) // the slack is read (into columns dropped), never used
		}
		for {
			n := int(next.Add(1)) - 1
			if n >= p.N {
				return
			}
			switch {
			case straight:
				padPairImage(p, x, xp2, n, gemmNW)
			case pairs:
				padGrid(p, grid, x, xp, n, gemmNW)
				pairImage(xp, xp2, p.C, plane, gemmNW)
			default:
				padGrid(p, grid, x, xp, n, gemmNW)
			}
			args := gemmArgs{
				m: p.M, n: q, k: K, alpha: 1, a: a,
				b: matView{data: xp, rows: axis{tab: tab}, cols: cols},
				c: y[n*ys : (n+1)*ys], ldc: P, bias: bias, cmap: cmap, act: act,
			}
			switch {
			case pairs:
				args.b.data, args.bInPlace, args.bPairs, args.ap = xp2, true, true, ap
			case kern.tileRows != nil:
				args.bInPlace, args.ap = true, ap
			default:
				args.apCols = ap
			}
			sgemmPacked(kern, gemmNW, args)
		}
	})
}

// A convolution's products in pairs of channels (convForwardPadded on the bfloat16
// kernel, whose micro-kernel takes k two at a time): the padded image's planes c and
// c+1 are interleaved into one plane of pair slots (pairImage), so that for every tap
// the two channels' rows are one row of slots that the kernel reads in place
// (pairRows), instead of packing a panel of B per tap from the float32 image. The
// product's k order is then (channel pair, tap, channel within the pair): A's
// columns are gathered in that order (pairedA), B's rows are the pair plane's taps,
// each given for both k of its pair (pairedTaps). The sums run over the same products
// in another order: the bits differ from the packed path's by rounding. 3×3 layers at
// batch 16 on two Zen 4 cores, GFLOP per CPU-second, pairs / packed, ten calls of each
// in alternating order: 224 px 64 channels 121 / 110, 112 px 128 150 / 131, 56 px 64
// 148 / 138, 56 px 256 176 / 154, 28 px 128 173 / 171, 14 px 256 157 / 156.

// pairedA returns a's view with its columns in the pair order: logical column
// 2·((c/2)·KH·KW + t) + c%2 is channel c's tap t. The column table is from the free
// lists (putInt32s it after).
func pairedA(p Conv2DParams, a matView) matView {
	taps := p.KH * p.KW
	perm := getInt32s(p.C * taps)
	for c := 0; c < p.C; c++ {
		for t := 0; t < taps; t++ {
			perm[2*((c/2)*taps+t)+c%2] = int32(a.cols.at(c*taps + t))
		}
	}
	return matView{data: a.data, rows: a.rows, cols: axis{tab: perm}}
}

// pairedTaps fills tab (K entries) with the pair image's row offsets in the logical
// order of pairedA: entries 2j and 2j+1 both the offset of pair plane j/taps's tap
// j%taps (gridTapOffsets of the C/2 pair planes, each spread over its two k).
func pairedTaps(p Conv2DParams, l depthwisePadded, tab []int32) {
	half := p
	half.C = p.C / 2
	gridTapOffsets(half, l, tab)
	for j := half.C*p.KH*p.KW - 1; j >= 0; j-- { // from the end: 2j >= j
		tab[2*j], tab[2*j+1] = tab[j], tab[j]
	}
}

// imagesInParallel decides how the per-image products of a batch share
// the cores: whole images per goroutine (nw goroutines, each product on
// one) when there are images enough to keep every core busy, else one
// image at a time with its product split (one goroutine, gemmNW for the
// product). work is one image's multiply-adds.
func imagesInParallel(p Conv2DParams, work int64) (nw, gemmNW int) {
	procs := runtime.GOMAXPROCS(0)
	if procs > 1 && p.N >= procs && (p.N%procs == 0 || work < 1<<26) {
		return min(procs, p.N), 1
	}
	return 1, procs
}

// gatherGroupSize is how many images share one product of the gathered
// paths: enough for about 512 columns, no more than leaves a group for
// every core, with their padded copies within about 16 MB.
func gatherGroupSize(p Conv2DParams) int {
	_, _, plane := p.paddedDims()
	P := p.OutH * p.OutW
	g := min(p.N, max(1, (512+P-1)/P))
	// At least one group per core: the groups run in parallel, each on one core,
	// which beats splitting one product across the cores (VGG19's 4×4 layers at
	// batch 16: 18% faster).
	if procs := runtime.GOMAXPROCS(0); p.N >= procs {
		g = min(g, (p.N+procs-1)/procs)
	}
	return max(1, min(g, (1<<22)/max(1, p.C*plane)))
}

// gatherOffsets returns, from the free lists (putInt32s both after use), the tables
// through which a product gathers from the copies of a group of g images (planes of
// plane values, rows of wp): every tap's offset (tapOffsets) and every output
// position's (positionOffsets).
func gatherOffsets(p Conv2DParams, wp, plane, g int) (tab, pos []int32) {
	tab, pos = getInt32s(p.C*p.KH*p.KW), getInt32s(g*p.OutH*p.OutW)
	tapOffsets(p, wp, plane, tab)
	positionOffsets(p, wp, plane, g, pos)
	return tab, pos
}

// positionOffsets fills tab[i*P + oh*OutW + ow] with the offset, in the
// padded copies of a group of images, of output position (oh, ow) of
// image i: i*C*plane + oh*StrideH*wp + ow*StrideW.
func positionOffsets(p Conv2DParams, wp, plane, g int, tab []int32) {
	P := p.OutH * p.OutW
	for i := 0; i < g; i++ {
		for oh := 0; oh < p.OutH; oh++ {
			for ow := 0; ow < p.OutW; ow++ {
				tab[i*P+oh*p.OutW+ow] = int32(i*p.C*plane + oh*p.StrideH*wp + ow*p.StrideW)
			}
		}
	}
}

// convForwardGathered computes the convolution with B gathered from the
// padded copies of a group of images (any stride, any width): tap rows
// through tapOffsets, output positions through positionOffsets. A group's
// output goes to a scratch matrix [M, g*P], then to y; a group of one
// image is written to y directly.
func convForwardGathered(kern *gemmKernel, p Conv2DParams, x []float32, a matView, apCols, bias, y []float32, act Activation) {
	_, wp, plane := p.paddedDims()
	K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
	ys := p.M * P
	g := gatherGroupSize(p)
	tab, pos := gatherOffsets(p, wp, plane, g)
	defer putInt32s(tab)
	defer putInt32s(pos)
	groups := (p.N + g - 1) / g
	if apCols == nil && groups > 1 {
		apCols = packAOnce(kern, false, a, p.M, K)
		defer putBuf(apCols)
	}
	// Groups in parallel when there are enough of them, as images in
	// convForwardPadded.
	nw, gemmNW := imagesInParallel(Conv2DParams{N: groups}, int64(p.M)*int64(g*P)*int64(K))
	var next atomic.Int64
	parallelFor(nw, nw, func(_, _, _ int) {
		xp := getBuf[float32](g * p.C * plane)
		defer putBuf(xp)
		var tmp []float32
		if g > 1 {
			tmp = getBuf[float32](p.M * g * P)
			defer putBuf(tmp)
		}
		for {
			gi := int(next.Add(1)) - 1
			if gi >= groups {
				return
			}
			n0 := gi * g
			gn := min(g, p.N-n0)
			padPlanes(p, x, xp, n0, gn, gemmNW)
			args := gemmArgs{
				m: p.M, n: gn * P, k: K, alpha: 1, a: a, apCols: apCols, bias: bias, act: act,
				b: matView{data: xp, rows: axis{tab: tab}, cols: axis{tab: pos[:gn*P]}},
			}
			if gn == 1 {
				args.c, args.ldc = y[n0*ys:(n0+1)*ys], P
				sgemmPacked(kern, gemmNW, args)
				continue
			}
			args.c, args.ldc = tmp, gn*P
			sgemmPacked(kern, gemmNW, args)
			scatterGroupOn(gemmNW, p.M, P, tmp, y, nil, n0, gn)
		}
	})
}

// flipped returns the convolution whose forward pass is p's data
// gradient, when p has stride 1 and no pad larger than the dilated
// kernel: input dy [N, M, OutH, OutW], weights [C, M, KH, KW] (p's
// flipped and transposed), output [N, C, H, W].
func (p Conv2DParams) flipped() (Conv2DParams, bool) {
	eh, ew := p.DilH*(p.KH-1), p.DilW*(p.KW-1)
	if p.StrideH != 1 || p.StrideW != 1 || p.PadTop > eh || p.PadBottom > eh || p.PadLeft > ew || p.PadRight > ew {
		return p, false
	}
	q := Conv2DParams{
		N: p.N, C: p.M, H: p.OutH, W: p.OutW, M: p.C, KH: p.KH, KW: p.KW,
		StrideH: 1, StrideW: 1, DilH: p.DilH, DilW: p.DilW,
		PadTop: eh - p.PadTop, PadBottom: eh - p.PadBottom, PadLeft: ew - p.PadLeft, PadRight: ew - p.PadRight,
		OutH: p.H, OutW: p.W, Group: 1,
	}
	return q, true
}

// flipPays says whether p's data gradient should run as the flipped
// convolution with its weights rewritten (flipWeights) rather than as wᵀ·dy
// and col2im: the rewrite moves the M·C·KH·KW weights, col2im the
// C·KH·KW·N·OutH·OutW columns twice (written by the product, read back), so
// the flip pays where the images hold at least half as many output
// positions as p has filters. 1×1 filters never need col2im. Zen 4, VGG19
// at batch 16: on 2×2 maps wᵀ·dy took 2.6 ms to the flip's 4.2; on 4×4
// maps the flip was 1.3 ms faster inside a training step; on 5×5 filters
// over 28×28 maps the flip took 7.3 ms to wᵀ·dy's 15.
func (p Conv2DParams) flipPays() bool {
	return p.KH*p.KW > 1 && 2*p.N*p.OutH*p.OutW >= p.M
}

// reverse9 writes s reversed to d (a 3×3 filter turned by 180°).
func reverse9(d, s *[9]float32) {
	d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8] = s[8], s[7], s[6], s[5], s[4], s[3], s[2], s[1], s[0]
}

// flipWeights writes p's weights w [M, C, KH, KW] as the row-major
// C × (M*KH*KW) weight matrix of the flipped convolution, wf[c][m][kh][kw]
// = w[m][c][KH-1-kh][KW-1-kw], on nw goroutines. Read in place, the flipped
// matrix is a gather whose consecutive columns lie C*KH*KW apart, a stride
// no prefetcher follows: packing VGG19's 512-channel weights that way took
// longer than their product. The copy goes in blocks of flipBlockM filters,
// which it reads as that many sequential streams (more would thrash the
// L1 sets that VGG's 18 KB row stride maps to), and the GEMM then packs
// wf as it packs a forward weight.
func flipWeights(p Conv2DParams, w, wf []float32, nw int) {
	const flipBlockM = 8
	khw := p.KH * p.KW
	ldw, ldf := p.C*khw, p.M*khw
	_ = w[p.M*ldw-1]
	_ = wf[p.C*ldf-1]
	mBlocks := (p.M + flipBlockM - 1) / flipBlockM
	parallelFor(mBlocks, nw, func(_, lo, hi int) {
		for mb := lo; mb < hi; mb++ {
			m0, m1 := mb*flipBlockM, min((mb+1)*flipBlockM, p.M)
			for c := 0; c < p.C; c++ {
				for m := m0; m < m1; m++ {
					s := w[m*ldw+c*khw : m*ldw+(c+1)*khw]
					d := wf[c*ldf+m*khw : c*ldf+(m+1)*khw]
					if khw == 9 {
						reverse9((*[9]float32)(d), (*[9]float32)(s))
						continue
					}
					for t, v := range s {
						d[khw-1-t] = v
					}
				}
			}
		}
	})
}

// convBackwardWeightFast is Conv2DBackwardWeight on the packed GEMM: dW = Σ over images and positions of
// dY · tapsᵀ, one product per group of images with the positions of every
// image of the group as its inner dimension. A reads dy through a table
// of position offsets, B the padded images through the tap and position
// offsets (gathers).
//
// With compact set, x is a compact copy (ToBF16): every image is read back a group at a
// time into the buffer padded images are copied to.
func convBackwardWeightFast(kern *gemmKernel, p Conv2DParams, x []float32, compact bool, dy, dw []float32) {
	_, wp, plane := p.paddedDims()
	K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
	// A compact copy is read in bfloat16 where the kernel packs such values
	// (packGatherHalf: its pairs moved as they are), else read back into float32.
	half := compact && kern.packGatherHalf != nil
	// Unpadded images are read where they are (their layout is the padded one), all
	// in one product; padded ones and compact copies are copied a group at a time.
	unpadded := p.PadTop == 0 && p.PadLeft == 0 && p.PadBottom == 0 && p.PadRight == 0 && !compact
	g := weightGradGroup(p, compact, kern.kc)
	if unpadded {
		g = p.N
	}
	var xp []float32
	if !unpadded {
		n := g * p.C * plane
		if half {
			n = n/2 + 2 // bfloat16 values, and one past the last for the packers' reads
		}
		xp = getBuf[float32](n)
		defer putBuf(xp)
	}
	tab, pos, atab := getInt32s(K), getInt32s(g*P), getInt32s(g*P)
	defer putInt32s(tab)
	defer putInt32s(pos)
	defer putInt32s(atab)
	tapOffsets(p, wp, plane, tab)
	positionOffsets(p, wp, plane, g, pos)
	nw := runtime.GOMAXPROCS(0)
	var beta float32
	for n0 := 0; n0 < p.N; n0 += g {
		gn := min(g, p.N-n0)
		src := xp
		switch {
		case unpadded:
			src = x[n0*p.C*plane:]
		case half:
			padImagesCompactHalf(p, x, bf16s(xp), n0, gn)
		case compact:
			padImagesCompact(p, x, xp, n0, gn)
		default:
			padImages(p, x, xp, n0, gn)
		}
		for i := 0; i < gn; i++ {
			for y := 0; y < P; y++ {
				atab[i*P+y] = int32((n0+i)*p.M*P + y)
			}
		}
		sgemmPacked(kern, nw, gemmArgs{
			m: p.M, n: K, k: gn * P, alpha: 1, beta: beta,
			a: matView{data: dy, rows: axis{stride: P}, cols: axis{tab: atab[:gn*P]}},
			b: matView{data: src, rows: axis{tab: pos[:gn*P]}, cols: axis{tab: tab}, half: half},
			c: dw, ldc: K,
		})
		beta = 1
	}
}

// gemmBias computes c = a·b + bias[i] on row i (bias may be nil) for
// row-major a [m, k], b [k, n] and c [m, n], overwriting c. On the packed
// GEMM the bias is added by the micro-kernel; otherwise c is filled with
// the bias first and the product added to it.
func gemmBias[T Float](m, n, k int, a []T, lda int, b []T, ldb int, bias []T, c []T, ldc int) {
	if gb, ok := blasImpl.(goBLAS); ok && is32[T]() && bias != nil {
		checkGemm(false, false, m, n, k, a, lda, b, ldb, c, ldc)
		sgemmPacked(gb.kern, runtime.GOMAXPROCS(0), gemmArgs{
			m: m, n: n, k: k, alpha: 1, a: dense(as32(a), lda, false),
			b: dense(as32(b), ldb, false), c: as32(c), ldc: ldc, bias: as32(bias),
		})
		return
	}
	var beta T
	if bias != nil {
		for i := 0; i < m; i++ {
			fill(c[i*ldc:i*ldc+n], bias[i])
		}
		beta = 1
	}
	Gemm(false, false, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}
