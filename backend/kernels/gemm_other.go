//go:build !amd64 || purego

package kernels

// haveGemmAsm is false: no assembly micro-kernel for this architecture or
// under the purego build tag.
const haveGemmAsm = false

func microKernel(kc int, a, b, c []float32, ldc int, alpha, beta float32, bias []float32) {
	microKernelGo(kc, a, b, c, ldc, alpha, beta, bias)
}

func packB16(kc int, src []float32, ldb int, dst []float32) { packB16Go(kc, src, ldb, dst) }

func packA6T(kc int, src []float32, lda int, dst []float32) { packA6TGo(kc, src, lda, dst) }
