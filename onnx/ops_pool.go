package onnx

import (
	"fmt"
)

// The pooling family: windowed and global pooling (the window geometry is in
// window.go). The backend's kernels are in backend/ops_pool.go.

func init() {
	define(
		&OpSchema{name: "MaxPool", since: v(1, 8, 10, 11, 12), diff: onlyData, infer: nodeCtx.pool},
		&OpSchema{name: "AveragePool", since: v(1, 7, 10, 11), infer: nodeCtx.pool},
		&OpSchema{name: "LpPool", since: v(1, 2, 11), infer: nodeCtx.pool},
		&OpSchema{name: "GlobalAveragePool", since: v(1), infer: nodeCtx.globalPool},
		&OpSchema{name: "GlobalMaxPool", since: v(1), infer: nodeCtx.globalPool},
		&OpSchema{name: "GlobalLpPool", since: v(1, 2), infer: nodeCtx.globalPool},
	)
}

func (c nodeCtx) pool() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	max := 1
	if c.n.OpType == "MaxPool" {
		max = 2
	}
	if err := c.outputs(1, max); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	win, err := poolWindow(c.n, x)
	if err != nil {
		return err
	}
	out := append([]int64{x[0], x[1]}, win.out...)
	c.set(0, out, c.typ(0))
	c.set(1, out, Int64)
	return nil
}

func (c nodeCtx) globalPool() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	if len(x) < 3 {
		return fmt.Errorf("X is %v, want (N, C, spatial...)", x)
	}
	out := []int64{x[0], x[1]}
	for range x[2:] {
		out = append(out, 1)
	}
	c.set(0, out, c.typ(0))
	return nil
}
