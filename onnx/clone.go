package onnx

// Clone returns a deep copy of m that shares no memory with it: training the copy's
// weights in place, or editing its graph, leaves m as it was.
func (m *Model) Clone() *Model {
	if m == nil {
		return nil
	}
	return deepModel(m)
}

func deepModel(m *Model) *Model {
	c := *m
	c.OpsetImports = deepSlice(m.OpsetImports)
	c.Metadata = deepSlice(m.Metadata)
	c.Graph = deepGraph(m.Graph)
	return &c
}

func deepGraph(g *Graph) *Graph {
	if g == nil {
		return nil
	}
	c := *g
	c.Nodes = make([]*Node, len(g.Nodes))
	for i, n := range g.Nodes {
		c.Nodes[i] = deepNode(n)
	}
	c.Initializers = deepTensors(g.Initializers)
	c.Inputs = deepValueInfos(g.Inputs)
	c.Outputs = deepValueInfos(g.Outputs)
	c.ValueInfo = deepValueInfos(g.ValueInfo)
	return &c
}

func deepNode(n *Node) *Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Inputs = deepSlice(n.Inputs)
	c.Outputs = deepSlice(n.Outputs)
	if n.Attributes != nil {
		c.Attributes = make([]*Attribute, len(n.Attributes))
		for i, a := range n.Attributes {
			c.Attributes[i] = deepAttribute(a)
		}
	}
	return &c
}

func deepAttribute(a *Attribute) *Attribute {
	if a == nil {
		return nil
	}
	c := *a
	c.Tensor = deepTensor(a.Tensor)
	c.Floats = deepSlice(a.Floats)
	c.Ints = deepSlice(a.Ints)
	c.Strings = deepSlice(a.Strings)
	c.Graph = deepGraph(a.Graph)
	c.Tensors = deepTensors(a.Tensors)
	if a.Graphs != nil {
		c.Graphs = make([]*Graph, len(a.Graphs))
		for i, g := range a.Graphs {
			c.Graphs[i] = deepGraph(g)
		}
	}
	return &c
}

func deepTensors(ts []*Tensor) []*Tensor {
	if ts == nil {
		return nil
	}
	c := make([]*Tensor, len(ts))
	for i, t := range ts {
		c[i] = deepTensor(t)
	}
	return c
}

// cloneTensor copies a tensor. Empty (non-nil) slices stay empty rather than nil: the
// IR distinguishes an empty tensor's data from an absent field.
func deepTensor(t *Tensor) *Tensor {
	if t == nil {
		return nil
	}
	c := *t
	c.Dims = deepSlice(t.Dims)
	c.Floats = deepSlice(t.Floats)
	c.Ints = deepSlice(t.Ints)
	c.Strings = deepSlice(t.Strings)
	return &c
}

func deepSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

func deepValueInfos(vs []*ValueInfo) []*ValueInfo {
	if vs == nil {
		return nil
	}
	c := make([]*ValueInfo, len(vs))
	for i, v := range vs {
		if v == nil {
			continue
		}
		vc := *v
		vc.Shape = deepSlice(v.Shape)
		c[i] = &vc
	}
	return c
}
