//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// axpyAVX512 sets y[i] += a*x[i] for i < n; dotAVX512 returns Σ x[i]*y[i].
// (gemm_gen_amd64.s)
//
//go:noescape
func axpyAVX512(n int, a float32, x, y *float32)

//go:noescape
func dotAVX512(n int, x, y *float32) float32

var haveVectorAsm = cpu.X86.HasAVX512F

// axpy32 sets y[i] += a*x[i], in AVX-512 where the CPU has it.
func axpy32(a float32, x, y []float32) {
	y = y[:len(x)]
	if haveVectorAsm && len(x) >= 8 {
		axpyAVX512(len(x), a, &x[0], &y[0])
		return
	}
	for i, v := range x {
		y[i] += a * v
	}
}

// dot32 returns Σ x[i]*y[i], in AVX-512 where the CPU has it.
func dot32(x, y []float32) float32 {
	y = y[:len(x)]
	if haveVectorAsm && len(x) >= 8 {
		return dotAVX512(len(x), &x[0], &y[0])
	}
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}
