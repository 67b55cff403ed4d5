package backend

import "toolkit/backend/kernels"

func init() {
	register("Gemm", newGemm[float32], newGemm[float64])
}

// gemm is ONNX Gemm: Y = alpha * op(A) * op(B) + beta * C, op transposing when transA
// or transB is set, C broadcast to [M N].
type gemm[T float] struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    T
	// cm and cn are C's extents (1 or M, 1 or N) as a broadcast [cm cn] matrix.
	cm, cn int
	hasC   bool
}

func newGemm[T float](c *opContext) (*opKernels[T], error) {
	a, b := c.in[0], c.in[1]
	if len(a) != 2 || len(b) != 2 {
		return nil, c.errorf("A is %v and B is %v: both must be matrices", a, b)
	}
	g := &gemm[T]{
		transA: c.node.AttrInt("transA", 0) != 0,
		transB: c.node.AttrInt("transB", 0) != 0,
		alpha:  T(c.node.AttrFloat("alpha", 1)),
		beta:   T(c.node.AttrFloat("beta", 1)),
	}
	g.m, g.k = a[0], a[1]
	if g.transA {
		g.m, g.k = a[1], a[0]
	}
	kb, nb := b[0], b[1]
	if g.transB {
		kb, nb = b[1], b[0]
	}
	if kb != g.k {
		return nil, c.errorf("A is %v (transA=%v) and B is %v (transB=%v): inner dimensions %d and %d differ",
			a, g.transA, b, g.transB, g.k, kb)
	}
	g.n = nb
	ks := &opKernels[T]{outputs: []kernel[T]{g}, data: []int{0, 1}, diff: []bool{true, true}}
	if c.has(2) {
		s := c.in[2]
		g.cm, g.cn = 1, 1
		switch len(s) {
		case 0:
		case 1:
			g.cn = s[0]
		case 2:
			g.cm, g.cn = s[0], s[1]
		default:
			return nil, c.errorf("C has rank %d: want at most 2", len(s))
		}
		if (g.cm != 1 && g.cm != g.m) || (g.cn != 1 && g.cn != g.n) {
			return nil, c.errorf("C of shape %v does not broadcast to [%d %d]", s, g.m, g.n)
		}
		g.hasC = true
		ks.data = append(ks.data, 2)
		ks.diff = append(ks.diff, true)
	}
	return ks, nil
}

func (g *gemm[T]) lda() int {
	if g.transA {
		return g.m
	}
	return g.k
}

func (g *gemm[T]) ldb() int {
	if g.transB {
		return g.k
	}
	return g.n
}

func (g *gemm[T]) forward(ins [][]T, out []T) error {
	var beta T
	if g.hasC && g.beta != 0 {
		cv := ins[2]
		for i := 0; i < g.m; i++ {
			for j := 0; j < g.n; j++ {
				out[i*g.n+j] = cv[(i%g.cm)*g.cn+j%g.cn]
			}
		}
		beta = g.beta
	}
	kernels.Gemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, ins[0], g.lda(), ins[1], g.ldb(), beta, out, g.n)
	return nil
}

func (g *gemm[T]) backward(i int, ins [][]T, out, dy, gin []T) error {
	switch i {
	case 0: // dA
		if g.transA { // dA [K M] = alpha * op(B) * dY^T
			kernels.Gemm(g.transB, true, g.k, g.m, g.n, g.alpha, ins[1], g.ldb(), dy, g.n, 0, gin, g.m)
		} else { // dA [M K] = alpha * dY * op(B)^T
			kernels.Gemm(false, !g.transB, g.m, g.k, g.n, g.alpha, dy, g.n, ins[1], g.ldb(), 0, gin, g.k)
		}
	case 1: // dB
		if g.transB { // dB [N K] = alpha * dY^T * op(A)
			kernels.Gemm(true, g.transA, g.n, g.k, g.m, g.alpha, dy, g.n, ins[0], g.lda(), 0, gin, g.k)
		} else { // dB [K N] = alpha * op(A)^T * dY
			kernels.Gemm(!g.transA, false, g.k, g.n, g.m, g.alpha, ins[0], g.lda(), dy, g.n, 0, gin, g.n)
		}
	case 2: // dC = beta * dY summed over the broadcast axes
		clear(gin)
		for r := 0; r < g.m; r++ {
			for j := 0; j < g.n; j++ {
				gin[(r%g.cm)*g.cn+j%g.cn] += g.beta * dy[r*g.n+j]
			}
		}
	}
	return nil
}
