//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// haveGemmAsm reports whether the AVX2/FMA micro-kernel can run here.
var haveGemmAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// sgemmKernel6x16 computes the 6×16 tile c[i*ldc+j] = alpha·Σ_p
// a[p*6+i]·b[p*16+j] + beta·c[i*ldc+j] (c not read when beta == 0) for
// packed panels a (kc×6) and b (kc×16). kc must be at least 1.
//
//go:noescape
func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// microKernel runs the assembly kernel when the CPU has AVX2 and FMA, else
// the portable one. The slices are checked here; the assembly trusts them.
func microKernel(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[kc*gemmMR-1]
	_ = b[kc*gemmNR-1]
	_ = c[(gemmMR-1)*ldc+gemmNR-1]
	if haveGemmAsm {
		sgemmKernel6x16(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
		return
	}
	microKernelGo(kc, a, b, c, ldc, alpha, beta)
}
