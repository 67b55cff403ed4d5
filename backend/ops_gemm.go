package backend

import "toolkit/backend/kernels"

func init() {
	register("Gemm", newGemm[float32], newGemm[float64])
}

// gemm is ONNX Gemm: Y = alpha * op(A) * op(B) + beta * C, op transposing when transA
// or transB is set, C broadcast to [M N]. The arithmetic is kernels.GemmOp*.
type gemm[T float] struct {
	p      kernels.GemmOpParams
	cShape []int // nil without C
	// packedB keeps B packed for the products from run to run, when the program takes it
	// as constant (constantB; a classifier in predict or evaluate: at batch 1 the packing
	// is most of the product). It is this op's own: two Gemms reading one tensor may
	// take it with another transposition or shape.
	packedB   kernels.FilterCache
	constantB bool
}

func newGemm[T float](c *opContext) (*opKernels[T], error) {
	a, b := c.in[0], c.in[1]
	if len(a) != 2 || len(b) != 2 {
		return nil, c.errorf("A is %v and B is %v: both must be matrices", a, b)
	}
	p := kernels.GemmOpParams{
		TransA: c.node.AttrInt("transA", 0) != 0,
		TransB: c.node.AttrInt("transB", 0) != 0,
		Alpha:  float64(c.node.AttrFloat("alpha", 1)),
		Beta:   float64(c.node.AttrFloat("beta", 1)),
	}
	p.M, p.K = a[0], a[1]
	if p.TransA {
		p.M, p.K = a[1], a[0]
	}
	kb, nb := b[0], b[1]
	if p.TransB {
		kb, nb = b[1], b[0]
	}
	if kb != p.K {
		return nil, c.errorf("A is %v (transA=%v) and B is %v (transB=%v): inner dimensions %d and %d differ",
			a, p.TransA, b, p.TransB, p.K, kb)
	}
	p.N = nb
	g := &gemm[T]{p: p, constantB: c.fixed(1)}
	ks := &opKernels[T]{outputs: []kernel[T]{g}, data: []int{0, 1}}
	if c.has(2) {
		s := c.in[2]
		out, err := kernels.BroadcastShape(s, []int{p.M, p.N})
		if err != nil || len(s) > 2 || len(out) != 2 || out[0] != p.M || out[1] != p.N {
			return nil, c.errorf("C of shape %v does not broadcast to [%d %d]", s, p.M, p.N)
		}
		g.cShape = append([]int{}, s...)
		ks.data = append(ks.data, 2)
	}
	return ks, nil
}

func (g *gemm[T]) forward(ins [][]T, out []T) error {
	var c []T
	if g.cShape != nil {
		c = ins[2]
	}
	if g.constantB {
		kernels.GemmOpForwardConstant(&g.packedB, g.p, ins[0], ins[1], g.cShape, c, out)
		return nil
	}
	kernels.GemmOpForward(g.p, ins[0], ins[1], g.cShape, c, out)
	return nil
}

// backwardReads: each product's gradient reads the other factor; C's reads neither.
func (g *gemm[T]) backwardReads(i int) reads {
	if i < 2 {
		return readsIn(1 - i)
	}
	return reads{}
}

// readsRounded: each product's other factor.
func (g *gemm[T]) readsRounded(i int) reads { return g.backwardReads(i) }

// overwritesGrad: GemmOpBackwardA, B and C overwrite their outputs.
func (g *gemm[T]) overwritesGrad() bool { return true }

func (g *gemm[T]) backward(i int, ins [][]T, out, dy, gin []T) error {
	switch i {
	case 0:
		kernels.GemmOpBackwardA(g.p, ins[1], dy, gin)
	case 1:
		kernels.GemmOpBackwardB(g.p, ins[0], dy, gin)
	case 2:
		kernels.GemmOpBackwardC(g.p, g.cShape, dy, gin)
	}
	return nil
}
