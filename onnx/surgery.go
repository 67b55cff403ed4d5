package onnx

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Cut returns a model whose single output is the tensor name: a node name (meaning the
// node's first output) or a tensor name. It keeps only the nodes needed to compute that
// tensor, the initializers, inputs and value infos they use, and the opset imports and
// metadata. The output's shape comes from the model's value infos or from shape
// inference, with the batch dimension as symbolic as in the input. The new model
// shares initializer tensors with m; its nodes and value infos are copies.
func Cut(m *Model, name string) (*Model, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("cut: no graph")
	}
	g := m.Graph
	tensor := name
	if n := g.Node(name); n != nil && len(n.Outputs) > 0 && n.Outputs[0] != "" {
		tensor = n.Outputs[0]
	} else if g.Producer(name) == nil {
		return nil, fmt.Errorf("cut: %q is neither a node nor a tensor a node produces; nearest node names: %s",
			name, strings.Join(nearestNames(g, name, 5), ", "))
	}

	keep := ancestors(g, tensor)
	out := &Model{
		IRVersion:       m.IRVersion,
		OpsetImports:    slices.Clone(m.OpsetImports),
		ProducerName:    m.ProducerName,
		ProducerVersion: m.ProducerVersion,
		Domain:          m.Domain,
		ModelVersion:    m.ModelVersion,
		DocString:       m.DocString,
		Metadata:        slices.Clone(m.Metadata),
	}
	ng := &Graph{Name: g.Name, DocString: g.DocString}
	used := map[string]bool{}
	produced := map[string]bool{}
	for _, n := range g.Nodes {
		if !keep[n] {
			continue
		}
		cp := *n
		cp.Inputs = slices.Clone(n.Inputs)
		cp.Outputs = slices.Clone(n.Outputs)
		cp.Attributes = slices.Clone(n.Attributes)
		ng.Nodes = append(ng.Nodes, &cp)
		for _, in := range n.Inputs {
			used[in] = true
		}
		for _, o := range n.Outputs {
			produced[o] = true
		}
		for _, in := range subgraphInputs(n) {
			used[in] = true
		}
	}
	for _, t := range g.Initializers {
		if used[t.Name] {
			ng.Initializers = append(ng.Initializers, t)
		}
	}
	for _, v := range g.Inputs {
		if used[v.Name] {
			cp := *v
			cp.Shape = slices.Clone(v.Shape)
			ng.Inputs = append(ng.Inputs, &cp)
		}
	}
	for _, v := range g.ValueInfo {
		if produced[v.Name] && v.Name != tensor {
			cp := *v
			cp.Shape = slices.Clone(v.Shape)
			ng.ValueInfo = append(ng.ValueInfo, &cp)
		}
	}
	ng.Outputs = []*ValueInfo{outputInfo(m, tensor)}
	out.Graph = ng
	return out, nil
}

// subgraphInputs lists the names a node's subgraphs take from the enclosing graph.
func subgraphInputs(n *Node) []string {
	var names []string
	var walk func(g *Graph)
	walk = func(g *Graph) {
		for _, sn := range g.Nodes {
			names = append(names, sn.Inputs...)
			for _, a := range sn.Attributes {
				if a.Graph != nil {
					walk(a.Graph)
				}
				for _, sg := range a.Graphs {
					walk(sg)
				}
			}
		}
	}
	for _, a := range n.Attributes {
		if a.Graph != nil {
			walk(a.Graph)
		}
		for _, sg := range a.Graphs {
			walk(sg)
		}
	}
	return names
}

// ancestors is the set of nodes needed to compute tensor.
func ancestors(g *Graph, tensor string) map[*Node]bool {
	producer := producers(g)
	keep := map[*Node]bool{}
	stack := []string{tensor}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := producer[t]
		if n == nil || keep[n] {
			continue
		}
		keep[n] = true
		stack = append(stack, n.Inputs...)
		stack = append(stack, subgraphInputs(n)...)
	}
	return keep
}

func producers(g *Graph) map[string]*Node {
	p := make(map[string]*Node, len(g.Nodes))
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				p[o] = n
			}
		}
	}
	return p
}

// outputInfo describes tensor as a graph output: from the graph's declarations when
// they give a shape, else from shape inference.
func outputInfo(m *Model, tensor string) *ValueInfo {
	if v := m.Graph.ValueInfoOf(tensor); v != nil && v.HasShape {
		cp := *v
		cp.Shape = slices.Clone(v.Shape)
		return &cp
	}
	v := &ValueInfo{Name: tensor}
	if si := symbolicShapes(m); si != nil {
		if s, ok := si.shapes[tensor]; ok {
			v.Shape, v.HasShape = s, true
		}
		v.ElemType = si.types[tensor]
	}
	if v.ElemType.IsFloat() {
		v.ElemType = Float
	}
	return v
}

