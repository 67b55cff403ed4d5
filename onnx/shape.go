package onnx

import (
	"fmt"
	"slices"
	"strings"
)

// Shapes is the result of shape inference: the concrete shape of every tensor of the
// graph, and the value of every tensor that is a constant (initializers, Constant
// nodes, and every integer computation on constants, such as Shape -> Gather ->
// Unsqueeze -> Concat feeding a Reshape).
type Shapes struct {
	Dims   map[string][]int64
	Consts map[string]*Tensor
}

// foldLimit bounds the element count of a computed constant: folding is for shape
// arithmetic and the masks computed from shapes (a Swin transformer's attention masks,
// 150k values), not for precomputing weights (nothing computed from a float initializer
// is folded: see setConst).
const foldLimit = 1 << 20

// InferShapes computes the concrete shape of every tensor in m's main graph for the
// given shapes of its real inputs (those not backed by an initializer). An input whose
// declared shape is fully fixed may be left out of inputs. The rules follow the ONNX
// operator specifications of opsets 7 to 17 (the model's default-domain opset picks the
// version of each rule). An operator it does not know is an error naming the node.
func InferShapes(m *Model, inputs map[string][]int64) (*Shapes, error) {
	in, err := inferShapes(m, inputs)
	if err != nil {
		return nil, err
	}
	return &Shapes{Dims: in.dims, Consts: in.consts}, nil
}

func inferShapes(m *Model, inputs map[string][]int64) (*inferer, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("infer shapes: no graph")
	}
	g := m.Graph
	in := &inferer{
		opset:  m.Opset(""),
		dims:   make(map[string][]int64),
		consts: make(map[string]*Tensor),
		types:  make(map[string]DataType),
		params: make(map[string]bool),
	}
	for _, t := range g.Initializers {
		in.dims[t.Name] = t.Dims
		in.consts[t.Name] = t
		in.types[t.Name] = t.DataType
		in.params[t.Name] = t.DataType == Float
	}
	real := g.RealInputs()
	isReal := make(map[string]bool, len(real))
	for _, v := range real {
		isReal[v.Name] = true
		given, ok := inputs[v.Name]
		shape, err := inputShape(v, given, ok)
		if err != nil {
			return nil, fmt.Errorf("infer shapes: %w", err)
		}
		in.dims[v.Name] = shape
		in.types[v.Name] = v.ElemType
	}
	for name := range inputs {
		if !isReal[name] {
			return nil, fmt.Errorf("infer shapes: %q is not a graph input fed by the caller", name)
		}
	}
	for _, n := range g.Nodes {
		if err := in.node(n); err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
		}
	}
	for _, v := range g.Outputs {
		if _, ok := in.dims[v.Name]; !ok {
			return nil, fmt.Errorf("infer shapes: graph output %q has no shape", v.Name)
		}
	}
	return in, nil
}

// inputShape checks a caller's shape for input v against its declaration, or takes the
// declared shape when it is fully fixed and the caller gave none.
func inputShape(v *ValueInfo, given []int64, ok bool) ([]int64, error) {
	if !ok {
		if !v.HasShape {
			return nil, fmt.Errorf("input %q: no shape given and none declared", v.Name)
		}
		shape := make([]int64, len(v.Shape))
		for i, d := range v.Shape {
			if d.Value <= 0 {
				return nil, fmt.Errorf("input %q: declared shape %s is not fixed: give a concrete shape", v.Name, FormatShape(v.Shape))
			}
			shape[i] = d.Value
		}
		return shape, nil
	}
	for _, d := range given {
		if d < 0 {
			return nil, fmt.Errorf("input %q: shape %v has a negative dimension", v.Name, given)
		}
	}
	if v.HasShape {
		if len(given) != len(v.Shape) {
			return nil, fmt.Errorf("input %q: shape %v has rank %d, the model declares %s", v.Name, given, len(given), FormatShape(v.Shape))
		}
		for i, d := range v.Shape {
			if d.Value > 0 && d.Value != given[i] {
				return nil, fmt.Errorf("input %q: shape %v does not fit the declared %s", v.Name, given, FormatShape(v.Shape))
			}
		}
	}
	return slices.Clone(given), nil
}

