//go:build !amd64 || purego

package kernels

// asmKernels is empty: no assembly micro-kernel for this architecture or
// under the purego build tag.
func asmKernels() []*gemmKernel { return nil }

// bf16Kernel is nil: the bfloat16 micro-kernel is AVX-512 assembly.
func bf16Kernel() *gemmKernel { return nil }
