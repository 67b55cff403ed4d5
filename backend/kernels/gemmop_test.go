package kernels

import (
	"fmt"
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
