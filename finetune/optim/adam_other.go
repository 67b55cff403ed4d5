//go:build !amd64 || purego

package optim

// adamKernels lists the Adam kernels: the portable loop only.
func adamKernels() []namedAdamKernel { return []namedAdamKernel{{"go", adamKernelGo}} }
