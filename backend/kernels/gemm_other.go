//go:build !amd64 || purego

package kernels

// haveGemmAsm is false: no assembly micro-kernel for this architecture or
// under the purego build tag.
const haveGemmAsm = false

func microKernel(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	microKernelGo(kc, a, b, c, ldc, alpha, beta)
}
