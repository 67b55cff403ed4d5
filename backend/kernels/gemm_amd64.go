//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:generate go run ./internal/asmgen -o gemm_gen_amd64.s

// The assembly micro-kernels, fastest first; gemmKernels lists those this
// CPU runs (AVX-512 needs the F and VL subsets, AVX2 needs FMA too).
var (
	kernelAVX512 = &gemmKernel{
		name: "avx512", mr: 8, nr: 32, kc: 256, mc: 256, nc: 4096,
		tile: tileAVX512, packCopy: packCopyAVX512, packGather: packGatherAVX512, sparse: true, siluStore: true,
		tileRows: tileRowsAVX512, kcRows: 288, fastGather: true,
		wino:    &winoTransforms{tiles: 16, filterRows: 16, input: winoInput16, output: winoOutput16, filter: winoFilter16},
		sigmoid: sigmoidAVX512, silu: siluAVX512, siluBack: siluBackAVX512, gelu: geluAVX512, geluBack: geluBackAVX512,
		expShift: expShiftAVX512, dwTaps: dwTapsAVX512, evenOdd: evenOddAVX512, copyRows: copyRowsAVX512, firstMax: firstMaxAVX512, maxTaps: maxTapsAVX512,
		norm: &normLoops{block: 16, sum: sumAVX512, sumSqDev: sumSqDevAVX512, sumDevDot: sumDevDotAVX512, affine: affineAVX512, scale: scaleAVX512, bnBack: bnBackAVX512,
			clip: clipAVX512, clipBack: clipBackAVX512, relu: reluAVX512, reluBack: reluBackAVX512, hardSwish: hardSwishAVX512,
			lnApply: lnApplyAVX512, lnSums: lnSumsAVX512, lnBack: lnBackAVX512, lnDScale: lnDScaleAVX512, lnDBias: lnDBiasAVX512},
	}
	kernelAVX2 = &gemmKernel{
		name: "avx2", mr: 6, nr: 16, kc: 256, mc: 144, nc: 4080,
		tile: tileAVX2, packCopy: packCopyAVX2, packGather: packGatherAVX2,
		tileRows: tileRowsAVX2, kcRows: 256,
		wino:    &winoTransforms{tiles: 8, filterRows: 6, input: winoInput8, output: winoOutput8, filter: winoFilter6},
		sigmoid: sigmoidAVX2, silu: siluAVX2, siluBack: siluBackAVX2, gelu: geluAVX2, geluBack: geluBackAVX2,
		expShift: expShiftAVX2, dwTaps: dwTapsAVX2, evenOdd: evenOddAVX2, copyRows: copyRowsAVX2, firstMax: firstMaxAVX2, maxTaps: maxTapsAVX2,
		norm: &normLoops{block: 8, sum: sumAVX2, sumSqDev: sumSqDevAVX2, sumDevDot: sumDevDotAVX2, affine: affineAVX2, scale: scaleAVX2, bnBack: bnBackAVX2,
			clip: clipAVX2, clipBack: clipBackAVX2, relu: reluAVX2, reluBack: reluBackAVX2, hardSwish: hardSwishAVX2,
			lnApply: lnApplyAVX2, lnSums: lnSumsAVX2, lnBack: lnBackAVX2, lnDScale: lnDScaleAVX2, lnDBias: lnDBiasAVX2},
	}
)

// kernelBF16 is the bfloat16 micro-kernel of AVX512_BF16 (bf16.go), with the AVX-512
// kernel's element-wise loops. It takes no Winograd transforms and reads B in place only
// from pair slots (pairRows: a convolution's image with its channels paired, made as it
// is padded); its float32 operands are packed, to round them.
var kernelBF16 = &gemmKernel{
	name: "avx512bf16", mr: 8, nr: 32, kc: 256, mc: 256, nc: 4096,
	tile: tileBF16, packCopy: packCopyBF16AVX512, packGather: packGatherBF16AVX512, sparse: true, fastGather: true, siluStore: true,
	pairRows: tileRowsBF16, kcRows: 256, packGatherHalf: packGatherHalfAVX512,
	sigmoid: sigmoidAVX512, silu: siluAVX512, siluBack: siluBackAVX512, gelu: geluAVX512, geluBack: geluBackAVX512,
	expShift: expShiftAVX512, dwTaps: dwTapsAVX512, evenOdd: evenOddAVX512, copyRows: copyRowsAVX512, firstMax: firstMaxAVX512, maxTaps: maxTapsAVX512, norm: kernelAVX512.norm,
}

