//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// axpyAVX512 and axpyAVX2 set y[i] += a*x[i] for i < n; dotAVX512 and
// dotAVX2 return Σ x[i]*y[i]. (gemm_gen_amd64.s)
//
//go:noescape
func axpyAVX512(n int, a float32, x, y *float32)

//go:noescape
func dotAVX512(n int, x, y *float32) float32

//go:noescape
func axpyAVX2(n int, a float32, x, y *float32)

//go:noescape
func dotAVX2(n int, x, y *float32) float32

var (
	haveVectorAsm  = cpu.X86.HasAVX512F
	haveVectorAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

// axpy32 sets y[i] += a*x[i], in AVX-512 or AVX2 where the CPU has it.
func axpy32(a float32, x, y []float32) {
	y = y[:len(x)]
	if len(x) >= 8 {
		switch {
		case haveVectorAsm:
			axpyAVX512(len(x), a, &x[0], &y[0])
			return
		case haveVectorAVX2:
			axpyAVX2(len(x), a, &x[0], &y[0])
			return
		}
	}
	for i, v := range x {
		y[i] += a * v
	}
}

// dot32 returns Σ x[i]*y[i], in AVX-512 or AVX2 where the CPU has it.
func dot32(x, y []float32) float32 {
	y = y[:len(x)]
	if len(x) >= 8 {
		switch {
		case haveVectorAsm:
			return dotAVX512(len(x), &x[0], &y[0])
		case haveVectorAVX2:
			return dotAVX2(len(x), &x[0], &y[0])
		}
	}
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// toBF16AVX512 and fromBF16AVX512 are ToBF16 and FromBF16 on n values, a multiple of 16
// for toBF16AVX512, any number for fromBF16AVX512 (its tail masked) (gemm_gen_amd64.s).
//
//go:noescape
func toBF16AVX512(n int, src *float32, dst *uint16)

//go:noescape
func fromBF16AVX512(n int, src *uint16, dst *float32)

// toBF16Run and fromBF16Run are ToBF16 and FromBF16 on one chunk, in AVX-512 where the
// CPU has it.
func toBF16Run(src []float32, dst []uint16) {
	dst = dst[:len(src)] // the assembly writes len(src) values
	n := 0
	if haveVectorAsm {
		if n = len(src) &^ 15; n > 0 {
			toBF16AVX512(n, &src[0], &dst[0])
		}
	}
	toBF16Go(src[n:], dst[n:])
}

// reluMaskBF16AVX512 sets dx[i] = dy[i] where the bfloat16 y[i] is positive, else +0, for
// n values (gemm_gen_amd64.s).
//
//go:noescape
func reluMaskBF16AVX512(n int, y *uint16, dy, dx *float32)

// reluMaskBF16Run is reluMaskCompact in AVX-512 where the CPU has it (reporting whether
// it ran): the mask from the copy's bits.
func reluMaskBF16Run(y []uint16, dy, dx []float32) bool {
	if !haveVectorAsm {
		return false
	}
	_, _ = dy[len(y)-1], dx[len(y)-1]
	reluMaskBF16AVX512(len(y), &y[0], &dy[0], &dx[0])
	return true
}

func fromBF16Run(src []uint16, dst []float32) {
	dst = dst[:len(src)] // the assembly writes len(src) values
	if haveVectorAsm {
		if len(src) > 0 {
			fromBF16AVX512(len(src), &src[0], &dst[0])
		}
		return
	}
	fromBF16Go(src, dst)
}
