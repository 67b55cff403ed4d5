//go:build purego && !openblas

package kernels

// defaultBLAS is gonum's pure-Go BLAS under the purego build tag.
func defaultBLAS() BLAS { return gonumBLAS{} }
