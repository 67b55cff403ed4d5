package kernels

import (
	"math/bits"
	"runtime"
	"sync/atomic"
)

// The toolkit's own float32 GEMM: the BLIS/GotoBLAS design in Go, with a
// register-blocked micro-kernel in assembly for the widest vector unit the
// CPU has (chosen at run time, see gemmKernel). gonum's pure-Go Sgemm is
// built on axpy and dot loops and reaches about 3 GFLOP/s per core; a
// packed, register-blocked kernel runs an order of magnitude or two faster
// on the same cores and still needs no cgo.
//
// Loop structure for C[m×n] = alpha·op(A)·op(B) + beta·C (row-major), with
// the micro-tile mr×nr and the blocks kc, mc, nc of the kernel:
//
//	for jc in steps of nc over n             (B block: L3)
//	  for pc in steps of kc over k           (pack B[pc:, jc:] into nr-column panels)
//	    for ic in steps of mc over m         (A block, packed into mr-row panels: L2)
//	      for jr over the nr-column panels   (one B panel: L1)
//	        for ir over the mr-row panels    (micro-kernel: mr×nr accumulators in registers)
//
// Operands are views ([matView]): an element's address is the sum of a
// row offset and a column offset, each an arithmetic progression or a
// table. Plain row-major matrices, their transposes and a convolution's
// unfolded images (read straight from a zero-padded copy of the image, so
// no im2col buffer is written) are all views, and packing absorbs the
// difference, so a single micro-kernel serves every case.
//
// The micro-kernels store a tile through a column mask: the selected
// columns of each row go one after another (AVX-512's compress). Fringe
// tiles (fewer rows or columns) use the mask and the row count; a
// convolution computed on the padded grid uses it to drop the columns
// that fall on the padding, writing its output compactly in place.

// gemmKernel is one micro-kernel with the blocking that suits it.
type gemmKernel struct {
	name string
	// runs counts the blocks this kernel has multiplied (macroKernel calls): one
	// atomic add per block of thousands of products, so that a test can tell which
	// kernel paths ran (KernelRuns).
	runs atomic.Int64
	// siluRuns counts the blocks whose tiles stored a SiLU (tileSiLU), so that a test
	// can tell the epilogue ran; pairRuns those whose B was read as pairs (pairRows).
	siluRuns, pairRuns atomic.Int64
	// positionRuns counts the convolutions computed with the output positions as the
	// product's rows (convForwardByPositions), so that a test can tell that path ran.
	positionRuns atomic.Int64
	// searchedPlanes counts the max pooling planes whose windows firstMax searched
	// (pool.go), so that a test can tell the search ran.
	searchedPlanes atomic.Int64
	// maxTapPlanes counts the max pooling planes maxTaps pooled (pool_taps.go; not
	// those it handed back to the window rule).
	maxTapPlanes atomic.Int64
	mr, nr       int // micro-tile rows and columns
	kc, mc, nc   int // blocks: k per packed panel, A rows per block, B columns per block
	// tile computes the mr×nr tile T[i][j] = alpha·Σ_p a[p*mr+i]·b[p*nr+j]
	// + bias[i] (bias nil: none; else at least mr values) from packed panels
	// and stores the columns of rows i < rows selected by mask one after
	// another from c[i*ldc]; with beta != 0, beta·C is added to them first;
	// with flags&tileClamp, the values are clamped to [lo, hi] (NaN kept); with
	// flags&tileSiLU (kernels with siluStore only), x·σ(x) of them is stored.
	// kc >= 1, 1 <= rows <= mr, mask < 1<<nr.
	tile func(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32)
	// packCopy and packGather fill one panel of width w (mr for A, nr for
	// B): dst[p*w+l] = src[koff[p]+l] (packCopy) or src[koff[p]+lane[l]]
	// (packGather) for l < n, zero for n <= l < w. The offsets are
	// checked by the caller.
	packCopy   func(w int, src []float32, koff []int32, n int, dst []float32)
	packGather func(w int, src []float32, koff, lane []int32, n int, dst []float32)
	// packGatherHalf, when set (the bfloat16 kernel), is packGather from bfloat16 values
	// (matView.half: two to a slot of src, koff and lane counting values), moved into
	// the panel's pairs as they are; it reads up to one value past each offset.
	packGatherHalf func(w int, src []float32, koff, lane []int32, n int, dst []float32)
	// sparse reports whether tile stores sparse masks natively (else it
	// goes through a buffer, correct but slow).
	sparse bool
	// tileRows, when not nil, is tile with B read in place: row p of the
	// kc×nr panel is b[koff[p]:][:nr] (all nr values are read, whatever
	// mask says). kcRows is its k block.
	tileRows func(kc int, a, b []float32, koff []int32, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32)
	kcRows   int
	// pairRows, when not nil, is tile with B read in place from bfloat16 pair slots
	// (gemmArgs.bPairs; the bfloat16 kernel): pair row q of the panel is
	// b[koff[2q]:][:nr], kc even. Its k block is kcRows rounded up to even.
	pairRows func(kc int, a, b []float32, koff []int32, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32)
	// siluStore reports that tile and tileRows take tileSiLU (the AVX-512
	// epilogue); elsewhere a SiLU is a pass over C after the product.
	siluStore bool
	// fastGather reports whether packGather runs on hardware gathers fast
	// enough for the convolution paths that pack every operand by gathers.
	fastGather bool
	// wino holds the Winograd transforms of this kernel (conv_winograd.go),
	// nil where there are none.
	wino *winoTransforms
	// sigmoid, when set, is [SigmoidForward] of n float32 values in this
	// kernel's instruction set.
	sigmoid func(n int, x, y *float32)
	// silu and siluBack, when set, are SiLU (x·σ(x)) and its gradient (dx =
	// dy·σ(x)·(1 + x·(1-σ(x)))) of n float32 values on the same sigmoid; y may be x
	// and dx may be dy.
	silu     func(n int, x, y *float32)
	siluBack func(n int, x, dy, dx *float32)
	// gelu and geluBack, when set, are Gelu (x·Φ(x)) and its gradient (dx =
	// dy·(Φ(x) + x·φ(x))) of n float32 values, with erf32's approximation; y may be
	// x and dx may be dy.
	gelu     func(n int, x, y *float32)
	geluBack func(n int, x, dy, dx *float32)
	// expShift, when set, writes y = e^(x - shift) of n float32 values (0 where x -
	// shift < -87, as exp32): a softmax row's exponentials, x ≤ shift (no clamp above).
	// y may be x.
	expShift func(n int, x *float32, shift float32, y *float32)
	// dwTaps, when set, sets y[r·ys+j] = min(max(bias + Σ_t w[t]·x[r·xs+offs[t]+j],
	// lo), hi) for j < n and r < rows (at least one), the taps added in order by
	// fused multiply-adds: a depthwise convolution's plane (conv_depthwise.go).
	// evenOdd, when set, sets even[r·ds+i] = x[r·xs+2i] and odd[r·ds+i] =
	// x[r·xs+2i+1] for i < n and r < rows (at least one). copyRows, when set, sets
	// dst[r·ds+j] = src[r·ss+j] for j < n and r < rows (both at least one).
	dwTaps   func(n, taps int, w *float32, offs *int, x, y *float32, bias, lo, hi float32, rows, xs, ys int)
	evenOdd  func(n int, x, even, odd *float32, rows, xs, ds int)
	copyRows func(n int, src, dst *float32, rows, ss, ds int)
	// firstMax, when set, sets code[r·cs+j] to the first t with x[r·xs+offs[t]+j]
	// equal to the maximum over t of those values, for j < n and r < rows (both at
	// least one, taps too): the cell a max pooling's window sends its gradient to
	// (pool.go). It returns whether a window's values summed to NaN (a NaN among them,
	// or infinities of both signs): the codes are then not to be used.
	firstMax func(n, taps int, offs *int, x *float32, code *int32, rows, xs, cs int) bool
	// maxTaps, when set, sets y[r·ys+j] to the maximum over t of x[r·xs+offs[t]+j],
	// ties to the first t, for j < n and r < rows (both at least one, taps too): a max
	// pooling's outputs without their positions (pool_taps.go). It returns whether a
	// window's values summed to NaN: the outputs are then not to be used.
	maxTaps func(n, taps int, offs *int, x, y *float32, rows, xs, ys int) bool
	// norm, when set, are the vector loops of the normalisation passes in this
	// kernel's instruction set (batchnorm.go).
	norm *normLoops
}

