//go:build amd64 && !purego

package kernels

import "toolkit/internal/testref"

// missedKernelPaths lists the kernel paths the CPU supports that the tests did not run:
// a path ran when its GEMM micro-kernel multiplied blocks (KernelRuns) and its vector
// loops were detected (so TestVectorOps ran them).
func missedKernelPaths() []string {
	runs := KernelRuns()
	ran := map[string]bool{
		"avx512": runs["avx512"] > 0 && haveVectorAsm,
		"avx2":   runs["avx2"] > 0 && haveVectorAVX2,
	}
	return testref.MissedKernelPaths(testref.AMD64Paths, ran)
}
