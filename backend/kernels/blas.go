package kernels

import "gonum.org/v1/gonum/blas"

// BLAS is the matrix-product back end behind [Gemm]. Matrices are row-major,
// with the meaning of gonum's blas.Float32Level3.Sgemm / Float64Level3.Dgemm:
//
//	C = alpha * op(A) * op(B) + beta * C
//
// where op(A) is m×k, op(B) is k×n and C is m×n. Implementations must accept
// beta == 0 with C holding garbage (including NaN) and may run in parallel.
type BLAS interface {
	Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int)
	// Name identifies the implementation in benchmarks and logs.
	Name() string
}

// blasImpl is chosen at build time (defaultBLAS is defined by the file the
// build tags select) and never changed afterwards.
var blasImpl BLAS = defaultBLAS()

// CurrentBLAS returns the BLAS implementation that [Gemm] uses.
func CurrentBLAS() BLAS { return blasImpl }

// Gemm computes C = alpha * op(A) * op(B) + beta * C for row-major
// matrices, where op(A) is m×k (A is k×m with leading dimension lda when
// transA is set, else m×k), op(B) is k×n, and C is m×n with leading dimension
// ldc. With beta == 0 the previous contents of C are ignored. It dispatches to
// [CurrentBLAS] (Sgemm for ~float32, Dgemm for ~float64).
func Gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		// Nothing to multiply: C = beta*C. Handled here so that callers
		// need not satisfy BLAS's lda/ldb >= 1 rules for empty operands.
		scaleRows(m, n, beta, c, ldc)
		return
	}
	if is32[T]() {
		blasImpl.Sgemm(transA, transB, m, n, k, float32(alpha), as32(a), lda, as32(b), ldb, float32(beta), as32(c), ldc)
		return
	}
	blasImpl.Dgemm(transA, transB, m, n, k, float64(alpha), as64(a), lda, as64(b), ldb, float64(beta), as64(c), ldc)
}

// trans converts a transpose flag to gonum's blas.Transpose, for BLAS
// implementations with gonum's calling convention.
func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}
