//go:build openblas

package kernels

import "toolkit/backend/kernels/internal/openblas"

// buildDefaultBLAS is OpenBLAS through cgo (gonum.org/v1/netlib/blas/netlib,
// linked with -lopenblas: Debian's libopenblas-dev), under the openblas
// build tag.
//
// OpenBLAS is told once, here, to run every call on one thread, and the
// parallelism comes from this package: [Gemm] splits a product into blocks
// of C across GOMAXPROCS goroutines, and the convolutions run one serial
// product per image (or band of rows) on each goroutine. A single layer of
// parallelism means no oversubscription (goroutines splitting a batch, each
// calling a BLAS that starts its own threads), and OpenBLAS's thread pool,
// which spins while it waits for work, does not compete with the Go
// scheduler for the same cores. Measured on VGG19 (BENCHMARKS.md), this is
// as fast as OpenBLAS's own threads on large products and faster on the
// small per-image products of 32×32 inputs.
func buildDefaultBLAS() BLAS {
	b, _ := openBLASImpl()
	return b
}

func openBLASImpl() (BLAS, bool) {
	openblas.SetNumThreads(1)
	return openBLAS{core: openblas.CoreName()}, true
}

type openBLAS struct{ core string }

func (b openBLAS) Name() string { return "openblas-" + b.core }

func (o openBLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	parallelGemm(openblas.Sgemm, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (o openBLAS) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	parallelGemm(openblas.Dgemm, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