// tileClamp is the tile flag that clamps the stored values to [lo, hi] (NaN kept):
// a convolution fused with the Relu ([0, +Inf]) or Clip after it.
const tileClamp = 1

// tileSiLU is the tile flag that stores x·σ(x) of the values (the bits of
// [ActivationForward]'s SiLU), in kernels with siluStore.
const tileSiLU = 2

// gemmMinWork is the smallest product (multiply-adds) worth splitting
// across goroutines: about 20 µs of work at the micro-kernel's speed.
const gemmMinWork = 1 << 20

// axis maps an index along one dimension of a view to an element offset:
// i*stride, or tab[i] when tab is set.
type axis struct {
	stride int
	tab    []int32
}

func (a axis) at(i int) int {
	if a.tab != nil {
		return int(a.tab[i])
	}
	return i * a.stride
}

// panelsContiguous reports whether every panel of nr columns (from column
// 0, the last one partial) has consecutive offsets, as a kernel reading B
// in place needs.
func panelsContiguous(cols axis, n, nr int) bool {
	if cols.unit() {
		return true
	}
	if cols.tab == nil {
		return false
	}
	for j := 0; j < n; j++ {
		if j%nr != 0 && cols.tab[j] != cols.tab[j-1]+1 {
			return false
		}
	}
	return true
}

// unit reports whether consecutive indices are consecutive elements.
func (a axis) unit() bool { return a.tab == nil && a.stride == 1 }

// span returns the smallest and largest offset over indices [i0, i0+n).
func (a axis) span(i0, n int) (lo, hi int) {
	if a.tab == nil {
		lo, hi = i0*a.stride, (i0+n-1)*a.stride
		if lo > hi {
			lo, hi = hi, lo
		}
		return lo, hi
	}
	lo, hi = int(a.tab[i0]), int(a.tab[i0])
	for _, v := range a.tab[i0 : i0+n] {
		lo, hi = min(lo, int(v)), max(hi, int(v))
	}
	return lo, hi
}