// bf16Kernel returns the bfloat16 kernel, or nil where the CPU lacks AVX512_BF16.
func bf16Kernel() *gemmKernel {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BF16 {
		return kernelBF16
	}
	return nil
}

// tileBF16 is gemmKernel.tile of kernelBF16: panels of ⌈kc/2⌉ bfloat16 pairs.
func tileBF16(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
	q := (kc + 1) / 2
	_ = a[q*8-1]
	_ = b[q*32-1]
	if rows < 1 || rows > 8 || mask == 0 || len(c) < (rows-1)*ldc+popcount(mask) {
		panic("kernels: tileBF16: bad tile")
	}
	var bp *float32
	if bias != nil {
		bp = &bias[:8][0]
	}
	sgemmKernelBF16(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, bp, rows, mask, flags, lo, hi)
}

// tileRowsBF16 is gemmKernel.pairRows of kernelBF16: B read in place, pair row q at
// b[koff[2q]:][:32] (kc even).
func tileRowsBF16(kc int, a, b []float32, koff []int32, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
	_ = a[kc/2*8-1]
	_ = koff[kc-1]
	if kc%2 != 0 || rows < 1 || rows > 8 || mask == 0 || len(c) < (rows-1)*ldc+popcount(mask) {
		panic("kernels: tileRowsBF16: bad tile")
	}
	var bp *float32
	if bias != nil {
		bp = &bias[:8][0]
	}
	sgemmKernelBF16Rows(kc, &a[0], &b[0], &koff[0], &c[0], ldc, alpha, beta, bp, rows, mask, flags, lo, hi)
}

// sgemmKernelBF16Rows is sgemmKernelBF16 with B read in place from pair slots
// (gemm_gen_amd64.s).
//
//go:noescape
func sgemmKernelBF16Rows(kc int, a, b *float32, koff *int32, c *float32, ldc int, alpha, beta float32, bias *float32, rows int, mask, flags uint32, lo, hi float32)

// pairPlanes interleaves n values of planes lo and hi into bfloat16 pair slots
// (gemm_gen_amd64.s).
//
//go:noescape
func pairPlanes(n int, lo, hi, dst *float32)

// pairValues sets dst[i] to the bfloat16 pair of lo[i] and hi[i] for i < len(dst).
func pairValues(lo, hi, dst []float32) {
	if len(dst) == 0 {
		return
	}
	_, _ = lo[len(dst)-1], hi[len(dst)-1]
	pairPlanes(len(dst), &lo[0], &hi[0], &dst[0])
}

// packCopyBF16AVX512 and packGatherBF16AVX512 are the bfloat16 kernel's packers (the
// contract of packCopyBF16 and packGatherBF16): the float32 rows are read, rounded and
// interleaved into pairs in one pass (packCopyPairs32, ...); a gathered panel whose k
// offsets run consecutively goes through packTrans8Pairs, sixteen values of a lane at a
// time. (They used to pack a float32 panel and convert it after, a second pass through
// the cache: ResNet-50's bfloat16 training step spent 17% of its time packing.)
func packCopyBF16AVX512(w int, src []float32, koff []int32, n int, dst []float32) {
	kc := len(koff)
	_ = dst[(kc+1)/2*w-1]
	switch w {
	case 32:
		packCopyPairs32(kc, &src[0], &koff[0], n, &dst[0])
	case 8:
		packCopyPairs8(kc, &src[0], &koff[0], n, &dst[0])
	default:
		packCopyBF16(w, src, koff, n, dst)
	}
}

func packGatherBF16AVX512(w int, src []float32, koff, lane []int32, n int, dst []float32) {
	packPairs(w, src, koff, lane, n, dst, false)
}

