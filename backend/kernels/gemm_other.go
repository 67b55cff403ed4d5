//go:build !amd64 || purego

package kernels

// asmKernels is empty: no assembly micro-kernel for this architecture or
// under the purego build tag.
func asmKernels() []*gemmKernel { return nil }

// bf16Kernel is nil: the bfloat16 micro-kernel is AVX-512 assembly.
func bf16Kernel() *gemmKernel { return nil }

// pairImage is never called here (no kernel has pairRows); the portable loop keeps its
// contract (pairBF16's rounding).
func pairImage(xp, dst []float32, C, plane, nw int) {
	for c := 0; c < C/2; c++ {
		lo, hi, d := xp[2*c*plane:(2*c+1)*plane], xp[(2*c+1)*plane:(2*c+2)*plane], dst[c*plane:(c+1)*plane]
		for i := range d {
			d[i] = pairBF16(lo[i], hi[i])
		}
	}
}
