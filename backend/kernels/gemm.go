package kernels

import (
	"runtime"
	"sync/atomic"
)

// The toolkit's own float32 GEMM: the BLIS/GotoBLAS design in Go, with a
// 6×16 register-blocked micro-kernel in assembly (AVX2 and FMA, see
// gemm_amd64.s). gonum's pure-Go Sgemm is built on axpy and dot loops and
// reaches about 3 GFLOP/s per core here; a packed, register-blocked kernel
// runs an order of magnitude faster on the same cores and still needs no cgo.
//
// Loop structure for C[m×n] = alpha·op(A)·op(B) + beta·C (row-major):
//
//	for jc in steps of gemmNC over n            (B block: L3)
//	  for pc in steps of gemmKC over k          (pack B[pc:, jc:] into 16-column panels)
//	    for ic in steps of gemmMC over m        (pack A[ic:, pc:] into 6-row panels: L2)
//	      for jr over the 16-column panels      (one B panel: L1)
//	        for ir over the 6-row panels        (micro-kernel: 6×16 accumulators in registers)
//
// Packing also absorbs the transpositions, so a single micro-kernel serves
// every case; fringe tiles (fewer than 6 rows or 16 columns) go through a
// small buffer.
const (
	gemmMR = 6
	gemmNR = 16
	gemmKC = 256
	gemmMC = 144 // a multiple of gemmMR
	gemmNC = 4080
)

// gemmMinWork is the smallest product (multiply-adds) worth splitting
// across goroutines: about 20 µs of work at the micro-kernel's speed.
const gemmMinWork = 1 << 20