// matView is a matrix whose element (r, c) is data[rows.at(r)+cols.at(c)]; with half,
// the bfloat16 value at that offset among data's (two to a slot: a compact copy, B of
// the bfloat16 kernel only, packed by packGatherHalf).
type matView struct {
	data       []float32
	rows, cols axis
	half       bool
}

// dense returns the view of the row-major r×c matrix in data with leading
// dimension ld, transposed when trans is set (then data holds a c×r
// matrix).
func dense(data []float32, ld int, trans bool) matView {
	if trans {
		return matView{data: data, rows: axis{stride: 1}, cols: axis{stride: ld}}
	}
	return matView{data: data, rows: axis{stride: ld}, cols: axis{stride: 1}}
}

// checkView panics unless every element of the r×c view lies in its data,
// so that the assembly never reads outside it.
func checkView(name string, v matView, r, c int) {
	rlo, rhi := v.rows.span(0, r)
	clo, chi := v.cols.span(0, c)
	n := len(v.data)
	if v.half {
		n = 2*n - 1 // the packers read one value past each offset
	}
	if rlo+clo < 0 || rhi+chi >= n || rhi+chi >= 1<<31 {
		panic("kernels: Gemm: " + name + " view reaches outside its data")
	}
}

// colMap describes C computed on a padded grid: columns j of the product
// with j%wp >= ow fall on the padding and are not stored, and the others
// are stored compactly, column j at (j/wp)*ow + j%wp.
type colMap struct {
	wp, ow int
}

// at returns the compact position of the first stored column at or after j.
func (m *colMap) at(j int) int {
	return j/m.wp*m.ow + min(j%m.wp, m.ow)
}

// mask returns the bits of the stored columns among [j0, j0+nr) that are
// below n.
func (m *colMap) mask(j0, nr, n int) uint32 {
	var mask uint32
	r := j0 % m.wp
	for j := 0; j < nr && j0+j < n; j++ {
		if r < m.ow {
			mask |= 1 << j
		}
		if r++; r == m.wp {
			r = 0
		}
	}
	return mask
}

// gemmArgs is one product C = alpha·A·B + beta·C (+ bias[i] on row i when
// bias is not nil) for sgemmPacked, with A an m×k view and B a k×n view.
// The caller has checked the sizes: m, n, k >= 1. With cmap set, C's
// columns are those of the padded grid (see colMap) and ldc is the
// distance between its compact rows. bInPlace says that B's columns are
// consecutive within every panel of the kernel's nr columns and that its
// data holds readable values past the view for whole panels (nr values
// from every panel's first column), so a kernel with tileRows may read B
// where it is instead of packing it.
type gemmArgs struct {
	m, n, k     int
	alpha, beta float32
	a, b        matView
	c           []float32
	ldc         int
	bias        []float32
	cmap        *colMap
	bInPlace    bool
	// bPairs says, with bInPlace, that B's data are bfloat16 pair slots, read in place by
	// the kernel's pairRows: B's row offsets (in slots) are those of its pair rows, the
	// same for k = 2q and 2q+1, and k is even.
	bPairs bool
	// ap, when set, is A already packed as sgemmInPlace packs it
	// (packedAIndex; B read in place only); a is then unused.
	ap []float32
	// apCols, when set, is A already packed as sgemmByCols packs it (packAByCols;
	// B packed); a is then unused.
	apCols []float32
	// bp, when set, is B already packed as sgemmByRows packs it (packBWhole; not read
	// in place); b is then only checked, not read.
	bp []float32
	// act is applied as C is stored (the last k block's tiles carry tileClamp, or
	// tileSiLU): none, a Relu, a Clip, or a SiLU (kernels with siluStore only).
	act Activation
}

// tileFlags returns the flags of the tiles of the k block starting at
// pc, of width kc.
func (g *gemmArgs) tileFlags(pc, kc int) uint32 {
	switch {
	case g.act.Kind == NoActivation || pc+kc < g.k:
		return 0
	case g.act.Kind == SiLUActivation:
		return tileSiLU
	}
	return tileClamp
}

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices
// with kernel kern on up to nw goroutines. With beta == 0, C is not read.
func sgemm(kern *gemmKernel, nw int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 || alpha == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	sgemmPacked(kern, nw, gemmArgs{
		m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: dense(a, lda, transA), b: dense(b, ldb, transB), c: c, ldc: ldc,
	})
}

