//go:build purego && !openblas

package kernels

// buildDefaultBLAS is gonum's pure-Go BLAS under the purego build tag.
func buildDefaultBLAS() BLAS { return gonumBLAS{} }

func openBLASImpl() (BLAS, bool) { return nil, false }
