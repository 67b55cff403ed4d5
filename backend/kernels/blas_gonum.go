package kernels

import "gonum.org/v1/gonum/blas/gonum"

// gonumBLAS is gonum's pure-Go BLAS (blas/gonum). It is the default under
// the purego build tag and where the assembly micro-kernel cannot run, and
// it computes every float64 product (float64 serves the finite-difference
// checks, where speed does not matter).
type gonumBLAS struct{}

func (gonumBLAS) Name() string { return "gonum" }

func (gonumBLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gonum.Implementation{}.Sgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (gonumBLAS) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gonum.Implementation{}.Dgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
