//go:build !openblas && !purego

package kernels

// defaultBLAS is the toolkit's own packed GEMM ([goBLAS]) where its AVX2/FMA
// micro-kernel runs, else gonum. No cgo either way. Build with -tags
// openblas for OpenBLAS (blas_openblas.go), or -tags purego for gonum
// everywhere (no assembly of ours).
func defaultBLAS() BLAS {
	if haveGemmAsm {
		return goBLAS{}
	}
	return gonumBLAS{}
}
