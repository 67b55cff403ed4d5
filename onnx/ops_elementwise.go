package onnx

import (
	"fmt"
	"math"
	"slices"
)

// The element-wise family: one-input functions, Clip, and the operators that broadcast
// their inputs against each other (arithmetic, comparisons, logic, Where, PRelu). The
// backend's kernels are in backend/ops_elementwise.go.

func init() {
	unary := map[string][]int64{
		"Relu": v(1, 6, 13, 14), "Sigmoid": v(1, 6, 13), "Tanh": v(1, 6, 13), "LeakyRelu": v(1, 6, 16),
		"Elu": v(1, 6), "Selu": v(1, 6), "HardSigmoid": v(1, 6), "Softplus": v(1), "Softsign": v(1),
		"HardSwish": v(14), "Exp": v(1, 6, 13), "Log": v(1, 6, 13), "Sqrt": v(1, 6, 13),
		"Reciprocal": v(1, 6, 13), "Erf": v(9, 13), "Abs": v(1, 6, 13), "Sin": v(7), "Cos": v(7),
		"ThresholdedRelu": v(10), "Celu": v(12), "LRN": v(1, 13), "Shrink": v(9), "Mish": v(18),
		"Neg": v(1, 6, 13), "Gelu": v(20),
	}
	for name, since := range unary {
		define(&OpSchema{name: name, since: since, infer: nodeCtx.unary})
	}
	// Piecewise constant: the gradient is zero wherever it is defined.
	steps := map[string][]int64{"Floor": v(1, 6, 13), "Ceil": v(1, 6, 13), "Round": v(11), "Sign": v(9, 13), "Not": v(1)}
	for name, since := range steps {
		define(&OpSchema{name: name, since: since, noDiff: true, infer: nodeCtx.unary})
	}
	define(&OpSchema{name: "Clip", since: v(1, 6, 11, 12, 13), diff: onlyData, infer: nodeCtx.clip,
		upgrade: upgradeAt(11, (*upgrader).clip)})
	arithmetic := map[string][]int64{
		"Add": v(1, 6, 7, 13, 14), "Sub": v(1, 6, 7, 13, 14), "Mul": v(1, 6, 7, 13, 14),
		"Div": v(1, 6, 7, 13, 14), "Pow": v(1, 7, 12, 13, 15),
		"Max": v(1, 6, 8, 12, 13), "Min": v(1, 6, 8, 12, 13), "Sum": v(1, 6, 8, 13),
		"Mean": v(1, 6, 8, 13), "PRelu": v(1, 6, 7, 9, 16),
	}
	for name, since := range arithmetic {
		define(&OpSchema{name: name, since: since, infer: nodeCtx.broadcast})
	}
	logic := map[string][]int64{
		"Equal": v(1, 7, 11, 13), "Less": v(1, 7, 9, 13), "Greater": v(1, 7, 9, 13),
		"LessOrEqual": v(12, 16), "GreaterOrEqual": v(12, 16), "And": v(1, 7), "Or": v(1, 7), "Xor": v(1, 7),
	}
	for name, since := range logic {
		define(&OpSchema{name: name, since: since, noDiff: true, infer: nodeCtx.broadcast})
	}
	define(&OpSchema{name: "Mod", since: v(10, 13), diff: onlyData, infer: nodeCtx.broadcast})
	define(&OpSchema{name: "Where", since: v(9, 16), diff: []int{1, 2}, infer: nodeCtx.broadcast})
}

func (c nodeCtx) unary() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	if err := c.outputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	dt := c.typ(0)
	if op := c.n.OpType; op == "Neg" || op == "Abs" || op == "Not" {
		if t := c.konst(0); t != nil && t.DataType.IsInt() && len(t.Ints) <= foldLimit {
			out := &Tensor{DataType: t.DataType, Dims: t.Dims, Ints: make([]int64, len(t.Ints))}
			for i, v := range t.Ints {
				switch {
				case op == "Not":
					v = 1 - min(max(v, 0), 1)
				case op == "Neg" || v < 0:
					v = -v
				}
				out.Ints[i] = v
			}
			c.setConst(0, out)
			return nil
		}
	}
	c.set(0, x, dt)
	return nil
}

