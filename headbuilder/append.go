package headbuilder

import (
	"fmt"
	"slices"
	"strings"

	"toolkit/onnx"
)

// MinOpset is the oldest default-domain operator set a base may import: the first
// with today's Gemm (optional broadcasting of C, no "broadcast" attribute) and Dropout
// (no "is_test").
const MinOpset = 7

// Append returns a new model: base with the head described by spec appended to its
// single graph output. The new model's single graph output is Logits ("logits"),
// [N, spec.Classes] with the symbolic batch dimension N; the base's output becomes an
// intermediate value. The base's opset imports, IR version, producer and metadata are
// kept, and the head uses only operators of the base's opset.
//
// inputShape is the shape, batch included, of the base's single real input, e.g.
// [1 3 32 32]; Append runs onnx.InferShapes with it to learn the shape of the base's
// output and so the head's input width. The base must produce a 4-D [N C H W] output,
// or a 2-D [N F] output with pool "flatten".
//
// The result shares no memory with base, which is left unmodified. The new weights are
// drawn as the package documentation describes, from spec.Seed alone.
func Append(base *onnx.Model, spec Spec, inputShape []int64) (*onnx.Model, error) {
	if base == nil || base.Graph == nil {
		return nil, fmt.Errorf("the base model has no graph")
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	opset := base.Opset("")
	if opset == 0 {
		return nil, fmt.Errorf("the base model imports no version of the default (ai.onnx) operator set")
	}
	if opset < MinOpset {
		return nil, fmt.Errorf("the base model uses opset %d; the head needs opset %d or newer", opset, MinOpset)
	}
	g := base.Graph
	if len(g.Outputs) != 1 {
		names := make([]string, len(g.Outputs))
		for i, o := range g.Outputs {
			names[i] = fmt.Sprintf("%q", o.Name)
		}
		return nil, fmt.Errorf("the base must have exactly one graph output to append the head to, it has %d: %s",
			len(g.Outputs), strings.Join(names, ", "))
	}
	out := g.Outputs[0]
	if out.ElemType != onnx.Undefined && out.ElemType != onnx.Float {
		return nil, fmt.Errorf("base output %q is %s; the head works on FLOAT", out.Name, out.ElemType)
	}
	inputs := g.RealInputs()
	if len(inputs) != 1 {
		return nil, fmt.Errorf("the base must have exactly one input (not counting initializers), it has %d", len(inputs))
	}
	if len(inputShape) == 0 {
		return nil, fmt.Errorf("no input shape given for base input %q", inputs[0].Name)
	}
	for _, d := range inputShape {
		if d < 1 {
			return nil, fmt.Errorf("input shape %v for base input %q: every dimension must be at least 1", inputShape, inputs[0].Name)
		}
	}
	if err := checkReservedNames(g); err != nil {
		return nil, err
	}

	shapes, err := onnx.InferShapes(base, map[string][]int64{inputs[0].Name: inputShape})
	if err != nil {
		return nil, fmt.Errorf("shape inference of the base for input %v: %w", inputShape, err)
	}
	dims, ok := shapes.Dims[out.Name]
	if !ok {
		return nil, fmt.Errorf("shape inference did not find the shape of base output %q for input %v", out.Name, inputShape)
	}
	features, err := headInput(out.Name, dims, inputShape, spec.Pool)
	if err != nil {
		return nil, err
	}

	m := base.Clone()
	// The base's output becomes an intermediate value: keep what it declared about it.
	old := m.Graph.Outputs[0]
	declared := slices.ContainsFunc(m.Graph.ValueInfo, func(v *onnx.ValueInfo) bool { return v.Name == old.Name })
	if old.HasShape && !declared {
		m.Graph.ValueInfo = append(m.Graph.ValueInfo, old)
	}
	b := &builder{g: m.Graph, opset: opset, oldIR: m.IRVersion < 4}
	b.build(spec, out.Name, dims, features)
	m.Graph.Outputs = []*onnx.ValueInfo{b.info(Logits, int64(spec.Classes))}

	// Check the result the way its users will see it.
	got, err := onnx.InferShapes(m, map[string][]int64{inputs[0].Name: inputShape})
	if err != nil {
		return nil, fmt.Errorf("internal error: shape inference of the model with its head: %w", err)
	}
	if want := []int64{inputShape[0], int64(spec.Classes)}; !slices.Equal(got.Dims[Logits], want) {
		return nil, fmt.Errorf("internal error: the logits are %v, want %v", got.Dims[Logits], want)
	}
	return m, nil
}

// headInput checks the shape of the base's output for the pooling and returns the
// number of features the first layer of the head takes.
func headInput(name string, dims, inputShape []int64, pool string) (int64, error) {
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("the shape of base output %q is not fully known for input %v: %v", name, inputShape, dims)
		}
	}
	switch len(dims) {
	case 2:
		if pool != PoolFlatten {
			return 0, fmt.Errorf("base output %q is %v for input %v, 2-D [N features]: head.pool %q needs a 4-D [N C H W] output; use pool flatten",
				name, dims, inputShape, pool)
		}
	case 4:
	default:
		return 0, fmt.Errorf("base output %q is %v for input %v: the head takes a 4-D [N C H W] or 2-D [N features] output, not %d-D",
			name, dims, inputShape, len(dims))
	}
	for _, d := range dims[1:] {
		if d == 0 {
			return 0, fmt.Errorf("base output %q is %v for input %v: the input is too small for this base", name, dims, inputShape)
		}
	}
	if pool != PoolFlatten {
		return dims[1], nil
	}
	f := int64(1)
	for _, d := range dims[1:] {
		f *= d
	}
	return f, nil
}

