//go:build amd64 && !purego

package kernels

// vectorVariants lists the assembly axpy and dot loops this CPU runs, for TestVectorOps.
func vectorVariants() []vectorVariant {
	var vs []vectorVariant
	if haveVectorAsm {
		vs = append(vs, vectorVariant{"avx512",
			func(a float32, x, y []float32) { axpyAVX512(len(x), a, &x[0], &y[0]) },
			func(x, y []float32) float32 { return dotAVX512(len(x), &x[0], &y[0]) }})
	}
	if haveVectorAVX2 {
		vs = append(vs, vectorVariant{"avx2",
			func(a float32, x, y []float32) { axpyAVX2(len(x), a, &x[0], &y[0]) },
			func(x, y []float32) float32 { return dotAVX2(len(x), &x[0], &y[0]) }})
	}
	return vs
}

// bf16StoreVariants lists the assembly bfloat16 copies this CPU runs, for
// TestToFromBF16 (n a multiple of 16; from also at any n).
func bf16StoreVariants() []bf16StoreVariant {
	if !haveVectorAsm {
		return nil
	}
	return []bf16StoreVariant{{"avx512",
		func(src []float32, dst []uint16) { toBF16AVX512(len(src), &src[0], &dst[0]) },
		func(src []uint16, dst []float32) { fromBF16AVX512(len(src), &src[0], &dst[0]) }}}
}
