//go:build openblas

package openblas

/*
#cgo LDFLAGS: -lopenblas
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
)

// SetNumThreads sets the number of threads OpenBLAS uses for each call.
func SetNumThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// NumThreads returns the number of threads OpenBLAS uses for each call.
func NumThreads() int { return int(C.openblas_get_num_threads()) }

// CoreName is the CPU kernel family OpenBLAS chose (OPENBLAS_CORETYPE
// overrides its detection).
func CoreName() string { return C.GoString(C.openblas_get_corename()) }

func tr(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// Sgemm is cblas_sgemm for row-major matrices, through gonum's netlib
// bindings (which check the arguments).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	netlib.Implementation{}.Sgemm(tr(transA), tr(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Dgemm is cblas_dgemm for row-major matrices.
func Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	netlib.Implementation{}.Dgemm(tr(transA), tr(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
