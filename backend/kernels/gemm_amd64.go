//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// haveGemmAsm reports whether the AVX2/FMA micro-kernel can run here.
var haveGemmAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// sgemmKernel6x16 computes the 6×16 tile c[i*ldc+j] = alpha·Σ_p
// a[p*6+i]·b[p*16+j] + bias[i] + beta·c[i*ldc+j] (c not read when beta ==
// 0; no bias when bias is nil) for packed panels a (kc×6) and b (kc×16). kc
// must be at least 1.
//
//go:noescape
func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32, bias *float32)

// microKernel runs the assembly kernel when the CPU has AVX2 and FMA, else
// the portable one. The slices are checked here; the assembly trusts them.
func microKernel(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32) {
	_ = a[kc*gemmMR-1]
	_ = b[kc*gemmNR-1]
	_ = c[(gemmMR-1)*ldc+gemmNR-1]
	if haveGemmAsm {
		var bp *float32
		if bias != nil {
			bp = &bias[:gemmMR][0]
		}
		sgemmKernel6x16(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, bp)
		return
	}
	microKernelGo(kc, a, b, c, ldc, alpha, beta, bias)
}

// packB16Asm copies kc rows of 16 float32, ldb elements apart in src, to
// consecutive rows of dst.
//
//go:noescape
func packB16Asm(kc int, src *float32, ldb int, dst *float32)

// packB16 copies kc rows of 16 values, ldb apart in src, into dst (one
// full panel of packed B).
func packB16(kc int, src []float32, ldb int, dst []float32) {
	_ = src[(kc-1)*ldb+gemmNR-1]
	_ = dst[kc*gemmNR-1]
	if haveGemmAsm {
		packB16Asm(kc, &src[0], ldb, &dst[0])
		return
	}
	packB16Go(kc, src, ldb, dst)
}

// packA6TAsm copies kc groups of 6 float32, lda elements apart in src, to
// consecutive groups of dst.
//
//go:noescape
func packA6TAsm(kc int, src *float32, lda int, dst *float32)

// packA6T packs one full panel of a transposed A: dst[p*6+i] = src[p*lda+i].
func packA6T(kc int, src []float32, lda int, dst []float32) {
	_ = src[(kc-1)*lda+gemmMR-1]
	_ = dst[kc*gemmMR-1]
	if haveGemmAsm {
		packA6TAsm(kc, &src[0], lda, &dst[0])
		return
	}
	packA6TGo(kc, src, lda, dst)
}