// sgemmPacked runs a product on up to nw goroutines.
//
// The product is split along the longer side of C. The operand that every
// part needs (A when the columns are split, B when the rows are) is packed
// once, by all goroutines together, and shared; each goroutine then packs
// its own blocks of the other operand as it goes. Parts are handed out
// dynamically, so that a goroutine slowed down by another process does not
// hold up the rest.
func sgemmPacked(kern *gemmKernel, nw int, g gemmArgs) {
	if g.b.half && (kern.packGatherHalf == nil || g.bInPlace || g.bp != nil) {
		panic("kernels: Gemm: B of bfloat16 values needs a kernel that packs them")
	}
	inPlace := g.bInPlace && kern.readsBInPlace(g.bPairs)
	if g.bPairs && (!inPlace || g.k%2 != 0) {
		panic("kernels: Gemm: B in pair slots needs a kernel that reads them in place and an even depth")
	}
	if g.ap != nil {
		if !inPlace || len(g.ap) < packedALen(kern, g.m, g.k) {
			panic("kernels: Gemm: packed A needs B read in place and room for every panel")
		}
	} else {
		checkView("A", g.a, g.m, g.k)
	}
	checkView("B", g.b, g.k, g.n)
	last := (g.m-1)*g.ldc + g.n - 1
	if g.cmap != nil {
		jl := g.n - 1 // the last stored column
		if jl%g.cmap.wp >= g.cmap.ow {
			jl = jl/g.cmap.wp*g.cmap.wp + g.cmap.ow - 1
		}
		last = (g.m-1)*g.ldc + g.cmap.at(jl)
	}
	if last >= len(g.c) {
		panic("kernels: Gemm: C is too short")
	}
	if g.act.Kind == SiLUActivation && !kern.siluStore {
		panic("kernels: Gemm: a SiLU stored by a kernel without siluStore")
	}
	if g.m*g.n*g.k < gemmMinWork {
		nw = 1
	}
	if g.bp != nil && (g.bInPlace || g.apCols != nil || len(g.bp) < packedBLen(kern, g.k, g.n)) {
		panic("kernels: Gemm: packed B needs B packed whole, not read in place")
	}
	if inPlace {
		if !panelsContiguous(g.b.cols, g.n, kern.nr) {
			panic("kernels: Gemm: B read in place must have consecutive columns in every panel")
		}
		rlo, rhi := g.b.rows.span(0, g.k)
		last := 0 // the largest panel start
		for j := 0; j < g.n; j += kern.nr {
			last = max(last, g.b.cols.at(j))
		}
		if rlo < 0 || rhi+last+kern.nr > len(g.b.data) {
			panic("kernels: Gemm: B read in place has no room past its last row")
		}
		sgemmInPlace(kern, nw, g)
		return
	}
	if g.apCols != nil && len(g.apCols) < packedALen(kern, g.m, g.k) {
		panic("kernels: Gemm: packed A has no room for every panel")
	}
	if g.n >= g.m || g.apCols != nil {
		sgemmByCols(kern, nw, g)
	} else {
		sgemmByRows(kern, nw, g)
	}
}

// chunks returns the width of the parts (a multiple of unit, at most
// maxChunk and at least minChunk where dim allows) and their number, aiming
// at about four parts per goroutine. The number is a multiple of nw where
// the parts can be near equal (widths differing by at most a unit or two),
// so that no goroutine is left with one part more than the others.
func chunks(dim, unit, nw, minChunk, maxChunk int) (width, count int) {
	units := (dim + unit - 1) / unit
	maxUnits, minUnits := max(1, maxChunk/unit), max(1, minChunk/unit)
	count = (units + maxUnits - 1) / maxUnits // the fewest parts the cap allows
	if nw > 1 {
		count = max(count, min(4*nw, units/minUnits))
		count = (count + nw - 1) / nw * nw
	}
	count = max(1, min(count, units))
	per := (units + count - 1) / count
	width = per * unit
	return width, (dim + width - 1) / width
}

// sgemmByCols packs all of A once (block pc at ap[pc*mp:], its row panel
// ir at ir*kc within the block) and shares it; goroutines take blocks of
// columns, packing their part of B (or reading it from g.bp, packed whole).
func sgemmByCols(kern *gemmKernel, nw int, g gemmArgs) {
	m, n, k := g.m, g.n, g.k
	mp := kern.panelRows(m)
	ap := g.apCols
	if ap == nil {
		ap = getBuf[float32](mp * k)
		defer putBuf(ap)
		packAByCols(kern, nw, g.a, m, k, ap)
	}
	np := kern.panelCols(n)
	width, count := chunks(n, kern.nr, nw, 128, kern.nc)
	var next atomic.Int64
	nw = min(nw, count)
	parallelFor(nw, nw, func(_, _, _ int) {
		var bbuf []float32
		if g.bp == nil {
			bbuf = getBuf[float32](kern.kc * width)
			defer putBuf(bbuf)
		}
		for {
			q := int(next.Add(1)) - 1
			if q >= count {
				return
			}
			j0 := q * width
			nc := min(width, n-j0)
			for pc := 0; pc < k; pc += kern.kc {
				kc := min(kern.kc, k-pc)
				panels := bbuf
				if g.bp != nil {
					panels = g.bp[pc*np+j0*kc:]
				} else {
					packB(kern, g.b, pc, j0, kc, nc, bbuf)
				}
				bt, bias := g.beta, g.bias
				if pc > 0 {
					bt, bias = 1, nil
				}
				for ic := 0; ic < m; ic += kern.mc {
					mc := min(kern.mc, m-ic)
					var bs []float32
					if bias != nil {
						bs = bias[ic:]
					}
					macroKernel(kern, &g, mc, nc, kc, ap[pc*mp+ic*kc:], panels, nil, bt, bs, ic, j0, g.tileFlags(pc, kc))
				}
			}
		}
	})
}