// FormatShape writes a declared shape like [N 3 224 224], "?" for unknown dimensions.
func FormatShape(s []Dim) string {
	parts := make([]string, len(s))
	for i, d := range s {
		switch {
		case d.Value > 0:
			parts[i] = fmt.Sprint(d.Value)
		case d.Param != "":
			parts[i] = d.Param
		default:
			parts[i] = "?"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

type inferer struct {
	opset  int64
	dims   map[string][]int64
	consts map[string]*Tensor
	types  map[string]DataType
	// params are the float initializers (see setConst).
	params map[string]bool
}

// nodeCtx is the view of one node during inference.
type nodeCtx struct {
	*inferer
	n *Node
}

// has reports whether optional input i is present.
func (c nodeCtx) has(i int) bool {
	return i < len(c.n.Inputs) && c.n.Inputs[i] != ""
}

// shape returns the shape of input i, which must be present.
func (c nodeCtx) shape(i int) ([]int64, error) {
	if !c.has(i) {
		return nil, fmt.Errorf("input %d is missing", i)
	}
	d, ok := c.dims[c.n.Inputs[i]]
	if !ok {
		return nil, fmt.Errorf("input %q has no known shape", c.n.Inputs[i])
	}
	return d, nil
}

func (c nodeCtx) typ(i int) DataType {
	if !c.has(i) {
		return Undefined
	}
	return c.types[c.n.Inputs[i]]
}

// konst returns the constant value of input i, or nil.
func (c nodeCtx) konst(i int) *Tensor {
	if !c.has(i) {
		return nil
	}
	t := c.consts[c.n.Inputs[i]]
	if t == nil {
		return nil
	}
	// A constant whose values do not fill its dims (a hand-made IR) is not folded.
	n := t.NumElements()
	switch {
	case t.DataType.IsInt() && len(t.Ints) != n,
		t.DataType.IsFloat() && len(t.Floats) != n,
		t.DataType == String && len(t.Strings) != n:
		return nil
	}
	return t
}

// intsInput returns the constant integer values of input i, required by the node.
func (c nodeCtx) intsInput(i int, what string) ([]int64, error) {
	if !c.has(i) {
		return nil, fmt.Errorf("%s input is missing", what)
	}
	t := c.konst(i)
	if t == nil {
		return nil, fmt.Errorf("%s input %q is not a constant", what, c.n.Inputs[i])
	}
	if !t.DataType.IsInt() {
		return nil, fmt.Errorf("%s input %q is %s, want integers", what, c.n.Inputs[i], t.DataType)
	}
	return t.Ints, nil
}

// set records output i's shape and element type.
func (c nodeCtx) set(i int, dims []int64, dt DataType) {
	if i >= len(c.n.Outputs) || c.n.Outputs[i] == "" {
		return
	}
	c.dims[c.n.Outputs[i]] = dims
	c.types[c.n.Outputs[i]] = dt
}

// setConst records output i as a constant. A float tensor computed from a float
// initializer is not one: initializers are the parameters training changes, and a
// gradient must flow through what is computed from them (a Reshape of a weight).
func (c nodeCtx) setConst(i int, t *Tensor) {
	if i >= len(c.n.Outputs) || c.n.Outputs[i] == "" || t == nil {
		return
	}
	if t.DataType == Float {
		for _, in := range c.n.Inputs {
			if c.params[in] {
				c.set(i, t.Dims, Float)
				return
			}
		}
	}
	c.dims[c.n.Outputs[i]] = t.Dims
	c.types[c.n.Outputs[i]] = t.DataType
	c.consts[c.n.Outputs[i]] = t
}

// outputs checks the node has between lo and hi outputs.
func (c nodeCtx) outputs(lo, hi int) error {
	if len(c.n.Outputs) < lo || len(c.n.Outputs) > hi {
		if lo == hi {
			return fmt.Errorf("has %d outputs, want %d", len(c.n.Outputs), lo)
		}
		return fmt.Errorf("has %d outputs, want %d to %d", len(c.n.Outputs), lo, hi)
	}
	return nil
}

func (c nodeCtx) inputs(lo, hi int) error {
	if len(c.n.Inputs) < lo || len(c.n.Inputs) > hi {
		if lo == hi {
			return fmt.Errorf("has %d inputs, want %d", len(c.n.Inputs), lo)
		}
		return fmt.Errorf("has %d inputs, want %d to %d", len(c.n.Inputs), lo, hi)
	}
	for i := 0; i < lo; i++ {
		if c.n.Inputs[i] == "" {
			return fmt.Errorf("input %d is missing", i)
		}
	}
	return nil
}

// axis normalizes an axis attribute against rank r: valid values are [-r, r-1], or
// [-r, r] with inclusive set (Flatten, Unsqueeze over the output rank).
func normAxis(a int64, r int, inclusive bool) (int, error) {
	hi := int64(r) - 1
	if inclusive {
		hi = int64(r)
	}
	if a < -int64(r) || a > hi {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", a, r)
	}
	if a < 0 {
		a += int64(r)
	}
	return int(a), nil
}

// broadcastShapes applies numpy (multidirectional) broadcasting.
func broadcastShapes(shapes ...[]int64) ([]int64, error) {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make([]int64, r)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			o := out[off+i]
			switch {
			case d == o || d == 1:
			case o == 1:
				out[off+i] = d
			default:
				parts := make([]string, len(shapes))
				for k, s := range shapes {
					parts[k] = fmt.Sprint(s)
				}
				return nil, fmt.Errorf("shapes %s do not broadcast: dimension %d is %d in one and %d in another",
					strings.Join(parts, " and "), off+i-r, o, d)
			}
		}
	}
	return out, nil
}

// broadcastIndex maps every flat index of shape out to the flat index of the element
// of a tensor of shape in that broadcasts to it.
func broadcastIndex(out, in []int64) []int {
	n, _ := countElements(out)
	idx := make([]int, n)
	r := len(out)
	off := r - len(in)
	// stride of each output axis in the input, 0 where the input broadcasts.
	strides := make([]int, r)
	s := 1
	for i := len(in) - 1; i >= 0; i-- {
		if in[i] != 1 {
			strides[off+i] = s
		}
		s *= int(in[i])
	}
	pos := make([]int64, r)
	for k := 0; k < n; k++ {
		v := 0
		for i := 0; i < r; i++ {
			v += int(pos[i]) * strides[i]
		}
		idx[k] = v
		for i := r - 1; i >= 0; i-- {
			pos[i]++
			if pos[i] < out[i] {
				break
			}
			pos[i] = 0
		}
	}
	return idx
}

// stridesOf is the row-major strides of shape s.
func stridesOf(s []int64) []int {
	st := make([]int, len(s))
	v := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = v
		v *= int(s[i])
	}
	return st
}

