//go:build !amd64 || purego

package kernels

// asmKernels is empty: no assembly micro-kernel for this architecture or
// under the purego build tag.
func asmKernels() []*gemmKernel { return nil }