// sgemmByRows packs all of B once (packBWhole), unless given it packed (g.bp), and
// shares it; goroutines take blocks of rows, packing their part of A.
func sgemmByRows(kern *gemmKernel, nw int, g gemmArgs) {
	m, n, k := g.m, g.n, g.k
	np := kern.panelCols(n)
	bp := g.bp
	if bp == nil {
		bp = getBuf[float32](packedBLen(kern, k, n))
		defer putBuf(bp)
		packBWhole(kern, nw, g.b, k, n, bp)
	}
	height, count := chunks(m, kern.mr, nw, 4*kern.mr, kern.mc)
	var next atomic.Int64
	nw = min(nw, count)
	parallelFor(nw, nw, func(_, _, _ int) {
		abuf := getBuf[float32](kern.kc * height)
		defer putBuf(abuf)
		for {
			q := int(next.Add(1)) - 1
			if q >= count {
				return
			}
			i0 := q * height
			mc := min(height, m-i0)
			for pc := 0; pc < k; pc += kern.kc {
				kc := min(kern.kc, k-pc)
				packA(kern, g.a, i0, pc, mc, kc, abuf)
				bt, bias := g.beta, g.bias
				if pc > 0 {
					bt, bias = 1, nil
				}
				var bs []float32
				if bias != nil {
					bs = bias[i0:]
				}
				for jc := 0; jc < n; jc += kern.nc {
					nc := min(kern.nc, n-jc)
					macroKernel(kern, &g, mc, nc, kc, abuf, bp[pc*np+jc*kc:], nil, bt, bs, i0, jc, g.tileFlags(pc, kc))
				}
			}
		}
	})
}

// panelRows and panelCols are m rows and n columns rounded up to whole micro-tiles (mr
// rows of A's panels, nr columns of B's): the packed operands' extents.
func (kern *gemmKernel) panelRows(m int) int { return (m + kern.mr - 1) / kern.mr * kern.mr }
func (kern *gemmKernel) panelCols(n int) int { return (n + kern.nr - 1) / kern.nr * kern.nr }

// packedBLen is the length of B (k×n) packed whole (packBWhole).
func packedBLen(kern *gemmKernel, k, n int) int {
	return kern.panelCols(n) * k
}

// packBWhole packs all of B (k×n) into bp on up to nw goroutines: block pc (k rows from
// pc, a multiple of kc) at bp[pc*np:], np the columns rounded up to whole panels, its
// column panel from j (a multiple of nr) at j*kc within the block.
func packBWhole(kern *gemmKernel, nw int, b matView, k, n int, bp []float32) {
	np := kern.panelCols(n)
	nkb, njb := (k+kern.kc-1)/kern.kc, (n+kern.nc-1)/kern.nc
	parallelFor(nkb*njb, min(nw, nkb*njb), func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			pc, jc := u/njb*kern.kc, u%njb*kern.nc
			kc, nc := min(kern.kc, k-pc), min(kern.nc, n-jc)
			packB(kern, b, pc, jc, kc, nc, bp[pc*np+jc*kc:])
		}
	})
}

// sgemmInPlace runs a product whose B is read in place: all of A is
// packed once and shared, and goroutines take blocks of columns (or of
// rows, when C is narrow), each with the row offsets of B.
func sgemmInPlace(kern *gemmKernel, nw int, g gemmArgs) {
	m, n, k := g.m, g.n, g.k
	kcb := inPlaceKBlock(kern, k)
	mp := kern.panelRows(m)
	koff := getInt32s(k)
	defer putInt32s(koff)
	for p := range koff {
		koff[p] = int32(g.b.rows.at(p))
	}
	ap := g.ap
	if ap == nil {
		ap = getBuf[float32](mp * k)
		defer putBuf(ap)
		packAInPlace(kern, nw, g.a, m, k, ap)
	}
	// Parts: column blocks, or row blocks of column blocks when the
	// columns alone would leave a goroutine idle.
	width, cols := chunks(n, kern.nr, nw, 128, kern.nc)
	height, rowParts := m, 1
	if cols < 2*nw && m >= 4*kern.mr {
		height, rowParts = chunks(m, kern.mr, max(1, (2*nw+cols-1)/cols), 4*kern.mr, m)
	}
	count := cols * rowParts
	var next atomic.Int64
	nw = min(nw, count)
	parallelFor(nw, nw, func(_, _, _ int) {
		for {
			q := int(next.Add(1)) - 1
			if q >= count {
				return
			}
			j0, i0 := q%cols*width, q/cols*height
			nc, mh := min(width, n-j0), min(height, m-i0)
			for pc := 0; pc < k; pc += kcb {
				kc := min(kcb, k-pc)
				bt, bias := g.beta, g.bias
				if pc > 0 {
					bt, bias = 1, nil
				}
				// A's row blocks of mc rows are packed at ic*kc within the
				// block pc; a part's rows start on a panel boundary.
				for ic := i0; ic < i0+mh; {
					blk := ic / kern.mc * kern.mc
					mc := min(kern.mc, m-blk)
					end := min(blk+mc, i0+mh)
					var bs []float32
					if bias != nil {
						bs = bias[ic:]
					}
					macroKernel(kern, &g, end-ic, nc, kc, ap[pc*mp+blk*kc+(ic-blk)*kc:], nil, koff[pc:pc+kc], bt, bs, ic, j0, g.tileFlags(pc, kc))
					ic = end
				}
			}
		}
	})
}

