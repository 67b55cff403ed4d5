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
// arithmetic, not for precomputing weights.
const foldLimit = 1 << 16

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
	}
	for _, t := range g.Initializers {
		in.dims[t.Name] = t.Dims
		in.consts[t.Name] = t
		in.types[t.Name] = t.DataType
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

// setConst records output i as a constant.
func (c nodeCtx) setConst(i int, t *Tensor) {
	if i >= len(c.n.Outputs) || c.n.Outputs[i] == "" || t == nil {
		return
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

// node infers the outputs of one node.
func (in *inferer) node(n *Node) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return fmt.Errorf("operator %s of domain %q is not supported by shape inference", n.OpType, n.Domain)
	}
	c := nodeCtx{in, n}
	switch n.OpType {
	case "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "Softplus",
		"Softsign", "HardSwish", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil",
		"Round", "Erf", "Abs", "Sin", "Cos", "Sign", "Not", "ThresholdedRelu", "Celu",
		"LRN", "Shrink", "Mish", "Neg":
		return c.unary()
	case "Softmax", "LogSoftmax", "Hardmax":
		return c.softmax()
	case "Identity":
		return c.identity()
	case "Clip":
		return c.clip()
	case "Dropout":
		return c.dropout()
	case "BatchNormalization":
		return c.batchNorm()
	case "Cast":
		return c.cast()
	case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean",
		"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
		"Where", "PRelu":
		return c.broadcast()
	case "Conv":
		return c.conv()
	case "MaxPool", "AveragePool", "LpPool":
		return c.pool()
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		return c.globalPool()
	case "Flatten":
		return c.flatten()
	case "Reshape":
		return c.reshape()
	case "Gemm":
		return c.gemm()
	case "MatMul":
		return c.matmul()
	case "Transpose":
		return c.transpose()
	case "Constant":
		return c.constant()
	case "ConstantOfShape":
		return c.constantOfShape()
	case "Shape":
		return c.shapeOp()
	case "Size":
		return c.size()
	case "Gather":
		return c.gather()
	case "Unsqueeze":
		return c.unsqueeze()
	case "Squeeze":
		return c.squeeze()
	case "Concat":
		return c.concat()
	case "Slice":
		return c.slice()
	case "Pad":
		return c.pad()
	case "Expand":
		return c.expand()
	case "Range":
		return c.rangeOp()
	}
	return fmt.Errorf("operator %s is not supported by shape inference", n.OpType)
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
	if c.n.OpType == "Neg" || c.n.OpType == "Abs" {
		if t := c.konst(0); t != nil && t.DataType.IsInt() && len(t.Ints) <= foldLimit {
			out := &Tensor{DataType: t.DataType, Dims: t.Dims, Ints: make([]int64, len(t.Ints))}
			for i, v := range t.Ints {
				if c.n.OpType == "Neg" || v < 0 {
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

func (c nodeCtx) identity() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	if t := c.konst(0); t != nil {
		c.setConst(0, t)
		return nil
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	c.set(0, x, c.typ(0))
	return nil
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
	c.set(0, x, c.typ(0))
	return nil
}

func (c nodeCtx) dropout() error {
	if err := c.inputs(1, 3); err != nil {
		return err
	}
	if err := c.outputs(1, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	c.set(0, x, c.typ(0))
	c.set(1, x, Bool)
	return nil
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

func (c nodeCtx) cast() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	a := c.n.Attr("to")
	if a == nil || a.Type != AttrInt {
		return fmt.Errorf("attribute \"to\" missing")
	}
	to := DataType(a.Int)
	if to.String() == fmt.Sprintf("DataType(%d)", a.Int) || to == Undefined {
		return fmt.Errorf("cast to unknown data type %d", a.Int)
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	if t := c.konst(0); t != nil && (t.DataType.IsInt() || to.IsInt()) && t.NumElements() <= foldLimit {
		if out := castTensor(t, to); out != nil {
			c.setConst(0, out)
			return nil
		}
	}
	c.set(0, x, to)
	return nil
}

// castTensor converts a constant to type to, or returns nil when it cannot.
func castTensor(t *Tensor, to DataType) *Tensor {
	out := &Tensor{DataType: to, Dims: t.Dims}
	switch {
	case to.IsInt() && t.DataType.IsInt():
		out.Ints = make([]int64, len(t.Ints))
		for i, v := range t.Ints {
			out.Ints[i] = wrapInt(v, to)
		}
	case to.IsInt() && t.DataType.IsFloat():
		out.Ints = make([]int64, len(t.Floats))
		for i, v := range t.Floats {
			if to == Bool {
				if v != 0 {
					out.Ints[i] = 1
				}
				continue
			}
			out.Ints[i] = wrapInt(int64(v), to)
		}
	case to.IsFloat() && t.DataType.IsInt():
		out.DataType = Float
		out.Floats = make([]float32, len(t.Ints))
		for i, v := range t.Ints {
			out.Floats[i] = float32(v)
		}
	default:
		return nil
	}
	return out
}

// wrapInt cuts v to the range of integer type t, as a C cast would.
func wrapInt(v int64, t DataType) int64 {
	switch t {
	case Int8:
		return int64(int8(v))
	case Uint8:
		return int64(uint8(v))
	case Int16:
		return int64(int16(v))
	case Uint16:
		return int64(uint16(v))
	case Int32:
		return int64(int32(v))
	case Uint32:
		return int64(uint32(v))
	case Bool:
		if v != 0 {
			return 1
		}
		return 0
	}
	return v
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

// foldBroadcast evaluates an elementwise op whose inputs are all integer constants.
func (c nodeCtx) foldBroadcast(op string, out []int64, dt DataType) *Tensor {
	switch op {
	case "Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Sum", "Equal", "Less", "Greater", "Where":
	default:
		return nil
	}
	ins := make([]*Tensor, len(c.n.Inputs))
	for i := range ins {
		t := c.konst(i)
		if t == nil || !t.DataType.IsInt() || len(t.Ints) > foldLimit {
			return nil
		}
		ins[i] = t
	}
	n, err := countElements(out)
	if err != nil || n > foldLimit {
		return nil
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

func (c nodeCtx) flatten() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axis, err := normAxis(c.n.AttrInt("axis", 1), len(x), true)
	if err != nil {
		return err
	}
	a, b := int64(1), int64(1)
	for i, d := range x {
		if i < axis {
			a *= d
		} else {
			b *= d
		}
	}
	out := []int64{a, b}
	if t := c.konst(0); t != nil {
		c.setConst(0, reshaped(t, out))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

// reshaped is t with new dims, sharing its values.
func reshaped(t *Tensor, dims []int64) *Tensor {
	return &Tensor{DataType: t.DataType, Dims: dims, Floats: t.Floats, Ints: t.Ints, Strings: t.Strings}
}

func (c nodeCtx) reshape() error {
	if err := c.inputs(2, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	target, err := c.intsInput(1, "shape")
	if err != nil {
		return err
	}
	allowZero := c.opset >= 14 && c.n.AttrInt("allowzero", 0) != 0
	out, err := reshapeDims(x, target, allowZero)
	if err != nil {
		return err
	}
	if t := c.konst(0); t != nil {
		c.setConst(0, reshaped(t, out))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

// reshapeDims resolves Reshape's target shape (0 copies the input dimension unless
// allowZero, -1 is inferred) for an input of shape x.
func reshapeDims(x, target []int64, allowZero bool) ([]int64, error) {
	total, err := countElements(x)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(target))
	infer := -1
	known := int64(1)
	for i, d := range target {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("target shape %v has more than one -1", target)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(x) {
				return nil, fmt.Errorf("target shape %v copies dimension %d, the input %v has rank %d", target, i, x, len(x))
			}
			d = x[i]
		case d < 0:
			return nil, fmt.Errorf("target shape %v has a negative dimension", target)
		}
		out[i] = d
		known *= d
		if known > maxElements {
			return nil, fmt.Errorf("target shape %v is too large", target)
		}
	}
	if infer >= 0 {
		if known == 0 || int64(total)%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", x, total, target)
		}
		out[infer] = int64(total) / known
	} else if known != int64(total) {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v (%d elements)", x, total, out, known)
	}
	return out, nil
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
	if t := c.konst(0); t != nil && t.DataType.IsInt() && len(t.Ints) <= foldLimit {
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
		c.setConst(0, res)
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
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

func (c nodeCtx) constant() error {
	if err := c.inputs(0, 0); err != nil {
		return err
	}
	if err := c.outputs(1, 1); err != nil {
		return err
	}
	if len(c.n.Attributes) != 1 {
		return fmt.Errorf("has %d attributes, want exactly one value", len(c.n.Attributes))
	}
	a := c.n.Attributes[0]
	var t *Tensor
	switch {
	case a.Name == "value" && a.Type == AttrTensor && a.Tensor != nil:
		t = a.Tensor
	case a.Name == "value_float" && a.Type == AttrFloat:
		t = &Tensor{DataType: Float, Dims: []int64{}, Floats: []float32{a.Float}}
	case a.Name == "value_floats" && a.Type == AttrFloats:
		t = &Tensor{DataType: Float, Dims: []int64{int64(len(a.Floats))}, Floats: a.Floats}
	case a.Name == "value_int" && a.Type == AttrInt:
		t = &Tensor{DataType: Int64, Dims: []int64{}, Ints: []int64{a.Int}}
	case a.Name == "value_ints" && a.Type == AttrInts:
		t = &Tensor{DataType: Int64, Dims: []int64{int64(len(a.Ints))}, Ints: a.Ints}
	case a.Name == "value_string" && a.Type == AttrString:
		t = &Tensor{DataType: String, Dims: []int64{}, Strings: []string{a.String}}
	case a.Name == "value_strings" && a.Type == AttrStrings:
		t = &Tensor{DataType: String, Dims: []int64{int64(len(a.Strings))}, Strings: a.Strings}
	default:
		return fmt.Errorf("attribute %q (%s) is not a supported constant value", a.Name, attrTypeName(a.Type))
	}
	c.setConst(0, t)
	return nil
}

func attrTypeName(t AttrType) string {
	names := [...]string{"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS", "STRINGS", "TENSORS", "GRAPHS"}
	if int(t) >= 0 && int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("AttrType(%d)", int(t))
}

func (c nodeCtx) constantOfShape() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	shape, err := c.intsInput(0, "shape")
	if err != nil {
		return err
	}
	out := slices.Clone(shape)
	n, err := countElements(out)
	if err != nil {
		return err
	}
	val := &Tensor{DataType: Float, Floats: []float32{0}}
	if a := c.n.Attr("value"); a != nil && a.Type == AttrTensor && a.Tensor != nil {
		val = a.Tensor
		if val.NumElements() != 1 {
			return fmt.Errorf("value attribute has %d elements, want 1", val.NumElements())
		}
	}
	if val.DataType.IsInt() && len(val.Ints) == 1 && n <= foldLimit {
		res := &Tensor{DataType: val.DataType, Dims: out, Ints: make([]int64, n)}
		for i := range res.Ints {
			res.Ints[i] = val.Ints[0]
		}
		c.setConst(0, res)
		return nil
	}
	c.set(0, out, val.DataType)
	return nil
}

func (c nodeCtx) shapeOp() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	r := int64(len(x))
	start, end := int64(0), r
	if c.opset >= 15 {
		clamp := func(v int64) int64 {
			if v < 0 {
				v += r
			}
			return min(max(v, 0), r)
		}
		start = clamp(c.n.AttrInt("start", 0))
		end = clamp(c.n.AttrInt("end", r))
	}
	vals := []int64{}
	if start < end {
		vals = slices.Clone(x[start:end])
	}
	c.setConst(0, &Tensor{DataType: Int64, Dims: []int64{int64(len(vals))}, Ints: vals})
	return nil
}

func (c nodeCtx) size() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	n, err := countElements(x)
	if err != nil {
		return err
	}
	c.setConst(0, &Tensor{DataType: Int64, Dims: []int64{}, Ints: []int64{int64(n)}})
	return nil
}

func (c nodeCtx) gather() error {
	if err := c.inputs(2, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	ind, err := c.shape(1)
	if err != nil {
		return err
	}
	if len(x) == 0 {
		return fmt.Errorf("data is a scalar")
	}
	axis, err := normAxis(c.n.AttrInt("axis", 0), len(x), false)
	if err != nil {
		return err
	}
	out := append(append(slices.Clone(x[:axis]), ind...), x[axis+1:]...)
	it := c.konst(1)
	if it != nil && it.DataType.IsInt() {
		for _, v := range it.Ints {
			if v < -x[axis] || v >= x[axis] {
				return fmt.Errorf("index %d is out of range for axis %d of size %d", v, axis, x[axis])
			}
		}
	}
	t := c.konst(0)
	if t != nil && it != nil && t.DataType.IsInt() && it.DataType.IsInt() {
		n, err := countElements(out)
		if err == nil && n <= foldLimit {
			outer, inner := 1, 1
			for _, d := range x[:axis] {
				outer *= int(d)
			}
			for _, d := range x[axis+1:] {
				inner *= int(d)
			}
			res := &Tensor{DataType: t.DataType, Dims: out, Ints: make([]int64, 0, n)}
			for o := 0; o < outer; o++ {
				for _, v := range it.Ints {
					if v < 0 {
						v += x[axis]
					}
					base := (o*int(x[axis]) + int(v)) * inner
					res.Ints = append(res.Ints, t.Ints[base:base+inner]...)
				}
			}
			c.setConst(0, res)
			return nil
		}
	}
	c.set(0, out, c.typ(0))
	return nil
}

// axesArg returns the axes of Squeeze/Unsqueeze: an attribute before opset 13, an
// input from 13 on. ok is false when none are given.
func (c nodeCtx) axesArg() (axes []int64, ok bool, err error) {
	if c.opset >= 13 {
		if !c.has(1) {
			return nil, false, nil
		}
		v, err := c.intsInput(1, "axes")
		return v, true, err
	}
	if a := c.n.Attr("axes"); a != nil {
		return a.Ints, true, nil
	}
	return nil, false, nil
}

func (c nodeCtx) unsqueeze() error {
	if err := c.inputs(1, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axes, ok, err := c.axesArg()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("axes missing")
	}
	r := len(x) + len(axes)
	insert := make([]bool, r)
	for _, a := range axes {
		ax, err := normAxis(a, r, false)
		if err != nil {
			return fmt.Errorf("axes %v: %w", axes, err)
		}
		if insert[ax] {
			return fmt.Errorf("axes %v repeat axis %d", axes, ax)
		}
		insert[ax] = true
	}
	out := make([]int64, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if insert[i] {
			out = append(out, 1)
		} else {
			out = append(out, x[j])
			j++
		}
	}
	if t := c.konst(0); t != nil {
		c.setConst(0, reshaped(t, out))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) squeeze() error {
	if err := c.inputs(1, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axes, ok, err := c.axesArg()
	if err != nil {
		return err
	}
	drop := make([]bool, len(x))
	if ok {
		for _, a := range axes {
			ax, err := normAxis(a, len(x), false)
			if err != nil {
				return fmt.Errorf("axes %v: %w", axes, err)
			}
			if x[ax] != 1 {
				return fmt.Errorf("axes %v: dimension %d of %v is %d, not 1", axes, ax, x, x[ax])
			}
			drop[ax] = true
		}
	} else {
		for i, d := range x {
			drop[i] = d == 1
		}
	}
	out := []int64{}
	for i, d := range x {
		if !drop[i] {
			out = append(out, d)
		}
	}
	if t := c.konst(0); t != nil {
		c.setConst(0, reshaped(t, out))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) concat() error {
	if err := c.inputs(1, 1<<20); err != nil {
		return err
	}
	a := c.n.Attr("axis")
	if a == nil || a.Type != AttrInt {
		return fmt.Errorf("attribute \"axis\" missing")
	}
	shapes := make([][]int64, len(c.n.Inputs))
	for i := range c.n.Inputs {
		s, err := c.shape(i)
		if err != nil {
			return err
		}
		shapes[i] = s
	}
	r := len(shapes[0])
	axis, err := normAxis(a.Int, r, false)
	if err != nil {
		return err
	}
	out := slices.Clone(shapes[0])
	out[axis] = 0
	for i, s := range shapes {
		if len(s) != r {
			return fmt.Errorf("input %q is %v, input %q is %v: ranks differ", c.n.Inputs[0], shapes[0], c.n.Inputs[i], s)
		}
		for k := range s {
			if k != axis && s[k] != shapes[0][k] {
				return fmt.Errorf("input %q is %v, input %q is %v: they differ outside axis %d",
					c.n.Inputs[0], shapes[0], c.n.Inputs[i], s, axis)
			}
		}
		out[axis] += s[axis]
	}
	// Fold when every input is an integer constant.
	ts := make([]*Tensor, len(c.n.Inputs))
	for i := range ts {
		ts[i] = c.konst(i)
		if ts[i] == nil || !ts[i].DataType.IsInt() || len(ts[i].Ints) > foldLimit {
			ts = nil
			break
		}
	}
	if ts != nil {
		outer := 1
		for _, d := range out[:axis] {
			outer *= int(d)
		}
		res := &Tensor{DataType: ts[0].DataType, Dims: out}
		for o := 0; o < outer; o++ {
			for i, t := range ts {
				chunk := 1
				for _, d := range shapes[i][axis:] {
					chunk *= int(d)
				}
				res.Ints = append(res.Ints, t.Ints[o*chunk:(o+1)*chunk]...)
			}
		}
		if res.Ints == nil {
			res.Ints = []int64{}
		}
		c.setConst(0, res)
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) slice() error {
	if err := c.inputs(1, 5); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	var starts, ends, axes, steps []int64
	if c.opset < 10 {
		starts = c.n.AttrInts("starts", nil)
		ends = c.n.AttrInts("ends", nil)
		axes = c.n.AttrInts("axes", nil)
		if starts == nil || ends == nil {
			return fmt.Errorf("attributes starts and ends are required")
		}
	} else {
		if starts, err = c.intsInput(1, "starts"); err != nil {
			return err
		}
		if ends, err = c.intsInput(2, "ends"); err != nil {
			return err
		}
		if c.has(3) {
			if axes, err = c.intsInput(3, "axes"); err != nil {
				return err
			}
		}
		if c.has(4) {
			if steps, err = c.intsInput(4, "steps"); err != nil {
				return err
			}
		}
	}
	if len(ends) != len(starts) {
		return fmt.Errorf("starts %v and ends %v differ in length", starts, ends)
	}
	if axes == nil {
		axes = make([]int64, len(starts))
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	if steps == nil {
		steps = ones(len(starts))
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return fmt.Errorf("starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	r := len(x)
	first := make([]int64, r)
	step := ones(r)
	out := slices.Clone(x)
	seen := make([]bool, r)
	for i := range starts {
		ax, err := normAxis(axes[i], r, false)
		if err != nil {
			return fmt.Errorf("axes %v: %w", axes, err)
		}
		if seen[ax] {
			return fmt.Errorf("axes %v repeat axis %d", axes, ax)
		}
		seen[ax] = true
		s, e, st := starts[i], ends[i], steps[i]
		if st == 0 {
			return fmt.Errorf("steps %v: a step is 0", steps)
		}
		d := x[ax]
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		if st > 0 {
			s = min(max(s, 0), d)
			e = min(max(e, 0), d)
		} else {
			s = min(max(s, 0), d-1)
			e = min(max(e, -1), d-1)
		}
		var n int64
		if st > 0 && e > s {
			n = (e - s + st - 1) / st
		} else if st < 0 && s > e {
			n = (s - e + (-st) - 1) / (-st)
		}
		out[ax], first[ax], step[ax] = n, s, st
	}
	if t := c.konst(0); t != nil && t.DataType.IsInt() && len(t.Ints) <= foldLimit {
		n, _ := countElements(out)
		res := &Tensor{DataType: t.DataType, Dims: out, Ints: make([]int64, n)}
		inStrides := stridesOf(x)
		pos := make([]int64, r)
		for k := 0; k < n; k++ {
			src := 0
			for i := range pos {
				src += int(first[i]+pos[i]*step[i]) * inStrides[i]
			}
			res.Ints[k] = t.Ints[src]
			incr(pos, out)
		}
		c.setConst(0, res)
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
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

func (c nodeCtx) expand() error {
	if err := c.inputs(2, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	shape, err := c.intsInput(1, "shape")
	if err != nil {
		return err
	}
	out, err := broadcastShapes(x, shape)
	if err != nil {
		return err
	}
	if t := c.konst(0); t != nil && t.DataType.IsInt() {
		if n, err := countElements(out); err == nil && n <= foldLimit {
			idx := broadcastIndex(out, x)
			res := &Tensor{DataType: t.DataType, Dims: out, Ints: make([]int64, n)}
			for k, i := range idx {
				res.Ints[k] = t.Ints[i]
			}
			c.setConst(0, res)
			return nil
		}
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) rangeOp() error {
	if err := c.inputs(3, 3); err != nil {
		return err
	}
	var v [3]*Tensor
	for i := range v {
		v[i] = c.konst(i)
		if v[i] == nil || v[i].NumElements() != 1 || v[i].DataType != v[0].DataType {
			return fmt.Errorf("start, limit and delta must be constant scalars")
		}
	}
	if v[0].DataType.IsInt() {
		start, limit, delta := v[0].Ints[0], v[1].Ints[0], v[2].Ints[0]
		if delta == 0 {
			return fmt.Errorf("delta is 0")
		}
		n := max((limit-start+delta-sign(delta))/delta, 0)
		if n > foldLimit {
			c.set(0, []int64{n}, v[0].DataType)
			return nil
		}
		res := &Tensor{DataType: v[0].DataType, Dims: []int64{n}, Ints: make([]int64, n)}
		for i := range res.Ints {
			res.Ints[i] = start + int64(i)*delta
		}
		c.setConst(0, res)
		return nil
	}
	start, limit, delta := float64(v[0].Floats[0]), float64(v[1].Floats[0]), float64(v[2].Floats[0])
	if delta == 0 {
		return fmt.Errorf("delta is 0")
	}
	n := int64(max(ceil((limit-start)/delta), 0))
	c.set(0, []int64{n}, Float)
	return nil
}

func sign(v int64) int64 {
	if v < 0 {
		return -1
	}
	return 1
}

func ceil(v float64) float64 {
	f := float64(int64(v))
	if f < v {
		f++
	}
	return f
}
