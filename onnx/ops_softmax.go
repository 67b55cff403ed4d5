package onnx

import (
	"fmt"
)

// The softmax family: Softmax, LogSoftmax and Hardmax, whose axis semantics changed at
// opset 13. The backend's kernels are in backend/ops_softmax.go.

func init() {
	for name, since := range map[string][]int64{"Softmax": v(1, 11, 13), "LogSoftmax": v(1, 11, 13), "Hardmax": v(1, 11, 13)} {
		define(&OpSchema{name: name, since: since, infer: nodeCtx.softmax, upgrade: upgradeAt(13, (*upgrader).softmax)})
	}
}

func (c nodeCtx) softmax() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	def := int64(1)
	if c.opset >= 13 {
		def = -1
	}
	if _, err := normAxis(c.n.AttrInt("axis", def), len(x), false); err != nil {
		return err
	}
	c.set(0, x, c.typ(0))
	return nil
}

// softmax rewrites Softmax or LogSoftmax from the coerce-to-matrix definition of opsets
// 1 and 11 to the single-axis one of opset 13.
func (u *upgrader) softmax(n *Node) ([]*Node, error) {
	if len(n.Inputs) != 1 || len(n.Outputs) != 1 || n.Inputs[0] == "" {
		return nil, fmt.Errorf("has %d inputs and %d outputs, want 1 and 1", len(n.Inputs), len(n.Outputs))
	}
	axis := n.AttrInt("axis", 1)
	x := n.Inputs[0]
	if r := u.rank(x); r >= 0 {
		a, err := normAxis(axis, r, false)
		if err != nil {
			return nil, err
		}
		if a == r-1 {
			// One axis, the last: both definitions agree. (Without the attribute,
			// axis 1 is the last only for rank 2, where the new default -1 is 1 too.)
			return []*Node{n}, nil
		}
	}
	b := base(n)
	shape := &Node{Name: u.fresh(b + "_shape"), OpType: "Shape", Inputs: []string{x}, Outputs: []string{u.fresh(b + "_input_shape")}}
	flat := &Node{
		Name: u.fresh(b + "_flatten"), OpType: "Flatten", Inputs: []string{x}, Outputs: []string{u.fresh(b + "_flat")},
		Attributes: []*Attribute{{Name: "axis", Type: AttrInt, Int: axis}},
	}
	y := n.Outputs[0]
	soft := n
	soft.Inputs = []string{flat.Outputs[0]}
	soft.Outputs = []string{u.fresh(b + "_2d")}
	soft.Attributes = append(without(n.Attributes, "axis"), &Attribute{Name: "axis", Type: AttrInt, Int: 1})
	reshape := &Node{
		Name: u.fresh(b + "_reshape"), OpType: "Reshape",
		Inputs: []string{soft.Outputs[0], shape.Outputs[0]}, Outputs: []string{y},
	}
	return []*Node{shape, flat, soft, reshape}, nil
}
