package kernels

import (
	"fmt"
	"math"
	"testing"
)

func TestGemmOp(t *testing.T) {
	rng := newRNG(60)
	M, N, K := 3, 4, 5
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, cs := range [][]int{nil, {}, {N}, {1, N}, {M, 1}, {M, N}} {
				p := GemmOpParams{M: M, N: N, K: K, TransA: ta, TransB: tb, Alpha: 0.7, Beta: 1.3}
				what := fmt.Sprintf("GemmOp transA=%v transB=%v C%v", ta, tb, cs)
				a, b, dy := randn(rng, M*K), randn(rng, K*N), randn(rng, M*N)
				var c []float64
				if cs != nil {
					c = randn(rng, Size(cs))
				}
				// Reference: explicit loops over A' and B'.
				want := make([]float64, M*N)
				for i := 0; i < M; i++ {
					for j := 0; j < N; j++ {
						s := 0.0
						for l := 0; l < K; l++ {
							av, bv := a[i*K+l], b[l*N+j]
							if ta {
								av = a[l*M+i]
							}
							if tb {
								bv = b[j*K+l]
							}
							s += av * bv
						}
						want[i*N+j] = p.Alpha * s
						if c != nil {
							ci, cj := i, j
							if len(cs) < 2 || cs[0] == 1 {
								ci = 0
							}
							if len(cs) == 0 || cs[len(cs)-1] == 1 {
								cj = 0
							}
							w := N
							if len(cs) == 0 || cs[len(cs)-1] == 1 {
								w = 1
							}
							want[i*N+j] += p.Beta * c[ci*w+cj]
						}
					}
				}
				y := make([]float64, M*N)
				GemmOpForward(p, a, b, cs, c, y)
				assertClose(t, what+" forward", y, want, 1e-14)
				fwd := func() []float64 { GemmOpForward(p, a, b, cs, c, y); return y }
				da, db := make([]float64, len(a)), make([]float64, len(b))
				GemmOpBackwardA(p, b, dy, da)
				checkGrad(t, what+" dA", a, dy, da, fwd)
				GemmOpBackwardB(p, a, dy, db)
				checkGrad(t, what+" dB", b, dy, db, fwd)
				if c != nil {
					dc := make([]float64, len(c))
					GemmOpBackwardC(p, cs, dy, dc)
					checkGrad(t, what+" dC", c, dy, dc, fwd)
				}
			}
		}
	}
}

// TestGemmOpForwardConstant checks the Gemm whose B is kept packed (a constant
// classifier's) on every kernel with packed products: the bits of GemmOpForward, at one
// row and many (the products split by columns and by rows), over several k blocks and
// column blocks, both transpositions, with and without C; each row computed alone gives
// the bits it has among the others (the feature cache's equality rests on it; checked at
// ONNX's default alpha and beta, where it holds for the unpacked products too); a second
// call reads the cache, which holds B packed.
// TestGemmOpForwardConstantLargeB: a B above gemmPackedBMax values (AlexNet's first
// classifier layer is 38 million) is kept packed in a product of one row (predict at
// batch 1) and not in one of more than gemmPackedBigRows rows, with GemmOpForward's bits
// either way.
func TestGemmOpForwardConstantLargeB(t *testing.T) {
	rng := newRNG(43)
	const n, k = 4096, gemmPackedBMax/4096 + 1
	b := to32(randn(rng, k*n))
	a := to32(randn(rng, (gemmPackedBigRows+1)*k))
	bias := to32(randn(rng, n))
	ran := 0
	forEachImplementation(t, func(t *testing.T) {
		kern := packedKernel[float32]()
		if kern == nil {
			return
		}
		ran++
		for _, m := range []int{1, gemmPackedBigRows + 1} {
			p := GemmOpParams{M: m, N: n, K: k, TransB: true, Alpha: 1, Beta: 1}
			want, got := make([]float32, m*n), make([]float32, m*n)
			GemmOpForward(p, a[:m*k], b, []int{n}, bias, want)
			var cache FilterCache
			for call := 0; call < 2; call++ {
				clear(got)
				GemmOpForwardConstant(&cache, p, a[:m*k], b, []int{n}, bias, got)
				assertBits(t, fmt.Sprintf("%d rows, call %d", m, call), got, want)
			}
			kept := cache.kind == cachePackedB && len(cache.u) == packedBLen(kern, k, n)
			if wantKept := m <= gemmPackedBigRows; kept != wantKept {
				t.Errorf("%d rows of a B of %d values: B kept packed %v, want %v", m, k*n, kept, wantKept)
			}
		}
	})
	if want := len(asmKernels()) + 1; ran < want {
		t.Fatalf("%d kernels ran the packed-B Gemm; this CPU has %d", ran, want)
	}
}