// packAByCols packs all of the m×k A as sgemmByCols reads it (k blocks of kern.kc) into
// ap (packedALen values), on up to nw goroutines.
func packAByCols(kern *gemmKernel, nw int, a matView, m, k int, ap []float32) {
	packAPanels(kern, nw, a, m, k, kern.kc, ap)
}

// packAOnce packs all of the m×k A for products of kern that share it, into a buffer
// from the pool (putBuf it after them): as sgemmInPlace reads it where the kernel reads B
// in place and inPlace is set (set gemmArgs.ap), else as sgemmByCols reads it (set
// gemmArgs.apCols). A batch's per-image products would otherwise each pack it again.
func packAOnce(kern *gemmKernel, inPlace bool, a matView, m, k int) []float32 {
	ap := getBuf[float32](packedALen(kern, m, k))
	packAAll(kern, inPlace, a, m, k, ap)
	return ap
}

// packAAll packs all of the m×k A into ap (packedALen values) as packAOnce says, on
// every core.
func packAAll(kern *gemmKernel, inPlace bool, a matView, m, k int, ap []float32) {
	if inPlace && (kern.tileRows != nil || kern.pairRows != nil) {
		packAInPlace(kern, runtime.GOMAXPROCS(0), a, m, k, ap)
	} else {
		packAByCols(kern, runtime.GOMAXPROCS(0), a, m, k, ap)
	}
}

// packAInPlace packs all of the m×k A as sgemmInPlace reads it (packedAIndex; k blocks
// of inPlaceKBlock) into ap (packedALen values), on up to nw goroutines: a products'
// shared A packed once.
func packAInPlace(kern *gemmKernel, nw int, a matView, m, k int, ap []float32) {
	packAPanels(kern, nw, a, m, k, inPlaceKBlock(kern, k), ap)
}

// packAPanels packs A in k blocks of kcb, row blocks of kern.mc within each (block pc
// at ap[pc*mp:], its rows ic at ic*kc within it).
func packAPanels(kern *gemmKernel, nw int, a matView, m, k, kcb int, ap []float32) {
	mp := kern.panelRows(m)
	nkb, nib := (k+kcb-1)/kcb, (m+kern.mc-1)/kern.mc
	parallelFor(nkb*nib, min(nw, nkb*nib), func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			pc, ic := u/nib*kcb, u%nib*kern.mc
			kc, mc := min(kcb, k-pc), min(kern.mc, m-ic)
			packA(kern, a, ic, pc, mc, kc, ap[pc*mp+ic*kc:])
		}
	})
}

// inPlaceKBlock returns the depth of sgemmInPlace's k blocks for depth k:
// even blocks of at most kern.kcRows (576 in one, 1152 in two of 576).
func inPlaceKBlock(kern *gemmKernel, k int) int {
	nkb := (k + kern.kcRows - 1) / kern.kcRows
	kcb := (k + nkb - 1) / nkb
	if kern.pairRows != nil {
		kcb += kcb & 1 // whole pairs in every block
	}
	return kcb
}

// readsBInPlace says whether kern reads B in place: from pair slots (pairs, pairRows)
// or from float32 values (tileRows).
func (kern *gemmKernel) readsBInPlace(pairs bool) bool {
	if pairs {
		return kern.pairRows != nil
	}
	return kern.tileRows != nil
}

// packedALen is the length of an m×k A packed as sgemmInPlace or sgemmByCols packs it
// (the two layouts differ in their k blocks only).
func packedALen(kern *gemmKernel, m, k int) int {
	return kern.panelRows(m) * k
}

// packedAIndex returns where sgemmInPlace's packed A (m rows; kcb from
// inPlaceKBlock) holds A[i][p]: k block pc, row panel i/mr within it, then
// p's group of mr values. The rows past m of the last panel are zeros.
func packedAIndex(kern *gemmKernel, m, k, kcb, i, p int) int {
	mr := kern.mr
	mp := (m + mr - 1) / mr * mr
	pc := p / kcb * kcb
	kc := min(kcb, k-pc)
	return pc*mp + (i-i%mr)*kc + (p-pc)*mr + i%mr
}