// packPairs is the bfloat16 kernel's packGather (half false: float32 values, rounded) and
// packGatherHalf (half: bfloat16 values, moved): the assembly of the widths 32 and 8,
// runs of consecutive offsets through packTrans8Pairs or packTrans8Half; other widths in
// Go.
func packPairs(w int, src []float32, koff, lane []int32, n int, dst []float32, half bool) {
	if w != 32 && w != 8 {
		if half {
			packGatherHalfGo(w, src, koff, lane, n, dst)
		} else {
			packGatherBF16(w, src, koff, lane, n, dst)
		}
		return
	}
	kc := len(koff)
	_ = dst[(kc+1)/2*w-1]
	_ = lane[w-1]
	gather := func(koff []int32, dst []float32) {
		k, s, ko, ln, d := len(koff), &src[0], &koff[0], &lane[0], &dst[0]
		switch {
		case half && w == 32:
			packGatherHalf32(k, s, ko, ln, n, d)
		case half:
			packGatherHalf8(k, s, ko, ln, n, d)
		case w == 32:
			packGatherPairs32(k, s, ko, ln, n, d)
		default:
			packGatherPairs8(k, s, ko, ln, n, d)
		}
	}
	if runsPay(w, n, 2, koff) {
		packRuns(w, 2, koff, lane, dst, func(kc int, ln [8]int32, dst []float32) {
			_ = dst[(kc/2-1)*w+7]
			if half {
				packTrans8Half(kc, &src[0], &ln[0], &dst[0], w)
			} else {
				packTrans8Pairs(kc, &src[0], &ln[0], &dst[0], w)
			}
		}, gather)
		return
	}
	gather(koff, dst)
}

// packGatherHalfAVX512 is the bfloat16 kernel's packGatherHalf (packPairs).
func packGatherHalfAVX512(w int, src []float32, koff, lane []int32, n int, dst []float32) {
	packPairs(w, src, koff, lane, n, dst, true)
}

//go:noescape
func packTrans8Half(kc int, src *float32, lane *int32, dst *float32, ld int)

//go:noescape
func packGatherHalf32(kc int, src *float32, koff, lane *int32, n int, dst *float32)

//go:noescape
func packGatherHalf8(kc int, src *float32, koff, lane *int32, n int, dst *float32)

// packCopyPairs32 and the others below are the bfloat16 packers' assembly
// (gemm_gen_amd64.s), with the contracts written there.
//
//go:noescape
func packCopyPairs32(kc int, src *float32, koff *int32, n int, dst *float32)

//go:noescape
func packCopyPairs8(kc int, src *float32, koff *int32, n int, dst *float32)

//go:noescape
func packGatherPairs32(kc int, src *float32, koff, lane *int32, n int, dst *float32)

//go:noescape
func packGatherPairs8(kc int, src *float32, koff, lane *int32, n int, dst *float32)

//go:noescape
func packTrans8Pairs(kc int, src *float32, lane *int32, dst *float32, ld int)

// sgemmKernelBF16 is the bfloat16 micro-kernel (gemm_gen_amd64.s, made by
// internal/asmgen) with the contract of gemmKernel.tile on pair panels.
//
//go:noescape
func sgemmKernelBF16(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32, rows int, mask, flags uint32, lo, hi float32)

func asmKernels() []*gemmKernel {
	var ks []*gemmKernel
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL {
		ks = append(ks, kernelAVX512)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, kernelAVX2)
	}
	return ks
}

// sgemmKernel8x32 is the AVX-512 micro-kernel (gemm_gen_amd64.s, made
// by internal/asmgen) with the contract of gemmKernel.tile.
//
//go:noescape
func sgemmKernel8x32(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32, rows int, mask, flags uint32, lo, hi float32)

// sgemmKernel8x32Rows is sgemmKernel8x32 with B read in place: row p of
// the panel is the 32 values at b[koff[p]].
//
//go:noescape
func sgemmKernel8x32Rows(kc int, a, b *float32, koff *int32, c *float32, ldc int, alpha, beta float32, bias *float32, rows int, mask, flags uint32, lo, hi float32)

//go:noescape
func packCopy32(kc int, src *float32, koff *int32, n int, dst *float32)

