package onnx

import (
	"fmt"
	"slices"
)

// The normalization family: BatchNormalization and LayerNormalization. The backend's
// kernels are in backend/ops_norm.go.

func init() {
	define(&OpSchema{name: "BatchNormalization", since: v(1, 6, 7, 9, 14, 15), diff: []int{0, 1, 2},
		infer: nodeCtx.batchNorm, upgrade: (*upgrader).batchNorm})
	define(&OpSchema{name: "LayerNormalization", since: v(17), infer: nodeCtx.layerNorm})
}

func (c nodeCtx) batchNorm() error {
	if err := c.inputs(5, 5); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	if len(x) < 2 {
		return fmt.Errorf("X is %v, want (N, C, ...)", x)
	}
	names := []string{"scale", "B", "mean", "var"}
	for i := 1; i < 5; i++ {
		s, err := c.shape(i)
		if err != nil {
			return err
		}
		if len(s) != 1 || s[0] != x[1] {
			return fmt.Errorf("X is %v with %d channels, %s is %v", x, x[1], names[i-1], s)
		}
	}
	max := 5
	if c.opset >= 14 {
		max = 3
	}
	if err := c.outputs(1, max); err != nil {
		return err
	}
	c.set(0, x, c.typ(0))
	for i := 1; i < len(c.n.Outputs); i++ {
		c.set(i, []int64{x[1]}, c.typ(1))
	}
	return nil
}

// batchNorm drops spatial (opset 9), consumed_inputs and is_test, and the unused
// training-mode outputs (opset 14).
func (u *upgrader) batchNorm(n *Node) ([]*Node, error) {
	if a := n.Attr("spatial"); a != nil && a.Int != 1 {
		return nil, fmt.Errorf("spatial=%d (statistics per activation, not per channel) has no equivalent from opset 9", a.Int)
	}
	n.Attributes = without(n.Attributes, "spatial", "consumed_inputs", "is_test")
	if len(n.Outputs) > 1 {
		for _, o := range n.Outputs[1:] {
			if o != "" && u.used[o] {
				if u.crosses(14) {
					return nil, fmt.Errorf("the training-mode output %q is used: from opset 14 an inference BatchNormalization has one output", o)
				}
				return []*Node{n}, nil
			}
		}
		for _, o := range n.Outputs[1:] {
			u.stale[o] = true
		}
		n.Outputs = n.Outputs[:1]
	}
	return []*Node{n}, nil
}

// LayerNormAxis returns the first normalized axis of a LayerNormalization node for an
// input of rank r: the axis attribute (default -1), normalized.
func LayerNormAxis(n *Node, r int) (int, error) {
	return normAxis(n.AttrInt("axis", -1), r, false)
}

func (c nodeCtx) layerNorm() error {
	if err := c.inputs(2, 3); err != nil {
		return err
	}
	if err := c.outputs(1, 3); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axis, err := LayerNormAxis(c.n, len(x))
	if err != nil {
		return err
	}
	norm := x[axis:]
	for i, what := range []string{"Scale", "B"} {
		if !c.has(i + 1) {
			continue
		}
		s, err := c.shape(i + 1)
		if err != nil {
			return err
		}
		if b, err := broadcastShapes(norm, s); err != nil || !slices.Equal(b, norm) {
			return fmt.Errorf("%s is %v, does not broadcast to the normalized shape %v of X %v", what, s, norm, x)
		}
	}
	c.set(0, x, c.typ(0))
	stats := slices.Clone(x)
	for i := axis; i < len(stats); i++ {
		stats[i] = 1
	}
	stash := Float
	if st := c.n.AttrInt("stash_type", 1); st != 1 {
		stash = DataType(st)
	}
	c.set(1, stats, stash)
	c.set(2, slices.Clone(stats), stash)
	return nil
}