func (c nodeCtx) clip() error {
	if err := c.inputs(1, 3); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	for i := 1; i < 3; i++ {
		if c.has(i) {
			s, err := c.shape(i)
			if err != nil {
				return err
			}
			if len(s) != 0 && !(len(s) == 1 && s[0] == 1) {
				return fmt.Errorf("min/max input %q is %v, want a scalar", c.n.Inputs[i], s)
			}
		}
	}
	if t := c.konst(0); t != nil && t.DataType.IsInt() && len(t.Ints) <= foldLimit {
		// Integer data with constant bounds (or none): fold.
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		for i, bound := range []*int64{&lo, &hi} {
			if !c.has(i + 1) {
				continue
			}
			k := c.konst(i + 1)
			if k == nil || !k.DataType.IsInt() || len(k.Ints) != 1 {
				c.set(0, x, c.typ(0))
				return nil
			}
			*bound = k.Ints[0]
		}
		out := &Tensor{DataType: t.DataType, Dims: t.Dims, Ints: make([]int64, len(t.Ints))}
		for i, v := range t.Ints {
			out.Ints[i] = min(max(v, lo), hi)
		}
		c.setConst(0, out)
		return nil
	}
	c.set(0, x, c.typ(0))
	return nil
}

func (c nodeCtx) broadcast() error {
	op := c.n.OpType
	lo, hi := 2, 2
	switch op {
	case "Max", "Min", "Sum", "Mean":
		lo, hi = 1, 1<<20
	case "Where":
		lo, hi = 3, 3
	}
	if err := c.inputs(lo, hi); err != nil {
		return err
	}
	shapes := make([][]int64, len(c.n.Inputs))
	for i := range c.n.Inputs {
		s, err := c.shape(i)
		if err != nil {
			return err
		}
		shapes[i] = s
	}
	var out []int64
	var err error
	if op == "PRelu" {
		// slope broadcasts to X (unidirectionally).
		out, err = broadcastShapes(shapes...)
		if err == nil && !slices.Equal(out, shapes[0]) {
			err = fmt.Errorf("slope %v does not broadcast to X %v", shapes[1], shapes[0])
		}
	} else {
		out, err = broadcastShapes(shapes...)
	}
	if err != nil {
		return err
	}
	dt := c.typ(0)
	switch op {
	case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
		dt = Bool
	case "Where":
		dt = c.typ(1)
	}
	if t := c.foldBroadcast(op, out, dt); t != nil {
		c.setConst(0, t)
		return nil
	}
	c.set(0, out, dt)
	return nil
}