// checkReservedNames refuses a base that already uses the head's names: most likely a
// model that already has a head appended.
func checkReservedNames(g *onnx.Graph) error {
	clash := func(s string) bool { return s == Logits || strings.HasPrefix(s, Prefix) }
	hint := `; names starting with "head." and the tensor "logits" are the head's: does the base already have a head? cut it off first`
	for _, n := range g.Nodes {
		if clash(n.Name) {
			return fmt.Errorf("the base has a node called %q%s", n.Name, hint)
		}
		for _, t := range n.Outputs {
			if clash(t) {
				return fmt.Errorf("the base has a tensor called %q%s", t, hint)
			}
		}
	}
	for _, t := range g.Initializers {
		if clash(t.Name) {
			return fmt.Errorf("the base has an initializer called %q%s", t.Name, hint)
		}
	}
	for _, list := range [][]*onnx.ValueInfo{g.Inputs, g.Outputs, g.ValueInfo} {
		for _, v := range list {
			if clash(v.Name) {
				return fmt.Errorf("the base has a value called %q%s", v.Name, hint)
			}
		}
	}
	return nil
}

// builder appends the head's nodes, initializers and value infos to g.
type builder struct {
	g     *onnx.Graph
	opset int64
	oldIR bool // IR version < 4: every initializer must also be a graph input
}

// info describes a float tensor of shape [N, dims...].
func (b *builder) info(name string, dims ...int64) *onnx.ValueInfo {
	shape := []onnx.Dim{{Param: BatchDim}}
	for _, d := range dims {
		shape = append(shape, onnx.Dim{Value: d})
	}
	return &onnx.ValueInfo{Name: name, ElemType: onnx.Float, Shape: shape, HasShape: true}
}

// node appends a node whose single output is called out and declares out's shape
// [N, dims...] (unless out is the graph output, declared separately).
func (b *builder) node(name, op string, inputs []string, out string, attrs []*onnx.Attribute, dims ...int64) {
	b.g.Nodes = append(b.g.Nodes, &onnx.Node{Name: name, OpType: op, Inputs: inputs, Outputs: []string{out}, Attributes: attrs})
	if out != Logits {
		b.g.ValueInfo = append(b.g.ValueInfo, b.info(out, dims...))
	}
}

