//go:build !openblas

package kernels

import "gonum.org/v1/gonum/blas/gonum"

// defaultBLAS is gonum's pure-Go BLAS. A file built with the "openblas" tag
// can define defaultBLAS to return a cgo implementation instead; nothing
// else in the package needs to change. A sketch (Debian's libopenblas-dev,
// netlib pinned at v0.0.0-20220323200511-14de99971b2d, CGO_LDFLAGS=-lopenblas):
//
//	//go:build openblas
//
//	package kernels
//
//	import "gonum.org/v1/netlib/blas/netlib"
//
//	func defaultBLAS() BLAS { return openBLAS{} }
//
//	type openBLAS struct{}
//
//	func (openBLAS) Name() string { return "openblas" }
//	func (openBLAS) Sgemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
//		netlib.Implementation{}.Sgemm(trans(tA), trans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
//	}
//	// and Dgemm likewise.
func defaultBLAS() BLAS { return gonumBLAS{} }

type gonumBLAS struct{}

func (gonumBLAS) Name() string { return "gonum" }

func (gonumBLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gonum.Implementation{}.Sgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (gonumBLAS) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gonum.Implementation{}.Dgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