//go:noescape
func packCopy8(kc int, src *float32, koff *int32, n int, dst *float32)

//go:noescape
func packGather32(kc int, src *float32, koff *int32, lane *int32, n int, dst *float32)

//go:noescape
func packGather8(kc int, src *float32, koff *int32, lane *int32, n int, dst *float32)

// The wrappers check the slices; the assembly trusts them.

func tileAVX512(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
	_ = a[kc*8-1]
	_ = b[kc*32-1]
	if rows < 1 || rows > 8 || mask == 0 || len(c) < (rows-1)*ldc+popcount(mask) {
		panic("kernels: tileAVX512: bad tile")
	}
	var bp *float32
	if bias != nil {
		bp = &bias[:8][0]
	}
	sgemmKernel8x32(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, bp, rows, mask, flags, lo, hi)
}

func tileRowsAVX512(kc int, a, b []float32, koff []int32, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
	_ = a[kc*8-1]
	_ = koff[kc-1]
	if rows < 1 || rows > 8 || mask == 0 || len(c) < (rows-1)*ldc+popcount(mask) {
		panic("kernels: tileRowsAVX512: bad tile")
	}
	var bp *float32
	if bias != nil {
		bp = &bias[:8][0]
	}
	sgemmKernel8x32Rows(kc, &a[0], &b[0], &koff[0], &c[0], ldc, alpha, beta, bp, rows, mask, flags, lo, hi)
}

func packCopyAVX512(w int, src []float32, koff []int32, n int, dst []float32) {
	kc := len(koff)
	_ = dst[kc*w-1]
	if len(src) == 0 { // n == 0 cannot happen; a view never has empty data
		panic("kernels: packCopy: empty source")
	}
	switch w {
	case 32:
		packCopy32(kc, &src[0], &koff[0], n, &dst[0])
	case 8:
		packCopy8(kc, &src[0], &koff[0], n, &dst[0])
	default:
		packCopyGo(w, src, koff, n, dst)
	}
}

// packTrans8 packs 8 rows with kc consecutive values each (kc a multiple
// of 8) into 8 columns of a panel ld wide: dst[p*ld+i] = src[lane[i]+p].
// (gemm_gen_amd64.s)
//
//go:noescape
func packTrans8(kc int, src *float32, lane *int32, dst *float32, ld int)

// packRuns packs a full panel w wide (a multiple of 8) whose k offsets run
// consecutively for at least 8·depth steps at a time, eight lanes at a time through
// trans (packTrans8, or packTrans8Pairs for panels of bfloat16 pairs, depth 2: a panel
// row holds depth k rows): the transposed A of a forward convolution, and the B of a
// weight gradient, whose lanes are filter taps and whose k offsets are a row of output
// positions. trans packs kc consecutive values of the lanes ln into the panel rows
// from dst on; the steps outside runs go to gather, which packs the k offsets it is
// given into the panel rows it is given.
func packRuns(w, depth int, koff, lane []int32, dst []float32, trans func(kc int, ln [8]int32, dst []float32), gather func(koff []int32, dst []float32)) {
	kc, run := len(koff), 8*depth
	p := 0
	for p+run <= kc {
		q := p + run
		if !isRun(koff[p:q]) {
			for q+run <= kc && !isRun(koff[q:q+run]) {
				q += run
			}
			gather(koff[p:q], dst[p/depth*w:q/depth*w])
			p = q
			continue
		}
		o := koff[p]
		for q+run <= kc && koff[q] == o+int32(q-p) && isRun(koff[q:q+run]) {
			q += run
		}
		for g := 0; g < w; g += 8 {
			var ln [8]int32
			for i := range ln {
				ln[i] = lane[g+i] + o
			}
			trans(q-p, ln, dst[p/depth*w+g:])
		}
		p = q
	}
	if p < kc {
		gather(koff[p:], dst[p/depth*w:])
	}
}

// isRun says whether the k offsets are consecutive.
func isRun(koff []int32) bool {
	return int(koff[len(koff)-1]-koff[0]) == len(koff)-1 && evenlySpaced(koff)
}

