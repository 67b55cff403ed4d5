package backend

import (
	"slices"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

func init() {
	register("MatMul", newMatMul[float32], newMatMul[float64])
	register("Transpose", newTranspose[float32], newTranspose[float64])
}

// matMul is ONNX MatMul (numpy.matmul semantics, batch dimensions broadcast), or one read
// and written through the transposes around it (transposed, opContext.foldTransposes).
type matMul[T float] struct {
	sa, sb     []int
	transposed *kernels.TransposedMatMul
	// packedB keeps a matrix B packed for the products from run to run where the
	// program takes it as constant (a linear layer's weights in predict or evaluate:
	// Swin-T's last MLP layers at batch 1 packed 2.4 million weights every run); nil
	// otherwise. This op's own, as gemm's.
	packedB *kernels.FilterCache
}

func newMatMul[T float](c *opContext) (*opKernels[T], error) {
	if f := c.foldTransposes; f != nil {
		t := f.plan
		if !slices.Equal(t.AShape, c.in[0]) || !slices.Equal(t.BShape, c.in[1]) || !slices.Equal(t.YShape, c.out[0]) {
			return nil, c.errorf("through the transposes around it: %v · %v → %v, the graph's %v · %v → %v", t.AShape, t.BShape, t.YShape, c.in[0], c.in[1], c.out[0])
		}
		return &opKernels[T]{outputs: []kernel[T]{&matMul[T]{transposed: t}}, data: []int{0, 1}}, nil
	}
	if _, err := kernels.MatMulShape(c.in[0], c.in[1]); err != nil {
		return nil, c.errorf("A %v and B %v: %v", c.in[0], c.in[1], err)
	}
	k := &matMul[T]{sa: c.in[0], sb: c.in[1]}
	if c.fixed(1) && len(k.sb) == 2 {
		k.packedB = new(kernels.FilterCache)
	}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0, 1}}, nil
}

func (k *matMul[T]) forward(ins [][]T, out []T) error {
	if k.transposed != nil {
		kernels.TransposedMatMulForward(k.transposed, ins[0], ins[1], out)
		return nil
	}
	if k.packedB != nil {
		// A's batches fold into the rows of one product by the matrix B.
		K, N := k.sb[0], k.sb[1]
		p := kernels.GemmOpParams{M: len(ins[0]) / K, N: N, K: K, Alpha: 1}
		kernels.GemmOpForwardConstant(k.packedB, p, ins[0], ins[1], nil, nil, out)
		return nil
	}
	kernels.MatMul(k.sa, ins[0], k.sb, ins[1], out)
	return nil
}

// backwardReads: each factor's gradient reads the other factor.
func (k *matMul[T]) backwardReads(i int) reads { return readsIn(1 - i) }

// readsRounded: each factor's gradient reads the other factor, a product's.
func (k *matMul[T]) readsRounded(i int) reads { return readsIn(1 - i) }

// overwritesGrad: MatMulBackwardA and B, TransposedMatMulBackwardA and B overwrite
// their outputs.
func (k *matMul[T]) overwritesGrad() bool { return true }

func (k *matMul[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	switch {
	case k.transposed != nil && i == 0:
		kernels.TransposedMatMulBackwardA(k.transposed, ins[1], gout, gin)
		return nil
	case k.transposed != nil:
		kernels.TransposedMatMulBackwardB(k.transposed, ins[0], gout, gin)
		return nil
	}
	if i == 0 {
		kernels.MatMulBackwardA(k.sa, ins[0], k.sb, ins[1], gout, gin)
	} else {
		kernels.MatMulBackwardB(k.sa, ins[0], k.sb, ins[1], gout, gin)
	}
	return nil
}

// transpose permutes axes; the default permutation reverses them.
type transpose[T float] struct{ shape, perm []int }

func newTranspose[T float](c *opContext) (*opKernels[T], error) {
	shape := c.in[0]
	perm := transposePerm(c.node, len(shape))
	if err := kernels.PermutationError(perm, len(shape)); err != nil {
		return nil, c.errorf("perm %v of an input of rank %d: %v", perm, len(shape), err)
	}
	k := &transpose[T]{shape: shape, perm: perm}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

func (k *transpose[T]) forward(ins [][]T, out []T) error {
	kernels.Transpose(k.shape, k.perm, ins[0], out)
	return nil
}

func (k *transpose[T]) backwardReads(int) reads { return reads{} }

// overwritesGrad: the inverse permutation writes every element.
func (k *transpose[T]) overwritesGrad() bool { return true }

func (k *transpose[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.TransposeBackward(k.shape, k.perm, gout, gin)
	return nil
}

// transposePerm is a Transpose node's permutation of a tensor of the rank given (the
// default reverses the axes).
func transposePerm(n *onnx.Node, rank int) []int {
	var perm []int
	for _, p := range n.AttrInts("perm", nil) {
		perm = append(perm, int(p))
	}
	if perm == nil {
		for i := rank - 1; i >= 0; i-- {
			perm = append(perm, i)
		}
	}
	return perm
}