// foldBroadcast evaluates an elementwise op whose inputs are all constants: integers,
// or floats (computed in float32, as a runtime would; setConst keeps those computed
// from parameters from being folded).
func (c nodeCtx) foldBroadcast(op string, out []int64, dt DataType) *Tensor {
	switch op {
	case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Equal", "Less", "Greater", "Where":
	default:
		return nil
	}
	ins := make([]*Tensor, len(c.n.Inputs))
	floats := false
	for i := range ins {
		t := c.konst(i)
		if t == nil || !(t.DataType.IsInt() || t.DataType == Float) || t.NumElements() > foldLimit {
			return nil
		}
		floats = floats || (t.DataType == Float && !(op == "Where" && i == 0))
		ins[i] = t
	}
	n, err := countElements(out)
	if err != nil || n > foldLimit {
		return nil
	}
	if floats {
		return foldFloatBroadcast(op, out, dt, ins, n)
	}
	idx := make([][]int, len(ins))
	for i, t := range ins {
		idx[i] = broadcastIndex(out, t.Dims)
	}
	res := &Tensor{DataType: dt, Dims: out, Ints: make([]int64, n)}
	for k := 0; k < n; k++ {
		a := ins[0].Ints[idx[0][k]]
		switch op {
		case "Where":
			if a != 0 {
				res.Ints[k] = ins[1].Ints[idx[1][k]]
			} else {
				res.Ints[k] = ins[2].Ints[idx[2][k]]
			}
			continue
		}
		for i := 1; i < len(ins); i++ {
			b := ins[i].Ints[idx[i][k]]
			switch op {
			case "Add", "Sum":
				a += b
			case "Sub":
				a -= b
			case "Mul":
				a *= b
			case "Div", "Mod":
				if b == 0 {
					return nil
				}
				if op == "Div" {
					a /= b
				} else if c.n.AttrInt("fmod", 0) != 0 {
					a %= b
				} else {
					a = ((a % b) + b) % b
				}
			case "Pow":
				if b < 0 {
					return nil
				}
				p := int64(1)
				for ; b > 0; b-- {
					p *= a
				}
				a = p
			case "Max":
				a = max(a, b)
			case "Min":
				a = min(a, b)
			case "Equal", "Less", "Greater":
				r := (op == "Equal" && a == b) || (op == "Less" && a < b) || (op == "Greater" && a > b)
				a = 0
				if r {
					a = 1
				}
			}
		}
		if dt != Bool {
			a = wrapInt(a, dt)
		}
		res.Ints[k] = a
	}
	return res
}

// clip moves Clip's min and max attributes to inputs (opset 11).
func (u *upgrader) clip(n *Node) ([]*Node, error) {
	if len(n.Inputs) != 1 {
		return nil, fmt.Errorf("has %d inputs, want 1", len(n.Inputs))
	}
	in := []string{n.Inputs[0], "", ""}
	for i, name := range []string{"min", "max"} {
		if a := n.Attr(name); a != nil {
			in[i+1] = u.constInput(n, name, floatScalar(a.Float))
		}
	}
	n.Inputs = trimInputs(in)
	n.Attributes = without(n.Attributes, "min", "max")
	return []*Node{n}, nil
}

// foldFloatBroadcast is foldBroadcast with float inputs (a Where's condition stays an
// integer tensor): Add, Sub, Mul, Div, Max, Min, Sum, the comparisons and Where.
func foldFloatBroadcast(op string, out []int64, dt DataType, ins []*Tensor, n int) *Tensor {
	for i, t := range ins {
		if t.DataType != Float && !(op == "Where" && i == 0) {
			return nil // mixed integer and float operands
		}
	}
	idx := make([][]int, len(ins))
	for i, t := range ins {
		idx[i] = broadcastIndex(out, t.Dims)
	}
	res := &Tensor{DataType: dt, Dims: out}
	switch op {
	case "Equal", "Less", "Greater":
		res.Ints = make([]int64, n)
	case "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Where":
		res.Floats = make([]float32, n)
	default:
		return nil
	}
	for k := 0; k < n; k++ {
		if op == "Where" {
			if ins[0].Ints[idx[0][k]] != 0 {
				res.Floats[k] = ins[1].Floats[idx[1][k]]
			} else {
				res.Floats[k] = ins[2].Floats[idx[2][k]]
			}
			continue
		}
		a := ins[0].Floats[idx[0][k]]
		for i := 1; i < len(ins); i++ {
			b := ins[i].Floats[idx[i][k]]
			switch op {
			case "Add", "Sum":
				a += b
			case "Sub":
				a -= b
			case "Mul":
				a *= b
			case "Div":
				a /= b
			case "Max":
				a = max(a, b)
			case "Min":
				a = min(a, b)
			case "Equal", "Less", "Greater":
				r := (op == "Equal" && a == b) || (op == "Less" && a < b) || (op == "Greater" && a > b)
				res.Ints[k] = 0
				if r {
					res.Ints[k] = 1
				}
			}
		}
		if res.Floats != nil {
			res.Floats[k] = a
		}
	}
	return res
}