// initializer appends a constant float tensor.
func (b *builder) initializer(name string, dims []int64, values []float32) {
	b.g.Initializers = append(b.g.Initializers, &onnx.Tensor{Name: name, DataType: onnx.Float, Dims: dims, Floats: values})
	if b.oldIR {
		shape := make([]onnx.Dim, len(dims))
		for i, d := range dims {
			shape[i] = onnx.Dim{Value: d}
		}
		b.g.Inputs = append(b.g.Inputs, &onnx.ValueInfo{Name: name, ElemType: onnx.Float, Shape: shape, HasShape: true})
	}
}

func intAttr(name string, v int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInt, Int: v}
}

func floatAttr(name string, v float32) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrFloat, Float: v}
}

// build appends the head to the tensor x, the base's output of shape dims, which the
// pooling turns into features values per example.
func (b *builder) build(spec Spec, x string, dims []int64, features int64) {
	switch spec.Pool {
	case PoolAvg:
		b.node(poolName, "GlobalAveragePool", []string{x}, poolName, nil, dims[1], 1, 1)
		x = poolName
	case PoolMax:
		b.node(poolName, "GlobalMaxPool", []string{x}, poolName, nil, dims[1], 1, 1)
		x = poolName
	}
	b.node(flattenName, "Flatten", []string{x}, flattenName, []*onnx.Attribute{intAttr("axis", 1)}, features)
	x = flattenName

	if len(spec.Dense) == 0 && spec.Dropout > 0 {
		x = b.dropout(0, spec.Dropout, x, features)
	}
	in := features
	layers := layerNames(spec)
	for i, layer := range layers {
		outWidth := int64(spec.Classes)
		y := Logits
		if i < len(spec.Dense) {
			outWidth = int64(spec.Dense[i])
			y = layer
		}
		weights := initWeights(spec.Seed, layer+".weight", int(outWidth), int(in), schemeFor(spec, i))
		b.initializer(layer+".weight", []int64{outWidth, in}, weights)
		b.initializer(layer+".bias", []int64{outWidth}, make([]float32, outWidth))
		b.node(layer, "Gemm", []string{x, layer + ".weight", layer + ".bias"}, y,
			[]*onnx.Attribute{intAttr("transB", 1)}, outWidth)
		x, in = y, outWidth
		if i == len(spec.Dense) {
			break
		}
		if op, attrs := activation(spec.Activation); op != "" {
			b.node(actName(i), op, []string{x}, actName(i), attrs, in)
			x = actName(i)
		}
		if spec.Dropout > 0 {
			x = b.dropout(i, spec.Dropout, x, in)
		}
	}
}

// activation returns the ONNX op of a hidden activation, "" for none.
func activation(name string) (string, []*onnx.Attribute) {
	switch name {
	case ActReLU:
		return "Relu", nil
	case ActLeakyReLU:
		return "LeakyRelu", []*onnx.Attribute{floatAttr("alpha", LeakyReLUAlpha)}
	case ActTanh:
		return "Tanh", nil
	case ActSigmoid:
		return "Sigmoid", nil
	}
	return "", nil
}

// dropout appends Dropout node i on x (width values per example) and returns its
// output. Before opset 12 the ratio is an attribute; from 12 on it is the input
// "head.dropout<i>.ratio", a float scalar initializer that is a constant, not a
// parameter. The training_mode input is left out: the exported model runs in
// inference mode, where Dropout is the identity.
func (b *builder) dropout(i int, ratio float64, x string, width int64) string {
	name := dropoutName(i)
	if b.opset < 12 {
		b.node(name, "Dropout", []string{x}, name, []*onnx.Attribute{floatAttr("ratio", float32(ratio))}, width)
		return name
	}
	b.initializer(name+ratioSuffix, nil, []float32{float32(ratio)})
	b.node(name, "Dropout", []string{x, name + ratioSuffix}, name, nil, width)
	return name
}
