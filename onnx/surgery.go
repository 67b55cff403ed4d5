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

// Block is one layer group of a network: a stage of its base (see Blocks), or the
// classifier.
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
