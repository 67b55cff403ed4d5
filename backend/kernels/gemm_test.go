package kernels

import (
	"fmt"
	"math"
	"testing"
)

// naiveGemm64 is the defining triple loop in float64.
func naiveGemm64(transA, transB bool, m, n, k int, alpha float64, a []float32, lda int, b []float32, ldb int, beta float64, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				var av, bv float32
				if transA {
					av = a[l*lda+i]
				} else {
					av = a[i*lda+l]
				}
				if transB {
					bv = b[j*ldb+l]
				} else {
					bv = b[l*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := alpha * s
			if beta != 0 {
				v += beta * float64(c[i*ldc+j])
			}
			out[i*n+j] = v
		}
	}
	return out
}

// TestSgemm checks the packed GEMM (serial and split across goroutines) and
// whatever BLAS Gemm dispatches to against the triple loop, over shapes that
// hit every fringe (rows mod 6, columns mod 16, k mod 4) and cross the KC,
// MC and NC blocking boundaries, with leading dimensions larger than the
// matrices, every transposition, and alpha/beta combinations (beta == 0
// must ignore NaN in C).
func TestSgemm(t *testing.T) {
	rng := newRNG(81)
	type shape struct{ m, n, k int }
	shapes := []shape{
		{1, 1, 1}, {6, 16, 4}, {5, 15, 3}, {7, 17, 5}, {13, 33, 9}, {12, 32, 257},
		{gemmMC + 7, 40, 30}, {20, gemmNC + 21, 3}, {31, 70, 2*gemmKC + 3}, {64, 300, 27},
		{3, 500, 40}, {500, 3, 40}, {150, 130, 300},
		{13, gemmNC + 50, 20}, {400, 50, 300}, {31, 4000, 9},
	}
	impls := []struct {
		name string
		f    gemmFunc[float32]
	}{
		{"serial", sgemmSerial},
		{"goroutines", func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
			sgemm(3, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}},
		{"parallel", func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
			parallelGemm(sgemmSerial, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}},
		{"Gemm(" + CurrentBLAS().Name() + ")", Gemm[float32]},
	}
	for _, s := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
				m, n, k := s.m, s.n, s.k
				lda, ldb, ldc := k+3, n+1, n+5
				if tr[0] {
					lda = m + 2
				}
				if tr[1] {
					ldb = k + 4
				}
				ar, br := m, k
				if tr[0] {
					ar = k
				}
				if tr[1] {
					br = n
				}
				a, b := to32(randn(rng, ar*lda)), to32(randn(rng, br*ldb))
				c0 := to32(randn(rng, m*ldc))
				if ab[1] == 0 {
					for i := range c0 {
						c0[i] = float32(math.NaN())
					}
				}
				want := naiveGemm64(tr[0], tr[1], m, n, k, float64(ab[0]), a, lda, b, ldb, float64(ab[1]), c0, ldc)
				for _, im := range impls {
					c := append([]float32(nil), c0...)
					im.f(tr[0], tr[1], m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					name := fmt.Sprintf("%s %dx%dx%d trans %v alpha %g beta %g", im.name, m, n, k, tr, ab[0], ab[1])
					tol := 1e-5 * math.Sqrt(float64(k))
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							got, w := float64(c[i*ldc+j]), want[i*n+j]
							if d := math.Abs(got - w); !(d <= tol*(1+math.Abs(w))) {
								t.Fatalf("%s: C[%d][%d] = %g, want %g", name, i, j, got, w)
							}
						}
						// Padding past column n is never written.
						for j := n; j < ldc && i*ldc+j < len(c); j++ {
							if g, w := c[i*ldc+j], c0[i*ldc+j]; g != w && !(math.IsNaN(float64(g)) && math.IsNaN(float64(w))) {
								t.Fatalf("%s: C[%d][%d] past n changed to %g", name, i, j, g)
							}
						}
					}
				}
			}
		}
	}
}

// TestMicroKernel checks the micro-kernel in use (assembly where available)
// against the portable one, bit for bit up to float32 rounding, for k from 1
// to 9 (every remainder of the four-step unrolling) and beta 0 with NaN in C.
func TestMicroKernel(t *testing.T) {
	rng := newRNG(82)
	for kc := 1; kc <= 9; kc++ {
		for _, beta := range []float32{0, 1, -0.5} {
			var bias []float32
			if kc%2 == 1 {
				bias = to32(randn(rng, gemmMR))
			}
			a, b := to32(randn(rng, kc*gemmMR)), to32(randn(rng, kc*gemmNR))
			ldc := gemmNR + 3
			c0 := to32(randn(rng, gemmMR*ldc))
			if beta == 0 {
				for i := range c0 {
					c0[i] = float32(math.NaN())
				}
			}
			got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
			microKernel(kc, a, b, got, ldc, 1.5, beta, bias)
			microKernelGo(kc, a, b, want, ldc, 1.5, beta, bias)
			for i := range got {
				if i%ldc >= gemmNR {
					if !(got[i] == c0[i] || math.IsNaN(float64(c0[i]))) {
						t.Fatalf("kc %d: wrote past the tile at %d", kc, i)
					}
					continue
				}
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("kc %d beta %g: c[%d] = %g, want %g (asm %v)", kc, beta, i, got[i], want[i], haveGemmAsm)
				}
			}
		}
	}
}

// TestPackPanels checks the panel-packing helpers in use (assembly where
// available) against their portable versions.
func TestPackPanels(t *testing.T) {
	rng := newRNG(83)
	for _, kc := range []int{1, 2, 7, 256} {
		ld := 37
		src := to32(randn(rng, (kc-1)*ld+gemmNR))
		got, want := make([]float32, kc*gemmNR), make([]float32, kc*gemmNR)
		packB16(kc, src, ld, got)
		packB16Go(kc, src, ld, want)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("packB16 kc %d: [%d] = %g, want %g", kc, i, got[i], want[i])
			}
		}
		src = src[:(kc-1)*ld+gemmMR]
		got, want = make([]float32, kc*gemmMR), make([]float32, kc*gemmMR)
		packA6T(kc, src, ld, got)
		packA6TGo(kc, src, ld, want)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("packA6T kc %d: [%d] = %g, want %g", kc, i, got[i], want[i])
			}
		}
	}
}
