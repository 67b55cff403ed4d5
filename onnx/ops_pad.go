package onnx

import (
	"errors"
	"fmt"
	"slices"
)

// Pad. The backend's kernels are in backend/ops_pad.go.

func init() {
	define(&OpSchema{name: "Pad", since: v(1, 2, 11, 13), diff: onlyData, infer: nodeCtx.pad,
		upgrade: upgradeAt(11, (*upgrader).pad)})
}

func (c nodeCtx) pad() error {
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	var pads []int64
	axes := make([]int64, len(x))
	for i := range axes {
		axes[i] = int64(i)
	}
	if c.opset < 11 {
		if err := c.inputs(1, 1); err != nil {
			return err
		}
		pads = c.n.AttrInts("pads", nil)
		if pads == nil {
			return fmt.Errorf("attribute \"pads\" missing")
		}
	} else {
		if err := c.inputs(2, 4); err != nil {
			return err
		}
		if pads, err = c.intsInput(1, "pads"); err != nil {
			return err
		}
		if c.has(3) {
			if axes, err = c.intsInput(3, "axes"); err != nil {
				return err
			}
		}
	}
	if len(pads) != 2*len(axes) {
		return fmt.Errorf("pads %v: want %d values for input %v", pads, 2*len(axes), x)
	}
	out := slices.Clone(x)
	for i, a := range axes {
		ax, err := normAxis(a, len(x), false)
		if err != nil {
			return err
		}
		out[ax] += pads[i] + pads[i+len(axes)]
		if out[ax] < 0 {
			return fmt.Errorf("pads %v make dimension %d of %v negative", pads, ax, x)
		}
	}
	c.set(0, out, c.typ(0))
	return nil
}

// pad moves Pad's pads and value attributes to inputs (opset 11).
func (u *upgrader) pad(n *Node) ([]*Node, error) {
	if len(n.Inputs) != 1 {
		return nil, fmt.Errorf("has %d inputs, want 1", len(n.Inputs))
	}
	pads := n.Attr("pads")
	if pads == nil {
		return nil, errors.New("attribute \"pads\" missing")
	}
	n.Inputs = append(n.Inputs, u.constInput(n, "pads", int64Tensor(pads.Ints)))
	if v := n.Attr("value"); v != nil && v.Float != 0 && n.AttrString("mode", "constant") == "constant" {
		n.Inputs = append(n.Inputs, u.constInput(n, "value", floatScalar(v.Float)))
	}
	n.Attributes = without(n.Attributes, "pads", "value")
	return []*Node{n}, nil
}