// runsPay says whether packRuns suits a full panel of depth k rows to a panel row: its
// first 8·depth k offsets are consecutive (the runs of a convolution's rows are all
// alike).
func runsPay(w, n, depth int, koff []int32) bool {
	return w%8 == 0 && n == w && len(koff) >= 8*depth && isRun(koff[:8*depth])
}

func packGatherAVX512(w int, src []float32, koff, lane []int32, n int, dst []float32) {
	_ = dst[len(koff)*w-1]
	_ = lane[w-1]
	gather := func(koff []int32, dst []float32) {
		switch w {
		case 32:
			packGather32(len(koff), &src[0], &koff[0], &lane[0], n, &dst[0])
		case 8:
			packGather8(len(koff), &src[0], &koff[0], &lane[0], n, &dst[0])
		default:
			packGatherGo(w, src, koff, lane, n, dst)
		}
	}
	if runsPay(w, n, 1, koff) {
		packRuns(w, 1, koff, lane, dst, func(kc int, ln [8]int32, dst []float32) {
			_ = dst[(kc-1)*w+7]
			packTrans8(kc, &src[0], &ln[0], &dst[0], w)
		}, gather)
		return
	}
	gather(koff, dst)
}

// sgemmKernel6x16 computes the 6×16 tile c[i*ldc+j] = alpha·Σ_p
// a[p*6+i]·b[p*16+j] + bias[i] + beta·c[i*ldc+j] (c not read when beta ==
// 0; no bias when bias is nil; clamped to [lo, hi] with flags&tileClamp) for packed
// panels a (kc×6) and b (kc×16); whole tiles only. kc must be at least 1.
// (gemm_gen_amd64.s)
//
//go:noescape
func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32, flags uint32, lo, hi float32)

// tileAVX2 runs the AVX2 kernel on full tiles and through a buffer on
// fringe or sparse ones.
func tileAVX2(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
	_ = a[kc*6-1]
	_ = b[kc*16-1]
	if rows == 6 && mask == 0xffff {
		_ = c[5*ldc+15]
		var bp *float32
		if bias != nil {
			bp = &bias[:6][0]
		}
		sgemmKernel6x16(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, bp, flags, lo, hi)
		return
	}
	var t [6 * 16]float32
	var bb [6]float32
	bp := fringeIn(&t, c, ldc, beta, bias, rows, mask, &bb)
	sgemmKernel6x16(kc, &a[0], &b[0], &t[0], 16, alpha, beta, bp, flags, lo, hi)
	fringeOut(&t, c, ldc, rows, mask)
}

// fringeIn and fringeOut run an AVX2 kernel on a fringe or sparse tile (rows rows, the
// columns in mask, stored in C one after another as storeTile stores them) through the
// 6×16 buffer t: C's values copied in where beta reads them (and the bias into bb, whose
// address fringeIn returns, nil without bias), the whole tile computed there, then
// stored back. The tile's values are so computed by
// the same instructions as a whole tile's (beta·C added by a fused multiply-add): a
// row's bits do not depend on the tile it falls in.
func fringeIn(t *[6 * 16]float32, c []float32, ldc int, beta float32, bias []float32, rows int, mask uint32, bb *[6]float32) *float32 {
	if beta != 0 {
		for i := 0; i < rows; i++ {
			q := i * ldc
			for j := 0; j < 16; j++ {
				if mask&(1<<j) != 0 {
					t[i*16+j] = c[q]
					q++
				}
			}
		}
	}
	if bias == nil {
		return nil
	}
	copy(bb[:rows], bias[:rows])
	return &bb[0]
}

func fringeOut(t *[6 * 16]float32, c []float32, ldc int, rows int, mask uint32) {
	for i := 0; i < rows; i++ {
		q := i * ldc
		for j := 0; j < 16; j++ {
			if mask&(1<<j) != 0 {
				c[q] = t[i*16+j]
				q++
			}
		}
	}
}

// sgemmKernel6x16Rows is the AVX2 micro-kernel with B read in place: row
// p of the 6×16 tile's B panel is the 16 values at b[koff[p]]; whole tiles
// only. (gemm_gen_amd64.s)
//
//go:noescape
func sgemmKernel6x16Rows(kc int, a, b *float32, koff *int32, c *float32, ldc int, alpha, beta float32, bias *float32, flags uint32, lo, hi float32)

