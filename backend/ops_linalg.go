package backend

import (
	"toolkit/backend/kernels"
)

func init() {
	register("MatMul", newMatMul[float32], newMatMul[float64])
	register("Transpose", newTranspose[float32], newTranspose[float64])
}

// matMul is ONNX MatMul (numpy.matmul semantics, batch dimensions broadcast).
type matMul[T float] struct{ sa, sb []int }

func newMatMul[T float](c *opContext) (*opKernels[T], error) {
	if _, err := kernels.MatMulShape(c.in[0], c.in[1]); err != nil {
		return nil, c.errorf("A %v and B %v: %v", c.in[0], c.in[1], err)
	}
	k := &matMul[T]{sa: c.in[0], sb: c.in[1]}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0, 1}}, nil
}

func (k *matMul[T]) forward(ins [][]T, out []T) error {
	kernels.MatMul(k.sa, ins[0], k.sb, ins[1], out)
	return nil
}

// backwardReads: each factor's gradient reads the other factor.
func (k *matMul[T]) backwardReads(i int) reads { return readsIn(1 - i) }

// readsRounded: each factor's gradient reads the other factor, a product's.
func (k *matMul[T]) readsRounded(i int) reads { return readsIn(1 - i) }

func (k *matMul[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
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
	var perm []int
	for _, p := range c.node.AttrInts("perm", nil) {
		perm = append(perm, int(p))
	}
	if perm == nil {
		for i := len(shape) - 1; i >= 0; i-- {
			perm = append(perm, i)
		}
	}
	if len(perm) != len(shape) {
		return nil, c.errorf("perm %v does not match the input's rank %d", perm, len(shape))
	}
	seen := make([]bool, len(perm))
	for _, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			return nil, c.errorf("perm %v is not a permutation of 0..%d", perm, len(perm)-1)
		}
		seen[p] = true
	}
	k := &transpose[T]{shape: shape, perm: perm}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

func (k *transpose[T]) forward(ins [][]T, out []T) error {
	kernels.Transpose(k.shape, k.perm, ins[0], out)
	return nil
}

func (k *transpose[T]) backwardReads(int) reads { return reads{} }

func (k *transpose[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.TransposeBackward(k.shape, k.perm, gout, gin)
	return nil
}
