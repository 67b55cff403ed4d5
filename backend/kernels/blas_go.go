package kernels

import "runtime"

// goBLAS is the toolkit's own float32 GEMM (gemm.go) on one micro-kernel:
// packed panels and a register-blocked kernel, split across GOMAXPROCS
// goroutines. float64 products go to gonum.
type goBLAS struct{ kern *gemmKernel }

func (b goBLAS) Name() string { return "go-" + b.kern.name }

func (b goBLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(b.kern, runtime.GOMAXPROCS(0), transA, transB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
}

func (goBLAS) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gonumBLAS{}.Dgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// kernelGo is the portable micro-kernel with the AVX2 kernel's shape: the
// packed GEMM on any CPU, slower than the assembly but exercising the same
// packing and blocking (the tests run every path the machine has).
var kernelGo = &gemmKernel{
	name: "go", mr: 6, nr: 16, kc: 256, mc: 144, nc: 4080,
	tile: microKernelGo(6, 16), packCopy: packCopyGo, packGather: packGatherGo,
}