// tileRowsAVX2 runs the in-place AVX2 kernel on whole tiles and through a
// buffer on fringe ones.
func tileRowsAVX2(kc int, a, b []float32, koff []int32, c []float32, ldc int, alpha, beta float32, bias []float32, rows int, mask, flags uint32, lo, hi float32) {
	_ = a[kc*6-1]
	_ = koff[kc-1]
	if rows == 6 && mask == 0xffff {
		_ = c[5*ldc+15]
		var bp *float32
		if bias != nil {
			bp = &bias[:6][0]
		}
		sgemmKernel6x16Rows(kc, &a[0], &b[0], &koff[0], &c[0], ldc, alpha, beta, bp, flags, lo, hi)
		return
	}
	var t [6 * 16]float32
	var bb [6]float32
	bp := fringeIn(&t, c, ldc, beta, bias, rows, mask, &bb)
	sgemmKernel6x16Rows(kc, &a[0], &b[0], &koff[0], &t[0], 16, alpha, beta, bp, flags, lo, hi)
	fringeOut(&t, c, ldc, rows, mask)
}

// packB16Asm copies kc rows of 16 float32, ldb elements apart in src, to
// consecutive rows of dst. (gemm_gen_amd64.s)
//
//go:noescape
func packB16Asm(kc int, src *float32, ldb int, dst *float32)

// packA6TAsm copies kc groups of 6 float32, lda elements apart in src, to
// consecutive groups of dst. (gemm_gen_amd64.s)
//
//go:noescape
func packA6TAsm(kc int, src *float32, lda int, dst *float32)

// packTrans6Asm interleaves six rows of 4·kc4 consecutive values, ld
// apart in src, into a 6-wide panel: dst[p*6+i] = src[i*ld+p].
// (gemm_gen_amd64.s)
//
//go:noescape
func packTrans6Asm(kc4 int, src *float32, ld int, dst *float32)

// packGatherAVX2 packs 16-wide panels with runs of consecutive k offsets
// through packRuns, the AVX2 kernel's 6-row panels of a transposed A (six
// evenly spaced rows, consecutive k) with the assembly interleave, four k
// at a time, and everything else with the portable gather.
func packGatherAVX2(w int, src []float32, koff, lane []int32, n int, dst []float32) {
	kc := len(koff)
	if runsPay(w, n, 1, koff) {
		_ = dst[kc*w-1]
		_ = lane[w-1]
		packRuns(w, 1, koff, lane, dst, func(kc int, ln [8]int32, dst []float32) {
			_ = dst[(kc-1)*w+7]
			packTrans8(kc, &src[0], &ln[0], &dst[0], w)
		}, func(koff []int32, dst []float32) { packGatherGo(w, src, koff, lane, n, dst) })
		return
	}
	if w != 6 || n != 6 || kc < 4 || koff[kc-1]-koff[0] != int32(kc-1) || !evenlySpaced(koff) ||
		!evenlySpaced(lane[:6]) || lane[1] < lane[0] {
		packGatherGo(w, src, koff, lane, n, dst)
		return
	}
	ld, base := int(lane[1]-lane[0]), int(koff[0]+lane[0])
	_ = src[base+5*ld+kc-1]
	_ = dst[kc*6-1]
	k4 := kc &^ 3
	packTrans6Asm(k4/4, &src[base], ld, &dst[0])
	for p := k4; p < kc; p++ {
		for i := range 6 {
			dst[p*6+i] = src[base+i*ld+p]
		}
	}
}

// packCopyAVX2 uses the AVX2 panel copies where the offsets are evenly
// spaced (a plain matrix), else the portable copy.
func packCopyAVX2(w int, src []float32, koff []int32, n int, dst []float32) {
	kc := len(koff)
	if n == w && (w == 16 || w == 6) && evenlySpaced(koff) {
		step := 0
		if kc > 1 {
			step = int(koff[1] - koff[0])
		}
		o := int(koff[0])
		_ = src[o+(kc-1)*step+w-1]
		_ = dst[kc*w-1]
		if w == 16 {
			packB16Asm(kc, &src[o], step, &dst[0])
		} else {
			packA6TAsm(kc, &src[o], step, &dst[0])
		}
		return
	}
	packCopyGo(w, src, koff, n, dst)
}

