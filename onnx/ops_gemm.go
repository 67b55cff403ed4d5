package onnx

import (
	"fmt"
	"slices"
)

// Gemm. The backend's kernels are in backend/ops_gemm.go.

func init() {
	define(&OpSchema{name: "Gemm", since: v(1, 6, 7, 9, 11, 13), infer: nodeCtx.gemm})
}

func (c nodeCtx) gemm() error {
	if err := c.inputs(2, 3); err != nil {
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
	if len(a) != 2 || len(b) != 2 {
		return fmt.Errorf("A is %v, B is %v: both must be 2-D", a, b)
	}
	m, k := a[0], a[1]
	if c.n.AttrInt("transA", 0) != 0 {
		m, k = k, m
	}
	k2, n := b[0], b[1]
	if c.n.AttrInt("transB", 0) != 0 {
		k2, n = n, k2
	}
	if k != k2 {
		return fmt.Errorf("A is %v, B is %v: inner dimensions %d and %d differ", a, b, k, k2)
	}
	out := []int64{m, n}
	if c.has(2) {
		cs, err := c.shape(2)
		if err != nil {
			return err
		}
		bc, err := broadcastShapes(out, cs)
		if err != nil || !slices.Equal(bc, out) {
			return fmt.Errorf("C is %v, does not broadcast to the output %v", cs, out)
		}
	}
	c.set(0, out, c.typ(0))
	return nil
}