// symbolic holds shapes inferred with the batch dimension kept symbolic.
type symbolic struct {
	shapes map[string][]Dim
	types  map[string]DataType
	consts map[string]*Tensor
}

// symbolicShapes infers every tensor's shape for the declared input shapes, keeping
// symbolic the dimensions that follow a symbolic batch dimension: it runs inference for
// batch sizes 1 and 2 and names the dimensions that change after the input's batch
// dimension. It returns nil when the inputs have other symbolic dimensions or inference
// fails.
func symbolicShapes(m *Model) *symbolic {
	real := m.Graph.RealInputs()
	feeds := [2]map[string][]int64{{}, {}}
	params := map[string]string{} // name of the symbolic batch dimension, by input
	for _, v := range real {
		if !v.HasShape {
			return nil
		}
		for b := 0; b < 2; b++ {
			s := make([]int64, len(v.Shape))
			for i, d := range v.Shape {
				switch {
				case d.Value > 0:
					s[i] = d.Value
				case i == 0:
					s[i] = int64(b + 1)
					params[v.Name] = d.Param
				default:
					return nil
				}
			}
			feeds[b][v.Name] = s
		}
	}
	var runs [2]*inferer
	for b := range runs {
		in, err := inferShapes(m, feeds[b])
		if err != nil {
			return nil
		}
		runs[b] = in
	}
	batch := "N"
	for _, p := range params {
		if p != "" {
			batch = p
			break
		}
	}
	si := &symbolic{shapes: map[string][]Dim{}, types: runs[0].types, consts: runs[0].consts}
	for name, d1 := range runs[0].dims {
		d2 := runs[1].dims[name]
		dims := make([]Dim, len(d1))
		for i := range d1 {
			if len(params) > 0 && (len(d2) != len(d1) || d2[i] != d1[i]) {
				dims[i].Param = batch
			} else {
				dims[i].Value = d1[i]
			}
		}
		si.shapes[name] = dims
	}
	return si
}

// nearestNames returns up to k node names closest to name by edit distance.
func nearestNames(g *Graph, name string, k int) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	for _, n := range g.Nodes {
		cs = append(cs, cand{n.Name, editDistance(strings.ToLower(name), strings.ToLower(n.Name))})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var out []string
	for i := 0; i < len(cs) && i < k; i++ {
		out = append(out, fmt.Sprintf("%q", cs[i].name))
	}
	if len(out) == 0 {
		return []string{"(the graph has no nodes)"}
	}
	return out
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// classifierOp reports whether op starts the classifier when it follows the last Conv.
func classifierOp(op string) bool {
	switch op {
	case "Flatten", "Reshape", "Gemm", "MatMul", "GlobalAveragePool", "GlobalMaxPool", "AveragePool":
		return true
	}
	return false
}

// ErrHeadless is wrapped by HeadlessCut's error for a model with no classifier.
var ErrHeadless = errors.New("already headless")

// HeadlessCut finds the tensor just before the classifier: the data input of the first
// Flatten, Reshape, Gemm, MatMul, GlobalAveragePool, GlobalMaxPool or AveragePool after
// the last Conv (a Shape node that starts a Shape -> ... -> Reshape flatten chain
// counts as its Reshape, and a Pad feeding only the pooling layer goes with it). Cut the model there for its convolutional base. It is an
// error when the model has no Conv, or nothing after its last Conv is a classifier
// (the error then wraps ErrHeadless).
func HeadlessCut(m *Model) (string, error) {
	if m == nil || m.Graph == nil {
		return "", errors.New("headless cut: no graph")
	}
	nodes := m.Graph.Nodes
	last := -1
	for i, n := range nodes {
		if n.OpType == "Conv" {
			last = i
		}
	}
	if last < 0 {
		return "", errors.New("headless cut: the model has no Conv layer")
	}
	for _, n := range nodes[last+1:] {
		if len(n.Inputs) == 0 || n.Inputs[0] == "" {
			continue
		}
		if classifierOp(n.OpType) || (n.OpType == "Shape" && leadsToReshape(m.Graph, n)) {
			// A Pad that only feeds the pooling (PyTorch's export of a ceil-mode
			// average pool) belongs to the classifier too.
			cut := n.Inputs[0]
			for {
				p := m.Graph.Producer(cut)
				if p == nil || p.OpType != "Pad" || len(p.Inputs) == 0 || len(m.Graph.Consumers(cut)) != 1 {
					break
				}
				cut = p.Inputs[0]
			}
			return cut, nil
		}
	}
	return "", fmt.Errorf("headless cut: no classifier after the last Conv %q: %w", nodes[last].Name, ErrHeadless)
}

// leadsToReshape reports whether a Shape node's output feeds, through shape
// arithmetic, the shape input of a Reshape of the same tensor.
func leadsToReshape(g *Graph, shape *Node) bool {
	seen := map[string]bool{}
	stack := []string{shape.Outputs[0]}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[t] {
			continue
		}
		seen[t] = true
		for _, c := range g.Consumers(t) {
			if c.OpType == "Reshape" && len(c.Inputs) == 2 && c.Inputs[1] == t {
				return len(c.Inputs) > 0 && c.Inputs[0] == shape.Inputs[0]
			}
			switch c.OpType {
			case "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Mul", "Add", "Sub", "Div", "Identity":
				stack = append(stack, c.Outputs...)
			}
		}
	}
	return false
}