// winoInput16 and winoOutput16 are the Winograd transforms of 16 tiles,
// winoFilter16 that of 16 filters; winoInput8, winoOutput8 and winoFilter6
// their AVX2 forms (conv_winograd.go; gemm_gen_amd64.s).
//
//go:noescape
func winoInput16(x *float32, ldx int, v *float32, ldv int, n int)

//go:noescape
func winoOutput16(m *float32, ldm int, y *float32, ldy int, n, rows, cols int, bias float32, flags uint32, lo, hi float32)

//go:noescape
func winoFilter16(src *float32, idx *int32, tstep int, u *float32, ldk int, panel2 int, n int)

//go:noescape
func winoInput8(x *float32, ldx int, v *float32, ldv int, n int)

//go:noescape
func winoOutput8(m *float32, ldm int, y *float32, ldy int, n, rows, cols int, bias float32, flags uint32, lo, hi float32)

//go:noescape
func winoFilter6(src *float32, idx *int32, tstep int, u *float32, ldk int, panel2 int, n int)

// sigmoidAVX512 and sigmoidAVX2 set y[i] = 1/(1+e^-x[i]) for i < n, the same
// bits on both (gemm_gen_amd64.s).
//
//go:noescape
func sigmoidAVX512(n int, x, y *float32)

//go:noescape
func sigmoidAVX2(n int, x, y *float32)

// The normalisation loops (normLoops) in AVX-512 and AVX2 (gemm_gen_amd64.s, made by
// internal/asmgen): n a multiple of 16 and 8.

//go:noescape
func sumAVX512(n int, x *float32) float32

//go:noescape
func sumSqDevAVX512(n int, x *float32, mean float32) float32

//go:noescape
func sumDevDotAVX512(n int, x, dy *float32, mean float32, out *[2]float32)

//go:noescape
func affineAVX512(n int, a, b float32, x, y *float32)

//go:noescape
func bnBackAVX512(n int, a, b, d float32, x, dy, dx *float32)

//go:noescape
func scaleAVX512(n int, a float32, x, y *float32)

//go:noescape
func sumAVX2(n int, x *float32) float32

//go:noescape
func sumSqDevAVX2(n int, x *float32, mean float32) float32

//go:noescape
func sumDevDotAVX2(n int, x, dy *float32, mean float32, out *[2]float32)

//go:noescape
func affineAVX2(n int, a, b float32, x, y *float32)

//go:noescape
func bnBackAVX2(n int, a, b, d float32, x, dy, dx *float32)

//go:noescape
func scaleAVX2(n int, a float32, x, y *float32)

// The layer normalisation's loops (normLoops.lnApply, lnSums, lnBack), n a multiple of
// 16 and 8.

//go:noescape
func lnApplyAVX512(n int, mean, inv float32, x, scale, bias, y *float32)

//go:noescape
func lnSumsAVX512(n int, x, dy, scale *float32, mean float32, out *[2]float32)

//go:noescape
func lnBackAVX512(n int, a, b, d, mean float32, x, dy, scale, dx *float32)

//go:noescape
func lnApplyAVX2(n int, mean, inv float32, x, scale, bias, y *float32)

//go:noescape
func lnSumsAVX2(n int, x, dy, scale *float32, mean float32, out *[2]float32)

//go:noescape
func lnBackAVX2(n int, a, b, d, mean float32, x, dy, scale, dx *float32)

// The layer normalisation's scale and shift gradients (normLoops.lnDScale, lnDBias), in
// float64: n a multiple of 8 and 4.

//go:noescape
func lnDScaleAVX512(n int, mean, inv float64, x, dy *float32, acc *float64)

//go:noescape
func lnDBiasAVX512(n int, dy *float32, acc *float64)

//go:noescape
func lnDScaleAVX2(n int, mean, inv float64, x, dy *float32, acc *float64)

//go:noescape
func lnDBiasAVX2(n int, dy *float32, acc *float64)