// sgemmSerial computes C = alpha·op(A)·op(B) + beta·C on the calling
// goroutine.
func sgemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(1, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemm computes C = alpha·op(A)·op(B) + beta·C with the packed
// micro-kernel on up to nw goroutines. With beta == 0, C is not read.
func sgemm(nw int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 || alpha == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	sgemmPacked(nw, gemmArgs{
		m: m, n: n, k: k, alpha: alpha, beta: beta,
		transA: transA, a: a, lda: lda,
		b: denseB{trans: transB, b: b, ldb: ldb}, c: c, ldc: ldc,
	})
}

// bPacker supplies the B operand of a packed product: packB writes
// op(B)[p0:p0+kc, j0:j0+nc] into dst as panels of gemmNR columns (panel q
// holds columns q*gemmNR.. as kc rows of gemmNR values, zero-padded past
// nc). A dense matrix is one source ([denseB]); a convolution's unfolded
// images are another, packed straight from the images without an im2col
// buffer (conv_packed.go).
type bPacker interface {
	packB(p0, j0, kc, nc int, dst []float32)
}

// denseB is a row-major matrix B (op(B) = Bᵀ when trans is set).
type denseB struct {
	trans bool
	b     []float32
	ldb   int
}

func (d denseB) packB(p0, j0, kc, nc int, dst []float32) {
	packB(d.trans, d.b, d.ldb, p0, j0, kc, nc, dst)
}

// gemmArgs is one product C = alpha·op(A)·op(B) + beta·C (+ bias[i] on
// row i when bias is not nil) for sgemmPacked. The caller has checked the
// sizes: m, n, k >= 1.
type gemmArgs struct {
	m, n, k     int
	alpha, beta float32
	transA      bool
	a           []float32
	lda         int
	b           bPacker
	c           []float32
	ldc         int
	bias        []float32
}

// sgemmPacked runs a product on up to nw goroutines.
//
// The product is split along the longer side of C. The operand that every
// part needs (A when the columns are split, B when the rows are) is packed
// once, by all goroutines together, and shared; each goroutine then packs
// its own blocks of the other operand as it goes. Parts are handed out
// dynamically, so that a goroutine slowed down by another process does not
// hold up the rest.
func sgemmPacked(nw int, g gemmArgs) {
	if g.m*g.n*g.k < gemmMinWork {
		nw = 1
	}
	if g.n >= g.m {
		sgemmByCols(nw, g)
	} else {
		sgemmByRows(nw, g)
	}
}

// chunks returns the width of the parts (a multiple of unit, at most
// maxChunk and at least minChunk where dim allows) and their number, aiming
// at about four parts per goroutine.
func chunks(dim, unit, nw, minChunk, maxChunk int) (width, count int) {
	units := (dim + unit - 1) / unit
	per := units
	if nw > 1 {
		per = max(minChunk/unit, (units+4*nw-1)/(4*nw))
	}
	per = max(1, min(per, maxChunk/unit))
	width = per * unit
	return width, (dim + width - 1) / width
}

// sgemmByCols packs all of op(A) once (block pc at ap[pc*mp:], its row panel
// ir at ir*kc within the block) and shares it; goroutines take blocks of
// columns, packing their part of op(B).
func sgemmByCols(nw int, g gemmArgs) {
	m, n, k := g.m, g.n, g.k
	mp := (m + gemmMR - 1) / gemmMR * gemmMR
	ap := getBuf[float32](mp * k)
	defer putBuf(ap)
	nkb, nib := (k+gemmKC-1)/gemmKC, (m+gemmMC-1)/gemmMC
	parallelFor(nkb*nib, min(nw, nkb*nib), func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			pc, ic := u/nib*gemmKC, u%nib*gemmMC
			kc, mc := min(gemmKC, k-pc), min(gemmMC, m-ic)
			packA(g.transA, g.a, g.lda, ic, pc, mc, kc, ap[pc*mp+ic*kc:])
		}
	})
	width, count := chunks(n, gemmNR, nw, 128, gemmNC)
	var next atomic.Int64
	nw = min(nw, count)
	parallelFor(nw, nw, func(_, _, _ int) {
		bbuf := getBuf[float32](gemmKC * width)
		defer putBuf(bbuf)
		for {
			q := int(next.Add(1)) - 1
			if q >= count {
				return
			}
			j0 := q * width
			nc := min(width, n-j0)
			for pc := 0; pc < k; pc += gemmKC {
				kc := min(gemmKC, k-pc)
				g.b.packB(pc, j0, kc, nc, bbuf)
				bt, bias := g.beta, g.bias
				if pc > 0 {
					bt, bias = 1, nil
				}
				for ic := 0; ic < m; ic += gemmMC {
					mc := min(gemmMC, m-ic)
					var bs []float32
					if bias != nil {
						bs = bias[ic:]
					}
					macroKernel(mc, nc, kc, g.alpha, ap[pc*mp+ic*kc:], bbuf, bt, bs, g.c[ic*g.ldc+j0:], g.ldc)
				}
			}
		}
	})
}

// sgemmByRows packs all of op(B) once (block pc at bp[pc*np:], its column
// panel jr at jr*kc within the block) and shares it; goroutines take blocks
// of rows, packing their part of op(A).
func sgemmByRows(nw int, g gemmArgs) {
	m, n, k := g.m, g.n, g.k
	np := (n + gemmNR - 1) / gemmNR * gemmNR
	bp := getBuf[float32](np * k)
	defer putBuf(bp)
	nkb, njb := (k+gemmKC-1)/gemmKC, (n+gemmNC-1)/gemmNC
	parallelFor(nkb*njb, min(nw, nkb*njb), func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			pc, jc := u/njb*gemmKC, u%njb*gemmNC
			kc, nc := min(gemmKC, k-pc), min(gemmNC, n-jc)
			g.b.packB(pc, jc, kc, nc, bp[pc*np+jc*kc:])
		}
	})
	height, count := chunks(m, gemmMR, nw, 4*gemmMR, gemmMC)
	var next atomic.Int64
	nw = min(nw, count)
	parallelFor(nw, nw, func(_, _, _ int) {
		abuf := getBuf[float32](gemmKC * height)
		defer putBuf(abuf)
		for {
			q := int(next.Add(1)) - 1
			if q >= count {
				return
			}
			i0 := q * height
			mc := min(height, m-i0)
			for pc := 0; pc < k; pc += gemmKC {
				kc := min(gemmKC, k-pc)
				packA(g.transA, g.a, g.lda, i0, pc, mc, kc, abuf)
				bt, bias := g.beta, g.bias
				if pc > 0 {
					bt, bias = 1, nil
				}
				var bs []float32
				if bias != nil {
					bs = bias[i0:]
				}
				for jc := 0; jc < n; jc += gemmNC {
					nc := min(gemmNC, n-jc)
					macroKernel(mc, nc, kc, g.alpha, abuf, bp[pc*np+jc*kc:], bt, bs, g.c[i0*g.ldc+jc:], g.ldc)
				}
			}
		}
	})
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