// scaleRows sets C = beta·C (C = 0 when beta == 0, whatever C held).
func scaleRows[T Float](m, n int, beta T, c []T, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// checkGemm panics unless the slices are long enough for the product, so
// that the assembly never touches memory outside them.
func checkGemm[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int) {
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	switch {
	case lda < max(1, ac) || ldb < max(1, bc) || ldc < max(1, n):
		panic("kernels: Gemm: leading dimension too small")
	case len(a) < (ar-1)*lda+ac:
		panic("kernels: Gemm: A is too short")
	case len(b) < (br-1)*ldb+bc:
		panic("kernels: Gemm: B is too short")
	case len(c) < (m-1)*ldc+n:
		panic("kernels: Gemm: C is too short")
	}
}

// packA copies A[i0:i0+mc, p0:p0+kc] into dst as panels of mr rows: panel
// q holds rows q*mr.. as kc groups of mr values (one per row), zero-padded
// past mc.
func packA(kern *gemmKernel, a matView, i0, p0, mc, kc int, dst []float32) {
	if a.half {
		panic("kernels: Gemm: A of bfloat16 values")
	}
	packPanels(kern, kern.mr, a.data, a.cols, a.rows, p0, kc, i0, mc, false, dst)
}

// packB copies B[p0:p0+kc, j0:j0+nc] into dst as panels of nr columns:
// panel q holds columns q*nr.. as kc rows of nr values, zero-padded past
// nc.
func packB(kern *gemmKernel, b matView, p0, j0, kc, nc int, dst []float32) {
	packPanels(kern, kern.nr, b.data, b.rows, b.cols, p0, kc, j0, nc, b.half, dst)
}

// packPanels fills the panels of width w for lanes [l0, l0+nl): panel q
// holds dst[q*w*kc+p*w+l] = src[kAxis.at(p0+p) + lanes.at(l0+q*w+l)] for
// p < kc, zero past the last lane; with half, the values are bfloat16 (matView.half).
func packPanels(kern *gemmKernel, w int, src []float32, kAxis, lanes axis, p0, kc, l0, nl int, half bool, dst []float32) {
	// The tables come from the free lists: on the stack they would escape
	// (the packers are called through func values) and cost an allocation
	// and a clear per call, which were 4% of a MobileNet training step.
	tables := getInt32s(kc + w)
	ko, ln := tables[:kc], tables[kc:kc+w]
	for p := range ko {
		ko[p] = int32(kAxis.at(p0 + p))
	}
	for q := 0; q*w < nl; q++ {
		n := min(w, nl-q*w)
		d := dst[q*w*kc : (q+1)*w*kc]
		if lanes.unit() && !half {
			kern.packCopy(w, src[l0+q*w:], ko, n, d)
			continue
		}
		for l := range n {
			ln[l] = int32(lanes.at(l0 + q*w + l))
		}
		clear(ln[n:]) // lanes past the last are never read, but stay in range
		if half {
			kern.packGatherHalf(w, src, ko, ln, n, d)
			continue
		}
		kern.packGather(w, src, ko, ln, n, d)
	}
	putInt32s(tables)
}

// macroKernel multiplies the packed mc×kc block of A (rows i0.. of C) by
// the packed kc×nc block of B (columns j0..) into C: C = alpha·AB + beta·C
// (C not read when beta == 0), plus bias[i] on row i when bias is not nil.
//
// With koff set, B is not packed: it is read in place (kern.tileRows), row p
// of the block at g.b.data[cols.at(column) + koff[p]], and bp is unused.
func macroKernel(kern *gemmKernel, g *gemmArgs, mc, nc, kc int, ap, bp []float32, koff []int32, beta float32, bias []float32, i0, j0 int, flags uint32) {
	kern.runs.Add(1)
	if flags&tileSiLU != 0 {
		kern.siluRuns.Add(1)
	}
	if g.bPairs {
		kern.pairRuns.Add(1)
	}
	mr, nr := kern.mr, kern.nr
	lo, hi := g.act.bounds()
	for jr := 0; jr < nc; jr += nr {
		n := min(nr, nc-jr)
		mask := uint32(1)<<n - 1
		col := j0 + jr
		if g.cmap != nil {
			mask = g.cmap.mask(col, nr, g.n)
			if mask == 0 {
				continue
			}
			col = g.cmap.at(col)
		}
		var bpan, bsrc []float32
		if koff != nil {
			bsrc = g.b.data[g.b.cols.at(j0+jr):]
		} else {
			bpan = bp[jr*kc : jr*kc+kc*nr]
		}
		for ir := 0; ir < mc; ir += mr {
			rows := min(mr, mc-ir)
			apan := ap[ir*kc : ir*kc+kc*mr]
			var bs []float32
			if bias != nil {
				bs = bias[ir : ir+rows]
				if rows < mr { // the kernels read mr biases (rare: the last rows)
					bs = append(make([]float32, 0, mr), bs...)[:mr]
				}
			}
			off := (i0+ir)*g.ldc + col
			ct := g.c[off : off+(rows-1)*g.ldc+bits.OnesCount32(mask)]
			switch {
			case koff != nil && g.bPairs:
				kern.pairRows(kc, apan, bsrc, koff, ct, g.ldc, g.alpha, beta, bs, rows, mask, flags, lo, hi)
			case koff != nil:
				kern.tileRows(kc, apan, bsrc, koff, ct, g.ldc, g.alpha, beta, bs, rows, mask, flags, lo, hi)
			default:
				kern.tile(kc, apan, bpan, ct, g.ldc, g.alpha, beta, bs, rows, mask, flags, lo, hi)
			}
		}
	}
}

// microKernelGo is the portable micro-kernel for any mr×nr (the contract
// of gemmKernel.tile).
func microKernelGo(mr, nr int) func(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
	return func(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
		var acc [16 * 32]float32
		t := acc[:mr*nr]
		a, b = a[:kc*mr], b[:kc*nr]
		for p := 0; p < kc; p++ {
			bp := b[p*nr : p*nr+nr]
			for i, ai := range a[p*mr : p*mr+mr] {
				row := t[i*nr : i*nr+nr]
				for j, bv := range bp {
					row[j] += ai * bv
				}
			}
		}
		storeTile(t, nr, c, ldc, alpha, beta, bias, rows, mask, flags, lo, hi)
	}
}

// storeTile stores the tile t (nr columns per row) with the contract of
// gemmKernel.tile.
func storeTile(t []float32, nr int, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
	for i := 0; i < rows; i++ {
		var b0 float32
		if bias != nil {
			b0 = bias[i]
		}
		q := i * ldc
		for j, v := range t[i*nr : i*nr+nr] {
			if mask&(1<<j) == 0 {
				continue
			}
			v = alpha*v + b0
			if beta != 0 {
				v += beta * c[q]
			}
			if flags&tileClamp != 0 {
				v = min(max(v, lo), hi)
			}
			c[q] = v
			q++
		}
	}
}

// packCopyGo and packGatherGo are the portable panel packers (the contract
// of gemmKernel.packCopy and packGather).
func packCopyGo(w int, src []float32, koff []int32, n int, dst []float32) {
	for p, o := range koff {
		d := dst[p*w : p*w+w]
		copy(d[:n], src[o:int(o)+n])
		clear(d[n:])
	}
}

func packGatherGo(w int, src []float32, koff, lane []int32, n int, dst []float32) {
	if stridedGather(w, src, koff, lane, n, dst) {
		return
	}
	lane = lane[:n]
	for p, o := range koff {
		d := dst[p*w : p*w+w]
		for l, x := range lane {
			d[l] = src[o+x]
		}
		clear(d[n:])
	}
}

// stridedGather packs the common case of a gathered panel, lanes evenly
// spaced and k offsets consecutive (a row-major A, a transposed B), one
// lane (a run of kc consecutive values) at a time, and reports whether it
// did: reading each run once, in order, is several times faster than
// gathering w values at every k.
func stridedGather(w int, src []float32, koff, lane []int32, n int, dst []float32) bool {
	kc := len(koff)
	if kc < 2 || koff[kc-1]-koff[0] != int32(kc-1) || !evenlySpaced(koff) || !evenlySpaced(lane[:n]) {
		return false
	}
	if n < w {
		clear(dst[:kc*w])
	}
	o := int(koff[0])
	if w == 6 && n == 6 {
		s := int(lane[1] - lane[0])
		base := o + int(lane[0])
		r0, r1, r2 := src[base:base+kc], src[base+s:base+s+kc], src[base+2*s:base+2*s+kc]
		r3, r4, r5 := src[base+3*s:base+3*s+kc], src[base+4*s:base+4*s+kc], src[base+5*s:base+5*s+kc]
		for p := 0; p < kc; p++ {
			dp := (*[6]float32)(dst[p*6:])
			dp[0], dp[1], dp[2], dp[3], dp[4], dp[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
		}
		return true
	}
	for l := 0; l < n; l++ {
		run := src[o+int(lane[l]) : o+int(lane[l])+kc]
		for p, v := range run {
			dst[p*w+l] = v
		}
	}
	return true
}

// gemmFunc is a serial GEMM with [BLAS.Sgemm]'s meaning.
type gemmFunc[T Float] func(transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)

// parallelGemm runs a serial GEMM (OpenBLAS on one thread) over parts of C
// on up to GOMAXPROCS goroutines: blocks of columns when n is the larger
// dimension, else blocks of rows, handed out dynamically.
func parallelGemm[T Float](serial gemmFunc[T], transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	nw := runtime.GOMAXPROCS(0)
	if nw <= 1 || m*n*k < gemmMinWork || (m < 16 && n < 32) {
		serial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	byCols := n >= m
	width, count := splitEven(m, 8, 2*nw)
	if byCols {
		width, count = splitEven(n, 16, 2*nw)
	}
	var next atomic.Int64
	nw = min(nw, count)
	parallelFor(nw, nw, func(_, _, _ int) {
		for {
			q := int(next.Add(1)) - 1
			if q >= count {
				return
			}
			lo := q * width
			if byCols {
				hi := min(n, lo+width)
				var bs []T
				if transB {
					bs = b[lo*ldb:]
				} else {
					bs = b[lo:]
				}
				serial(transA, transB, m, hi-lo, k, alpha, a, lda, bs, ldb, beta, c[lo:], ldc)
				continue
			}
			hi := min(m, lo+width)
			var as []T
			if transA {
				as = a[lo:]
			} else {
				as = a[lo*lda:]
			}
			serial(transA, transB, hi-lo, n, k, alpha, as, lda, b, ldb, beta, c[lo*ldc:], ldc)
		}
	})
}

// splitEven cuts dim into at most parts parts of a multiple of unit. A
// serial BLAS call packs the shared operand again for every part, so
// parallelGemm makes few: two per goroutine, which still lets a goroutine
// that another process slows down hand work to the other.
func splitEven(dim, unit, parts int) (width, count int) {
	units := (dim + unit - 1) / unit
	width = (units + parts - 1) / parts * unit
	return width, (dim + width - 1) / width
}

func popcount(m uint32) int { return bits.OnesCount32(m) }

// evenlySpaced reports whether koff is an arithmetic progression.
func evenlySpaced(koff []int32) bool {
	if len(koff) < 3 {
		return true
	}
	step := koff[1] - koff[0]
	for p := 2; p < len(koff); p++ {
		if koff[p]-koff[p-1] != step {
			return false
		}
	}
	return true
}
