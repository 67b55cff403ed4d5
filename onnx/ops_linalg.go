package onnx

import (
	"fmt"
)

// MatMul and Transpose. The backend's kernels are in backend/ops_linalg.go.

func init() {
	define(
		&OpSchema{name: "MatMul", since: v(1, 9, 13), infer: nodeCtx.matmul},
		&OpSchema{name: "Transpose", since: v(1, 13), infer: nodeCtx.transpose},
	)
}

func (c nodeCtx) matmul() error {
	if err := c.inputs(2, 2); err != nil {
		return err
	}
	a, err := c.shape(0)
	if err != nil {
		return err
	}
	b, err := c.shape(1)
	if err != nil {
		return err
	}
	if len(a) == 0 || len(b) == 0 {
		return fmt.Errorf("A is %v, B is %v: scalars cannot be multiplied as matrices", a, b)
	}
	aa, bb := a, b
	if len(a) == 1 {
		aa = []int64{1, a[0]}
	}
	if len(b) == 1 {
		bb = []int64{b[0], 1}
	}
	k, k2 := aa[len(aa)-1], bb[len(bb)-2]
	if k != k2 {
		return fmt.Errorf("A is %v, B is %v: inner dimensions %d and %d differ", a, b, k, k2)
	}
	batch, err := broadcastShapes(aa[:len(aa)-2], bb[:len(bb)-2])
	if err != nil {
		return fmt.Errorf("A is %v, B is %v: batch dimensions: %w", a, b, err)
	}
	out := batch
	if len(a) > 1 {
		out = append(out, aa[len(aa)-2])
	}
	if len(b) > 1 {
		out = append(out, bb[len(bb)-1])
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) transpose() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	perm := c.n.AttrInts("perm", nil)
	if perm == nil {
		perm = make([]int64, len(x))
		for i := range perm {
			perm[i] = int64(len(x) - 1 - i)
		}
	}
	if len(perm) != len(x) {
		return fmt.Errorf("perm %v does not fit input %v", perm, x)
	}
	seen := make([]bool, len(x))
	out := make([]int64, len(x))
	for i, p := range perm {
		if p < 0 || p >= int64(len(x)) || seen[p] {
			return fmt.Errorf("perm %v is not a permutation of 0..%d", perm, len(x)-1)
		}
		seen[p] = true
		out[i] = x[p]
	}
	if t, back := c.movable(0); t != nil && len(t.Ints) <= foldLimit {
		// Element at output position o comes from input position with o permuted back.
		n := len(t.Ints)
		res := &Tensor{DataType: t.DataType, Dims: out, Ints: make([]int64, n)}
		inStrides := stridesOf(x)
		pos := make([]int64, len(out))
		for k := 0; k < n; k++ {
			src := 0
			for i, p := range perm {
				src += int(pos[i]) * inStrides[p]
			}
			res.Ints[k] = t.Ints[src]
			incr(pos, out)
		}
		c.setConst(0, back(res))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}