func TestGemmOpForwardConstant(t *testing.T) {
	rng := newRNG(41)
	shapes := []struct{ m, n, k int }{{1, 1000, 1280}, {9, 1000, 1280}, {300, 40, 300}, {2, 4200, 70}, {1, 33, 3}, {9, 100, 300}}
	ran := 0
	forEachImplementation(t, func(t *testing.T) {
		kern := packedKernel[float32]()
		if kern == nil {
			return
		}
		ran++
		for i, sh := range shapes {
			for _, tr := range [][2]bool{{false, true}, {true, false}} {
				// ONNX's default alpha and beta (PyTorch's Linear), and others on one shape.
				p := GemmOpParams{M: sh.m, N: sh.n, K: sh.k, TransA: tr[0], TransB: tr[1], Alpha: 1, Beta: 1}
				if i == len(shapes)-1 {
					p.Alpha, p.Beta = 0.75, 1.5
				}
				a, b := to32(randn(rng, p.M*p.K)), to32(randn(rng, p.K*p.N))
				bias := to32(randn(rng, p.N))
				for _, withC := range []bool{false, true} {
					var cShape []int
					var c []float32
					if withC {
						cShape, c = []int{p.N}, bias
					}
					what := fmt.Sprintf("%+v C %v", p, withC)
					want, got := make([]float32, p.M*p.N), make([]float32, p.M*p.N)
					GemmOpForward(p, a, b, cShape, c, want)
					var cache FilterCache
					for call := 0; call < 2; call++ {
						clear(got)
						GemmOpForwardConstant(&cache, p, a, b, cShape, c, got)
						assertBits(t, fmt.Sprintf("%s call %d", what, call), got, want)
					}
					if cache.kind != cachePackedB || cache.kern != kern || len(cache.u) != packedBLen(kern, p.K, p.N) {
						t.Fatalf("%s: the cache holds kind %d of %d values, want B packed (%d)", what, cache.kind, len(cache.u), packedBLen(kern, p.K, p.N))
					}
					if p.TransA || p.M == 1 || p.Alpha != 1 {
						continue
					}
					// Each row alone.
					one := p
					one.M = 1
					row := make([]float32, p.N)
					for i := range p.M {
						GemmOpForwardConstant(&cache, one, a[i*p.K:(i+1)*p.K], b, cShape, c, row)
						assertBits(t, fmt.Sprintf("%s row %d alone", what, i), row, want[i*p.N:(i+1)*p.N])
					}
				}
			}
		}
	})
	// An alpha that is 0 in float32: C alone, as GemmOpForward (an infinity in B would
	// give NaN through a product).
	p := GemmOpParams{M: 2, N: 40, K: 8, Alpha: 1e-50, Beta: 1}
	a, b, bias := to32(randn(rng, p.M*p.K)), to32(randn(rng, p.K*p.N)), to32(randn(rng, p.N))
	b[3] = float32(math.Inf(1))
	want, got := make([]float32, p.M*p.N), make([]float32, p.M*p.N)
	GemmOpForward(p, a, b, []int{p.N}, bias, want)
	var cache FilterCache
	GemmOpForwardConstant(&cache, p, a, b, []int{p.N}, bias, got)
	assertBits(t, "alpha 1e-50", got, want)
	if want := len(asmKernels()) + 1; ran < want { // and the portable Go kernel
		t.Fatalf("%d kernels ran the packed-B Gemm; this CPU has %d", ran, want)
	}
}
