package headbuilder

import "toolkit/onnx"

// The deep copies below let Append return a model that shares no memory with its
// base: training the new model's weights in place, or editing its graph, leaves the
// base as it was.

func cloneModel(m *onnx.Model) *onnx.Model {
	c := *m
	c.OpsetImports = cloneSlice(m.OpsetImports)
	c.Metadata = cloneSlice(m.Metadata)
	c.Graph = cloneGraph(m.Graph)
	return &c
}

func cloneGraph(g *onnx.Graph) *onnx.Graph {
	if g == nil {
		return nil
	}
	c := *g
	c.Nodes = make([]*onnx.Node, len(g.Nodes))
	for i, n := range g.Nodes {
		c.Nodes[i] = cloneNode(n)
	}
	c.Initializers = cloneTensors(g.Initializers)
	c.Inputs = cloneValueInfos(g.Inputs)
	c.Outputs = cloneValueInfos(g.Outputs)
	c.ValueInfo = cloneValueInfos(g.ValueInfo)
	return &c
}

func cloneNode(n *onnx.Node) *onnx.Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Inputs = cloneSlice(n.Inputs)
	c.Outputs = cloneSlice(n.Outputs)
	if n.Attributes != nil {
		c.Attributes = make([]*onnx.Attribute, len(n.Attributes))
		for i, a := range n.Attributes {
			c.Attributes[i] = cloneAttribute(a)
		}
	}
	return &c
}

func cloneAttribute(a *onnx.Attribute) *onnx.Attribute {
	if a == nil {
		return nil
	}
	c := *a
	c.Tensor = cloneTensor(a.Tensor)
	c.Floats = cloneSlice(a.Floats)
	c.Ints = cloneSlice(a.Ints)
	c.Strings = cloneSlice(a.Strings)
	c.Graph = cloneGraph(a.Graph)
	c.Tensors = cloneTensors(a.Tensors)
	if a.Graphs != nil {
		c.Graphs = make([]*onnx.Graph, len(a.Graphs))
		for i, g := range a.Graphs {
			c.Graphs[i] = cloneGraph(g)
		}
	}
	return &c
}

func cloneTensors(ts []*onnx.Tensor) []*onnx.Tensor {
	if ts == nil {
		return nil
	}
	c := make([]*onnx.Tensor, len(ts))
	for i, t := range ts {
		c[i] = cloneTensor(t)
	}
	return c
}

// cloneTensor copies a tensor. Empty (non-nil) slices stay empty rather than nil: the
// IR distinguishes an empty tensor's data from an absent field.
func cloneTensor(t *onnx.Tensor) *onnx.Tensor {
	if t == nil {
		return nil
	}
	c := *t
	c.Dims = cloneSlice(t.Dims)
	c.Floats = cloneSlice(t.Floats)
	c.Ints = cloneSlice(t.Ints)
	c.Strings = cloneSlice(t.Strings)
	return &c
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

func cloneValueInfos(vs []*onnx.ValueInfo) []*onnx.ValueInfo {
	if vs == nil {
		return nil
	}
	c := make([]*onnx.ValueInfo, len(vs))
	for i, v := range vs {
		if v == nil {
			continue
		}
		vc := *v
		vc.Shape = cloneSlice(v.Shape)
		c[i] = &vc
	}
	return c
}