// incr advances a multi-index pos within shape s in row-major order.
func incr(pos, s []int64) {
	for i := len(s) - 1; i >= 0; i-- {
		pos[i]++
		if pos[i] < s[i] {
			return
		}
		pos[i] = 0
	}
}

// movable returns constant input i for the folding of an op that only moves values
// (Transpose, Slice, Gather, Concat, Split, Tile), which is written over integer
// tensors: an integer constant as it is, or, for a float constant not read from a
// parameter, an Int64 tensor of its element positions, with back turning a folded
// result of positions into the float values. nil when input i is neither.
func (c nodeCtx) movable(i int) (t *Tensor, back func(*Tensor) *Tensor) {
	t = c.konst(i)
	switch {
	case t == nil:
		return nil, nil
	case t.DataType.IsInt():
		return t, func(r *Tensor) *Tensor { return r }
	case t.DataType != Float || c.params[c.n.Inputs[i]] || len(t.Floats) > foldLimit:
		return nil, nil
	}
	values := t.Floats
	pos := &Tensor{DataType: Int64, Dims: t.Dims, Ints: make([]int64, len(values))}
	for k := range pos.Ints {
		pos.Ints[k] = int64(k)
	}
	return pos, func(r *Tensor) *Tensor {
		out := &Tensor{DataType: Float, Dims: r.Dims, Floats: make([]float32, len(r.Ints))}
		for k, p := range r.Ints {
			out.Floats[k] = values[p]
		}
		return out
	}
}