// packA copies op(A)[i0:i0+mc, p0:p0+kc] into dst as panels of gemmMR rows:
// panel q holds rows q*gemmMR.. as kc groups of gemmMR values (one per row),
// zero-padded past mc.
func packA(transA bool, a []float32, lda, i0, p0, mc, kc int, dst []float32) {
	for ir := 0; ir < mc; ir += gemmMR {
		mr := min(gemmMR, mc-ir)
		d := dst[ir*kc : ir*kc+kc*gemmMR]
		if transA {
			// op(A)[i][p] = A[p][i]: each p reads mr consecutive values.
			if mr == gemmMR {
				packA6T(kc, a[p0*lda+i0+ir:], lda, d)
				continue
			}
			for p := 0; p < kc; p++ {
				src := a[(p0+p)*lda+i0+ir:]
				dp := d[p*gemmMR : p*gemmMR+gemmMR]
				for r := range dp {
					if r < mr {
						dp[r] = src[r]
					} else {
						dp[r] = 0
					}
				}
			}
			continue
		}
		if mr == gemmMR {
			base := (i0+ir)*lda + p0
			r0 := a[base : base+kc]
			r1 := a[base+lda : base+lda+kc]
			r2 := a[base+2*lda : base+2*lda+kc]
			r3 := a[base+3*lda : base+3*lda+kc]
			r4 := a[base+4*lda : base+4*lda+kc]
			r5 := a[base+5*lda : base+5*lda+kc]
			for p := 0; p < kc; p++ {
				dp := (*[gemmMR]float32)(d[p*gemmMR:])
				dp[0], dp[1], dp[2], dp[3], dp[4], dp[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
			continue
		}
		clear(d)
		for r := 0; r < mr; r++ {
			row := a[(i0+ir+r)*lda+p0 : (i0+ir+r)*lda+p0+kc]
			for p, v := range row {
				d[p*gemmMR+r] = v
			}
		}
	}
}

// packB copies op(B)[p0:p0+kc, j0:j0+nc] into dst as panels of gemmNR
// columns: panel q holds columns q*gemmNR.. as kc rows of gemmNR values,
// zero-padded past nc.
func packB(transB bool, b []float32, ldb, p0, j0, kc, nc int, dst []float32) {
	for jr := 0; jr < nc; jr += gemmNR {
		nr := min(gemmNR, nc-jr)
		d := dst[jr*kc : jr*kc+kc*gemmNR]
		if !transB {
			if nr == gemmNR {
				packB16(kc, b[p0*ldb+j0+jr:], ldb, d)
				continue
			}
			for p := 0; p < kc; p++ {
				dp := d[p*gemmNR : p*gemmNR+gemmNR]
				copy(dp, b[(p0+p)*ldb+j0+jr:][:nr])
				clear(dp[nr:])
			}
			continue
		}
		// op(B)[p][j] = B[j][p]: read each of the nr rows of B once.
		if nr < gemmNR {
			clear(d)
		}
		for j := 0; j < nr; j++ {
			col := b[(j0+jr+j)*ldb+p0:][:kc]
			for p, v := range col {
				d[p*gemmNR+j] = v
			}
		}
	}
}

// macroKernel multiplies the packed mc×kc block of A by the packed kc×nc
// block of B into C: C = alpha·AB + beta·C (C not read when beta == 0),
// plus bias[i] on row i when bias is not nil.
func macroKernel(mc, nc, kc int, alpha float32, ap, bp []float32, beta float32, bias []float32, c []float32, ldc int) {
	for jr := 0; jr < nc; jr += gemmNR {
		nr := min(gemmNR, nc-jr)
		bpan := bp[jr*kc : jr*kc+kc*gemmNR]
		for ir := 0; ir < mc; ir += gemmMR {
			mr := min(gemmMR, mc-ir)
			apan := ap[ir*kc : ir*kc+kc*gemmMR]
			var bs []float32
			if bias != nil {
				bs = bias[ir : ir+mr]
			}
			if mr == gemmMR && nr == gemmNR {
				ct := c[ir*ldc+jr : ir*ldc+jr+(gemmMR-1)*ldc+gemmNR]
				microKernel(kc, apan, bpan, ct, ldc, alpha, beta, bs)
				continue
			}
			var tile [gemmMR * gemmNR]float32
			microKernel(kc, apan, bpan, tile[:], gemmNR, 1, 0, nil)
			for i := 0; i < mr; i++ {
				row := c[(ir+i)*ldc+jr : (ir+i)*ldc+jr+nr]
				t := tile[i*gemmNR : i*gemmNR+nr]
				var b0 float32
				if bs != nil {
					b0 = bs[i]
				}
				if beta == 0 {
					for j, v := range t {
						row[j] = alpha*v + b0
					}
				} else {
					for j, v := range t {
						row[j] = alpha*v + b0 + beta*row[j]
					}
				}
			}
		}
	}
}

// microKernelGo is the portable micro-kernel: c[i*ldc+j] = alpha·Σ_p
// a[p*6+i]·b[p*16+j] + bias[i] + beta·c[i*ldc+j] for the 6×16 tile (c not
// read when beta == 0; no bias when bias is nil). The assembly kernel
// computes the same.
func microKernelGo(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32) {
	var acc [gemmMR][gemmNR]float32
	a, b = a[:kc*gemmMR], b[:kc*gemmNR]
	for p := 0; p < kc; p++ {
		bp := (*[gemmNR]float32)(b[p*gemmNR:])
		ap := (*[gemmMR]float32)(a[p*gemmMR:])
		for i := range gemmMR {
			ai := ap[i]
			row := &acc[i]
			for j := range gemmNR {
				row[j] += ai * bp[j]
			}
		}
	}
	for i := range gemmMR {
		row := c[i*ldc : i*ldc+gemmNR]
		var b0 float32
		if bias != nil {
			b0 = bias[i]
		}
		for j := range gemmNR {
			if beta == 0 {
				row[j] = alpha*acc[i][j] + b0
			} else {
				row[j] = alpha*acc[i][j] + b0 + beta*row[j]
			}
		}
	}
}

// gemmFunc is a serial GEMM with [BLAS.Sgemm]'s meaning.
type gemmFunc[T Float] func(transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)

// parallelGemm runs a serial GEMM (OpenBLAS on one thread) over parts of C
// on up to GOMAXPROCS goroutines: blocks of columns when n is the larger
// dimension, else blocks of rows, handed out dynamically.
func parallelGemm[T Float](serial gemmFunc[T], transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	nw := runtime.GOMAXPROCS(0)
	if nw <= 1 || m*n*k < gemmMinWork || (m < 2*gemmMR && n < 2*gemmNR) {
		serial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	byCols := n >= m
	width, count := splitEven(m, gemmMR, 2*nw)
	if byCols {
		width, count = splitEven(n, gemmNR, 2*nw)
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

// packB16Go copies kc rows of 16 values, ldb apart in src, into dst.
func packB16Go(kc int, src []float32, ldb int, dst []float32) {
	for p := 0; p < kc; p++ {
		*(*[gemmNR]float32)(dst[p*gemmNR:]) = *(*[gemmNR]float32)(src[p*ldb:])
	}
}

// packA6TGo is the portable packA6T: dst[p*6+i] = src[p*lda+i].
func packA6TGo(kc int, src []float32, lda int, dst []float32) {
	for p := 0; p < kc; p++ {
		s := (*[gemmMR]float32)(src[p*lda:])
		d := (*[gemmMR]float32)(dst[p*gemmMR:])
		d[0], d[1], d[2], d[3], d[4], d[5] = s[0], s[1], s[2], s[3], s[4], s[5]
	}
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
