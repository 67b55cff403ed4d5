package onnx

import (
	"slices"
)

// UntieInitializers returns a copy of m in which every parameter has an initializer of
// its own. PyTorch's exporter stores bit-identical initializers once and aliases the
// others to it with Identity nodes (torchvision's VGG19, whose conv biases all start at
// zero, gets `34.bias = Identity(19.bias)` and eleven more); fine-tuning must update
// them separately. Every Identity node of the main graph whose input is an initializer,
// directly or through a chain of such Identity nodes, is replaced by a new initializer
// named like its output and holding a copy of the values. An Identity whose output is a
// graph output stays, so that the output is still produced by a node.
//
// A new initializer is placed just after the initializer that precedes it among the
// inputs of its first consumer (2.bias after 2.weight), or last. When the initializer
// it copies is also listed among the graph inputs (IR version < 4), the copy is listed
// too. Value infos for the new initializers are dropped. m is not modified; the new
// model shares the initializers it keeps with m, and its nodes and value infos are
// copies.
func UntieInitializers(m *Model) *Model {
	out := cloneModel(m)
	if out == nil || out.Graph == nil {
		return out
	}
	g := out.Graph
	// src maps a tensor name to the initializer whose values it holds.
	src := make(map[string]*Tensor, len(g.Initializers))
	for _, t := range g.Initializers {
		src[t.Name] = t
	}
	isOutput := map[string]bool{}
	for _, v := range g.Outputs {
		isOutput[v.Name] = true
	}
	var made []*Tensor
	var nodes []*Node
	for _, n := range g.Nodes {
		if n.OpType != "Identity" || (n.Domain != "" && n.Domain != "ai.onnx") ||
			len(n.Inputs) != 1 || len(n.Outputs) != 1 || n.Outputs[0] == "" || src[n.Inputs[0]] == nil {
			nodes = append(nodes, n)
			continue
		}
		from := src[n.Inputs[0]]
		src[n.Outputs[0]] = from
		if isOutput[n.Outputs[0]] {
			nodes = append(nodes, n)
			continue
		}
		made = append(made, copyTensor(from, n.Outputs[0]))
	}
	if len(made) == 0 {
		return out
	}
	g.Nodes = nodes

	// Place each copy after its anchor: the last original initializer listed before
	// it among the inputs of its first consumer.
	pos := make(map[string]int, len(g.Initializers))
	for i, t := range g.Initializers {
		pos[t.Name] = i
	}
	after := map[int][]*Tensor{}
	var last []*Tensor
	for _, t := range made {
		anchor := -1
		if cs := g.Consumers(t.Name); len(cs) > 0 {
			for _, in := range cs[0].Inputs {
				if in == t.Name {
					break
				}
				if i, ok := pos[in]; ok {
					anchor = i
				}
			}
		}
		if anchor < 0 {
			last = append(last, t)
		} else {
			after[anchor] = append(after[anchor], t)
		}
	}
	inits := make([]*Tensor, 0, len(g.Initializers)+len(made))
	for i, t := range g.Initializers {
		inits = append(inits, t)
		inits = append(inits, after[i]...)
	}
	g.Initializers = append(inits, last...)

	// Keep the graph inputs consistent: list a copy where its original is listed.
	inputs := map[string]*ValueInfo{}
	for _, v := range g.Inputs {
		inputs[v.Name] = v
	}
	isNew := map[string]bool{}
	for _, t := range made {
		isNew[t.Name] = true
		if v := inputs[src[t.Name].Name]; v != nil {
			nv := &ValueInfo{Name: t.Name, ElemType: v.ElemType, HasShape: true}
			for _, d := range t.Dims {
				nv.Shape = append(nv.Shape, Dim{Value: d})
			}
			g.Inputs = append(g.Inputs, nv)
		}
	}
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(v *ValueInfo) bool { return isNew[v.Name] })
	return out
}

// copyTensor returns a deep copy of t called name.
func copyTensor(t *Tensor, name string) *Tensor {
	return &Tensor{
		Name:     name,
		DataType: t.DataType,
		Dims:     slices.Clone(t.Dims),
		Floats:   slices.Clone(t.Floats),
		Ints:     slices.Clone(t.Ints),
		Strings:  slices.Clone(t.Strings),
	}
}

// cloneModel copies m for a transformation that returns a new model: the model, graph,
// node and value-info structs and their slices are new; initializers, attributes and
// subgraphs are shared with m and must be replaced, never modified.
func cloneModel(m *Model) *Model {
	if m == nil {
		return nil
	}
	out := *m
	out.OpsetImports = slices.Clone(m.OpsetImports)
	out.Metadata = slices.Clone(m.Metadata)
	if m.Graph == nil {
		return &out
	}
	g := *m.Graph
	g.Nodes = make([]*Node, len(m.Graph.Nodes))
	for i, n := range m.Graph.Nodes {
		cp := *n
		cp.Inputs = slices.Clone(n.Inputs)
		cp.Outputs = slices.Clone(n.Outputs)
		cp.Attributes = slices.Clone(n.Attributes)
		g.Nodes[i] = &cp
	}
	g.Initializers = slices.Clone(m.Graph.Initializers)
	g.Inputs = deepValueInfos(m.Graph.Inputs)
	g.Outputs = deepValueInfos(m.Graph.Outputs)
	g.ValueInfo = deepValueInfos(m.Graph.ValueInfo)
	out.Graph = &g
	return &out
}