// IsHeadless reports whether the model ends in a 4-D feature map: its first output is
// declared (or inferred) with rank 4, or, when no shape is known, nothing after its
// last Conv is a classifier.
func IsHeadless(m *Model) bool {
	if m == nil || m.Graph == nil || len(m.Graph.Outputs) == 0 {
		return false
	}
	out := m.Graph.Outputs[0]
	if out.HasShape {
		return len(out.Shape) == 4
	}
	if si := symbolicShapes(m); si != nil {
		if s, ok := si.shapes[out.Name]; ok {
			return len(s) == 4
		}
	}
	_, err := HeadlessCut(m)
	return errors.Is(err, ErrHeadless)
}

// Block is one layer group of a network: a stretch of the convolutional base ending at
// a pooling layer, or the classifier.
type Block struct {
	Name   string   `json:"name"`
	Nodes  []string `json:"nodes"`
	Params []string `json:"params"`
}

// paramNames maps the names of the model's parameters (float initializers, and the
// outputs of Identity nodes that copy one, as PyTorch writes for tied or duplicate
// weights) to the initializer holding their values.
func paramNames(g *Graph) map[string]*Tensor {
	p := map[string]*Tensor{}
	for _, t := range g.Initializers {
		if t.DataType == Float {
			p[t.Name] = t
		}
	}
	for _, n := range g.Nodes {
		if isParamAlias(n, p) {
			p[n.Outputs[0]] = p[n.Inputs[0]]
		}
	}
	return p
}

// isParamAlias reports whether n is an Identity that copies a parameter.
func isParamAlias(n *Node, params map[string]*Tensor) bool {
	return n.OpType == "Identity" && len(n.Inputs) == 1 && len(n.Outputs) == 1 && params[n.Inputs[0]] != nil
}

// Blocks splits the model into layer groups: the convolutional base into blocks that
// each end at a MaxPool or AveragePool (block1, block2, ...), with any nodes after the
// last pooling layer added to the last block, and, for a full model, the classifier
// (everything after HeadlessCut) as a block named "classifier". Params lists, in order,
// the parameters (float initializers, by the name the nodes use) each block's nodes
// consume. Identity nodes that only copy a parameter go with the first node using it.
func Blocks(m *Model) []Block {
	if m == nil || m.Graph == nil {
		return nil
	}
	g := m.Graph
	params := paramNames(g)
	base := map[*Node]bool{}
	full := false
	if cut, err := HeadlessCut(m); err == nil {
		full = true
		base = ancestors(g, cut)
	} else {
		for _, n := range g.Nodes {
			base[n] = true
		}
	}
	// Identity copies of parameters join the block of their first consumer, just
	// before it.
	aliasesOf := map[*Node][]*Node{}
	isAlias := map[*Node]bool{}
	for _, n := range g.Nodes {
		if !isParamAlias(n, params) {
			continue
		}
		if cs := g.Consumers(n.Outputs[0]); len(cs) > 0 {
			aliasesOf[cs[0]] = append(aliasesOf[cs[0]], n)
			isAlias[n] = true
		}
	}
	addNode := func(b *Block, n *Node) {
		for _, a := range aliasesOf[n] {
			b.Nodes = append(b.Nodes, a.Name)
		}
		b.Nodes = append(b.Nodes, n.Name)
		for _, in := range n.Inputs {
			if params[in] != nil && !slices.Contains(b.Params, in) {
				b.Params = append(b.Params, in)
			}
		}
	}
	var blocks []Block
	var cur Block
	classifier := Block{Name: "classifier"}
	for _, n := range g.Nodes {
		switch {
		case isAlias[n]:
		case !base[n]:
			addNode(&classifier, n)
		default:
			addNode(&cur, n)
			if n.OpType == "MaxPool" || n.OpType == "AveragePool" {
				cur.Name = fmt.Sprintf("block%d", len(blocks)+1)
				blocks = append(blocks, cur)
				cur = Block{}
			}
		}
	}
	if len(cur.Nodes) > 0 {
		if len(blocks) == 0 {
			cur.Name = "block1"
			blocks = append(blocks, cur)
		} else {
			last := &blocks[len(blocks)-1]
			last.Nodes = append(last.Nodes, cur.Nodes...)
			for _, p := range cur.Params {
				if !slices.Contains(last.Params, p) {
					last.Params = append(last.Params, p)
				}
			}
		}
	}
	if full && len(classifier.Nodes) > 0 {
		blocks = append(blocks, classifier)
	}
	return blocks
}
