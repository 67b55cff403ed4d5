//go:build !amd64 || purego

package kernels

// asmKernels is empty: no assembly micro-kernel for this architecture or
// under the purego build tag.
func asmKernels() []*gemmKernel { return nil }

// bf16Kernel is nil: the bfloat16 micro-kernel is AVX-512 assembly.
func bf16Kernel() *gemmKernel { return nil }

// pairValues sets dst[i] to the bfloat16 pair of lo[i] and hi[i] (pairBF16's rounding)
// for i < len(dst); no kernel here reads pairs, but the loop keeps the contract.
func pairValues(lo, hi, dst []float32) {
	for i := range dst {
		dst[i] = pairBF16(lo[i], hi[i])
	}
}