// siluAVX512, siluBackAVX512, siluAVX2 and siluBackAVX2 are gemmKernel.silu and siluBack
// (gemm_gen_amd64.s).

//go:noescape
func siluAVX512(n int, x, y *float32)

//go:noescape
func siluBackAVX512(n int, x, dy, dx *float32)

//go:noescape
func siluAVX2(n int, x, y *float32)

//go:noescape
func siluBackAVX2(n int, x, dy, dx *float32)

// geluAVX512, geluBackAVX512, geluAVX2 and geluBackAVX2 are gemmKernel.gelu and geluBack
// (gemm_gen_amd64.s).

//go:noescape
func geluAVX512(n int, x, y *float32)

//go:noescape
func geluBackAVX512(n int, x, dy, dx *float32)

//go:noescape
func geluAVX2(n int, x, y *float32)

//go:noescape
func geluBackAVX2(n int, x, dy, dx *float32)

// expShiftAVX512 and expShiftAVX2 are gemmKernel.expShift (gemm_gen_amd64.s).

//go:noescape
func expShiftAVX512(n int, x *float32, shift float32, y *float32)

//go:noescape
func expShiftAVX2(n int, x *float32, shift float32, y *float32)

//go:noescape
func clipAVX512(n int, lo, hi float32, x, y *float32)

//go:noescape
func clipBackAVX512(n int, lo, hi float32, y, dy, dx *float32)

//go:noescape
func reluAVX512(n int, x, y *float32)

//go:noescape
func reluBackAVX512(n int, y, dy, dx *float32)

//go:noescape
func clipAVX2(n int, lo, hi float32, x, y *float32)

//go:noescape
func clipBackAVX2(n int, lo, hi float32, y, dy, dx *float32)

//go:noescape
func reluAVX2(n int, x, y *float32)

//go:noescape
func reluBackAVX2(n int, y, dy, dx *float32)

// dwTapsAVX512 and dwTapsAVX2 are the depthwise convolution's multi-tap loop,
// copyRowsAVX512 and copyRowsAVX2 its copies of a plane's rows, and evenOddAVX512
// and evenOddAVX2 its stride-2 column split (gemmKernel.dwTaps, copyRows and
// evenOdd; internal/asmgen/depthwise.go).
//
//go:noescape
func dwTapsAVX512(n, taps int, w *float32, offs *int, x, y *float32, bias, lo, hi float32, rows, xs, ys int)

//go:noescape
func dwTapsAVX2(n, taps int, w *float32, offs *int, x, y *float32, bias, lo, hi float32, rows, xs, ys int)

//go:noescape
func copyRowsAVX512(n int, src, dst *float32, rows, ss, ds int)

//go:noescape
func copyRowsAVX2(n int, src, dst *float32, rows, ss, ds int)

//go:noescape
func evenOddAVX512(n int, x, even, odd *float32, rows, xs, ds int)

//go:noescape
func evenOddAVX2(n int, x, even, odd *float32, rows, xs, ds int)

// firstMaxAVX512 and firstMaxAVX2 find the first maximum of a max pooling's windows
// (gemmKernel.firstMax; internal/asmgen/pool.go).
//
//go:noescape
func firstMaxAVX512(n, taps int, offs *int, x *float32, code *int32, rows, xs, cs int) bool

//go:noescape
func firstMaxAVX2(n, taps int, offs *int, x *float32, code *int32, rows, xs, cs int) bool

// maxTapsAVX512 and maxTapsAVX2 are the max pooling's values-only window loop
// (gemmKernel.maxTaps; internal/asmgen/pool.go).
//
//go:noescape
func maxTapsAVX512(n, taps int, offs *int, x, y *float32, rows, xs, ys int) bool

//go:noescape
func maxTapsAVX2(n, taps int, offs *int, x, y *float32, rows, xs, ys int) bool

// hardSwishAVX512 and hardSwishAVX2 are HardSwish's vector loop (normLoops.hardSwish;
// internal/asmgen/main.go).
//
//go:noescape
func hardSwishAVX512(n int, x, y *float32)

//go:noescape
func hardSwishAVX2(n int, x, y *float32)
