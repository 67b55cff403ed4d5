//go:build openblas

package kernels

/*
#cgo LDFLAGS: -lopenblas
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/netlib/blas/netlib"
)

// defaultBLAS is OpenBLAS through cgo (gonum.org/v1/netlib/blas/netlib,
// linked against -lopenblas: Debian's libopenblas-dev). Build with
// -tags openblas.
//
// OpenBLAS runs single-threaded: it is told so once, here, and every
// product is split across goroutines by [Gemm] and the convolutions
// instead (see parallel.go). One layer of parallelism means no
// oversubscription when a convolution runs one product per image on every
// core, and it keeps OpenBLAS's thread pool (which spins while waiting for
// work) from competing with the Go scheduler for the same cores.
func defaultBLAS() BLAS {
	C.openblas_set_num_threads(1)
	return openBLAS{core: C.GoString(C.openblas_get_corename())}
}

type openBLAS struct{ core string }

func (b openBLAS) Name() string { return "openblas/" + b.core }

func (openBLAS) serialSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	netlib.Implementation{}.Sgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (o openBLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	parallelSgemm(o.serialSgemm, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Dgemm stays with gonum: float64 serves only the finite-difference checks.
func (openBLAS) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gonum.Implementation{}.Dgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
