package onnx

import (
	"fmt"
	"slices"
)

// The reduction family: Reduce* over a set of axes, keeping them as size-1 dimensions
// (keepdims, the default) or dropping them. ReduceSum takes its axes as an input from
// opset 13 (the others from 18, past the opsets this package upgrades to). The backend's
// kernels are in backend/ops_reduce.go.

func init() {
	for name, since := range map[string][]int64{
		"ReduceMean": v(1, 11, 13), "ReduceMax": v(1, 11, 12, 13), "ReduceMin": v(1, 11, 12, 13),
		"ReduceProd": v(1, 11, 13), "ReduceL1": v(1, 11, 13), "ReduceL2": v(1, 11, 13),
		"ReduceLogSum": v(1, 11, 13), "ReduceLogSumExp": v(1, 11, 13), "ReduceSumSquare": v(1, 11, 13),
	} {
		define(&OpSchema{name: name, since: since, diff: onlyData, infer: nodeCtx.reduce})
	}
	define(&OpSchema{name: "ReduceSum", since: v(1, 11, 13), diff: onlyData, infer: nodeCtx.reduce,
		upgrade: upgradeAt(13, (*upgrader).reduceAxesInput)})
}

// ReduceAxes returns the axes a Reduce* node reduces for an input of rank r, normalized
// and sorted, from its axes attribute or (ReduceSum from opset 13) its constant axes
// input axesInput (nil when the node has none). No axes means all of them, unless
// noop_with_empty_axes is set, when it means none (the node is the identity).
func ReduceAxes(n *Node, opset int64, r int, axesInput *Tensor) ([]int, error) {
	var axes []int64
	fromInput := n.OpType == "ReduceSum" && opset >= 13
	if fromInput {
		if len(n.Inputs) > 1 && n.Inputs[1] != "" {
			if axesInput == nil || !axesInput.DataType.IsInt() {
				return nil, fmt.Errorf("the axes input %q is not an integer constant", n.Inputs[1])
			}
			axes = axesInput.Ints
		}
	} else {
		axes = n.AttrInts("axes", nil)
	}
	if len(axes) == 0 {
		if fromInput && n.AttrInt("noop_with_empty_axes", 0) != 0 {
			return []int{}, nil
		}
		all := make([]int, r)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	out := make([]int, 0, len(axes))
	for _, a := range axes {
		ax, err := normAxis(a, r, false)
		if err != nil {
			return nil, fmt.Errorf("axes %v: %w", axes, err)
		}
		if slices.Contains(out, ax) {
			return nil, fmt.Errorf("axes %v repeat axis %d", axes, ax)
		}
		out = append(out, ax)
	}
	slices.Sort(out)
	return out, nil
}

func (c nodeCtx) reduce() error {
	hi := 1
	if c.n.OpType == "ReduceSum" && c.opset >= 13 {
		hi = 2
	}
	if err := c.inputs(1, hi); err != nil {
		return err
	}
	if err := c.outputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axes, err := ReduceAxes(c.n, c.opset, len(x), c.konst(1))
	if err != nil {
		return err
	}
	keep := c.n.AttrInt("keepdims", 1) != 0
	out := []int64{}
	for i, d := range x {
		switch {
		case !slices.Contains(axes, i):
			out = append(out, d)
		case keep:
			out = append(out, 1)
		}
	}
	c.set(0, out, c.typ(0))
	return nil
}

// reduceAxesInput moves ReduceSum's axes attribute to an input (opset 13).
func (u *upgrader) reduceAxesInput(n *Node) ([]*Node, error) {
	if len(n.Inputs) != 1 {
		return nil, fmt.Errorf("has %d inputs, want 1", len(n.Inputs))
	}
	if a := n.Attr("axes"); a != nil && len(a.Ints) > 0 {
		n.Inputs = append(n.Inputs, u.constInput(n, "axes", int64Tensor(a.Ints)))
	}
	n.Attributes = without(n.Attributes, "axes")
	return []*Node{n}, nil
}
