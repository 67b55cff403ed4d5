package kernels

import (
	"runtime"
	"sync"
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

// gemmBufs are one goroutine's packing buffers, of fixed sizes so that the
// pool always hands back a buffer that fits.
type gemmBufs struct {
	a [gemmMC * gemmKC]float32
	b [gemmKC * gemmNC]float32
}

var gemmPool = sync.Pool{New: func() any { return new(gemmBufs) }}

// sgemmSerial computes C = alpha·op(A)·op(B) + beta·C on the calling
// goroutine with the packed micro-kernel. With beta == 0, C is not read.
func sgemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 || alpha == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	buf := gemmPool.Get().(*gemmBufs)
	defer gemmPool.Put(buf)
	for jc := 0; jc < n; jc += gemmNC {
		nc := min(gemmNC, n-jc)
		for pc := 0; pc < k; pc += gemmKC {
			kc := min(gemmKC, k-pc)
			packB(transB, b, ldb, pc, jc, kc, nc, buf.b[:])
			bt := beta
			if pc > 0 {
				bt = 1
			}
			for ic := 0; ic < m; ic += gemmMC {
				mc := min(gemmMC, m-ic)
				packA(transA, a, lda, ic, pc, mc, kc, buf.a[:])
				macroKernel(mc, nc, kc, alpha, buf.a[:], buf.b[:], bt, c[ic*ldc+jc:], ldc)
			}
		}
	}
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
			for p := 0; p < kc; p++ {
				src := a[(p0+p)*lda+i0+ir:]
				dp := d[p*gemmMR : p*gemmMR+gemmMR]
				if mr == gemmMR {
					copy(dp, src[:gemmMR])
					continue
				}
				copy(dp, src[:mr])
				clear(dp[mr:])
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
				for p := 0; p < kc; p++ {
					*(*[gemmNR]float32)(d[p*gemmNR:]) = *(*[gemmNR]float32)(b[(p0+p)*ldb+j0+jr:])
				}
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
// block of B into C (C = alpha·AB + beta·C, C not read when beta == 0).
func macroKernel(mc, nc, kc int, alpha float32, ap, bp []float32, beta float32, c []float32, ldc int) {
	for jr := 0; jr < nc; jr += gemmNR {
		nr := min(gemmNR, nc-jr)
		bpan := bp[jr*kc : jr*kc+kc*gemmNR]
		for ir := 0; ir < mc; ir += gemmMR {
			mr := min(gemmMR, mc-ir)
			apan := ap[ir*kc : ir*kc+kc*gemmMR]
			if mr == gemmMR && nr == gemmNR {
				ct := c[ir*ldc+jr : ir*ldc+jr+(gemmMR-1)*ldc+gemmNR]
				microKernel(kc, apan, bpan, ct, ldc, alpha, beta)
				continue
			}
			var tile [gemmMR * gemmNR]float32
			microKernel(kc, apan, bpan, tile[:], gemmNR, 1, 0)
			for i := 0; i < mr; i++ {
				row := c[(ir+i)*ldc+jr : (ir+i)*ldc+jr+nr]
				t := tile[i*gemmNR : i*gemmNR+nr]
				if beta == 0 {
					for j, v := range t {
						row[j] = alpha * v
					}
				} else {
					for j, v := range t {
						row[j] = alpha*v + beta*row[j]
					}
				}
			}
		}
	}
}

// microKernelGo is the portable micro-kernel: c[i*ldc+j] = alpha·Σ_p
// a[p*6+i]·b[p*16+j] + beta·c[i*ldc+j] for the 6×16 tile (c not read when
// beta == 0). The assembly kernels compute the same.
func microKernelGo(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
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
		for j := range gemmNR {
			if beta == 0 {
				row[j] = alpha * acc[i][j]
			} else {
				row[j] = alpha*acc[i][j] + beta*row[j]
			}
		}
	}
}

// gemmFunc is a serial GEMM with [BLAS.Sgemm]'s meaning.
type gemmFunc[T Float] func(transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)

// gemmMinWork is the smallest product (multiply-adds) worth splitting
// across goroutines: about 30 µs of work at the micro-kernel's speed.
const gemmMinWork = 1 << 20

// parallelGemm runs serial over parts of C on up to GOMAXPROCS goroutines:
// blocks of columns when n is the larger dimension, else blocks of rows.
// The blocks are multiples of the micro-kernel's tile and handed out
// dynamically, so that a goroutine delayed by another process does not hold
// up the rest.
func parallelGemm[T Float](serial gemmFunc[T], transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	nw := runtime.GOMAXPROCS(0)
	if nw <= 1 || m*n*k < gemmMinWork || (m < 2*gemmMR && n < 2*gemmNR) {
		serial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	byCols := n >= m || m < 2*gemmMR
	dim, unit := m, gemmMR
	if byCols {
		dim, unit = n, gemmNR
	}
	// Aim for about 4 blocks per goroutine (load balance), each at least a
	// few tiles wide.
	units := (dim + unit - 1) / unit
	chunk := max(1, units/(4*nw))
	if byCols {
		chunk = max(chunk, min(units/nw, 8)) // at least 128 columns when there are enough
	}
	chunk = max(1, min(chunk, (units+nw-1)/nw))
	nChunks := (units + chunk - 1) / chunk
	var next atomic.Int64
	work := func(_, _, _ int) {
		for {
			q := int(next.Add(1)) - 1
			if q >= nChunks {
				return
			}
			lo := q * chunk * unit
			hi := min(dim, lo+chunk*unit)
			if byCols {
				bs := b[lo:]
				if transB {
					bs = b[lo*ldb:]
				}
				serial(transA, transB, m, hi-lo, k, alpha, a, lda, bs, ldb, beta, c[lo:], ldc)
			} else {
				as := a[lo*lda:]
				if transA {
					as = a[lo:]
				}
				serial(transA, transB, hi-lo, n, k, alpha, as, lda, b, ldb, beta, c[lo*ldc:], ldc)
			}
		}
	}
	parallelFor(min(nw, nChunks), min(nw, nChunks), work)
}
