//go:build !openblas && !purego

package kernels

// buildDefaultBLAS is the toolkit's own packed GEMM on the fastest
// assembly micro-kernel the CPU runs, else gonum. No cgo either way. Build
// with -tags openblas for OpenBLAS (blas_openblas.go), or -tags purego for
// gonum everywhere (no assembly of ours).
func buildDefaultBLAS() BLAS {
	if ks := asmKernels(); len(ks) > 0 {
		return goBLAS{kern: ks[0]}
	}
	return gonumBLAS{}
}

func openBLASImpl() (BLAS, bool) { return nil, false }
