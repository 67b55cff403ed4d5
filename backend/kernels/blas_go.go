package kernels

import "runtime"

// goBLAS is the toolkit's own float32 GEMM (gemm.go): packed panels and a
// register-blocked assembly micro-kernel, split across goroutines by
// [parallelGemm]. float64 products go to gonum.
type goBLAS struct{}

func (goBLAS) Name() string { return "go-avx2" }

func (goBLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(runtime.GOMAXPROCS(0), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (goBLAS) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gonumBLAS{}.Dgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
