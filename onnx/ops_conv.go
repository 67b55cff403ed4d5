package onnx

import (
	"fmt"
)

// The convolution family: Conv (its window geometry is in window.go). The backend's
// kernels are in backend/ops_conv.go.

func init() {
	define(&OpSchema{name: "Conv", since: v(1, 11), infer: nodeCtx.conv})
}

func (c nodeCtx) conv() error {
	if err := c.inputs(2, 3); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	w, err := c.shape(1)
	if err != nil {
		return err
	}
	if len(x) < 3 || len(w) != len(x) {
		return fmt.Errorf("X is %v and W is %v: want (N, C, spatial...) and (M, C/group, kernel...)", x, w)
	}
	group := c.n.AttrInt("group", 1)
	if group < 1 || x[1]%group != 0 || w[0]%group != 0 {
		return fmt.Errorf("group %d does not divide X's %d channels and W's %d filters", group, x[1], w[0])
	}
	if w[1]*group != x[1] {
		return fmt.Errorf("X is %v with %d channels, W is %v and expects %d (group %d)", x, x[1], w, w[1]*group, group)
	}
	if c.has(2) {
		b, err := c.shape(2)
		if err != nil {
			return err
		}
		if len(b) != 1 || b[0] != w[0] {
			return fmt.Errorf("W is %v with %d filters, B is %v", w, w[0], b)
		}
	}
	win, err := convWindow(c.n, x, w)
	if err != nil {
		return err
	}
	out := append([]int64{x[0], w[0]}, win.out...)
	c.set(0, out, c.typ(0))
	return nil
}
