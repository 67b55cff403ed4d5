package onnx

import "fmt"

// Opset returns the operator set version the model imports for domain, 0 when it
// imports none. "" and "ai.onnx" name the same (default) domain.
func (m *Model) Opset(domain string) int64 {
	if domain == "ai.onnx" {
		domain = ""
	}
	for _, op := range m.OpsetImports {
		d := op.Domain
		if d == "ai.onnx" {
			d = ""
		}
		if d == domain {
			return op.Version
		}
	}
	return 0
}

// Initializer returns the initializer called name, or nil.
func (g *Graph) Initializer(name string) *Tensor {
	for _, t := range g.Initializers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// RealInputs returns the graph inputs that are not backed by an initializer: the
// values a caller must feed.
func (g *Graph) RealInputs() []*ValueInfo {
	inits := make(map[string]bool, len(g.Initializers))
	for _, t := range g.Initializers {
		inits[t.Name] = true
	}
	var out []*ValueInfo
	for _, v := range g.Inputs {
		if !inits[v.Name] {
			out = append(out, v)
		}
	}
	return out
}

// Producer returns the node that outputs tensor, or nil for graph inputs,
// initializers and unknown names.
func (g *Graph) Producer(tensor string) *Node {
	if tensor == "" {
		return nil
	}
	for _, n := range g.Nodes {
		for _, out := range n.Outputs {
			if out == tensor {
				return n
			}
		}
	}
	return nil
}

// Consumers returns the nodes that take tensor as an input, in graph order.
func (g *Graph) Consumers(tensor string) []*Node {
	if tensor == "" {
		return nil
	}
	var out []*Node
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in == tensor {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// Node returns the node called name, or nil.
func (g *Graph) Node(name string) *Node {
	for _, n := range g.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// ValueInfoOf returns what the graph declares about tensor, looking at its inputs,
// outputs and value_info in that order, or nil.
func (g *Graph) ValueInfoOf(tensor string) *ValueInfo {
	for _, list := range [][]*ValueInfo{g.Inputs, g.Outputs, g.ValueInfo} {
		for _, v := range list {
			if v.Name == tensor {
				return v
			}
		}
	}
	return nil
}

// Attr returns the attribute called name, or nil.
func (n *Node) Attr(name string) *Attribute {
	for _, a := range n.Attributes {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// AttrInt returns the INT attribute called name, or def when the node has none.
func (n *Node) AttrInt(name string, def int64) int64 {
	if a := n.Attr(name); a != nil && a.Type == AttrInt {
		return a.Int
	}
	return def
}

// AttrInts returns the INTS attribute called name, or def when the node has none.
func (n *Node) AttrInts(name string, def []int64) []int64 {
	if a := n.Attr(name); a != nil && a.Type == AttrInts {
		return a.Ints
	}
	return def
}

// AttrFloat returns the FLOAT attribute called name, or def when the node has none.
func (n *Node) AttrFloat(name string, def float32) float32 {
	if a := n.Attr(name); a != nil && a.Type == AttrFloat {
		return a.Float
	}
	return def
}

// AttrFloats returns the FLOATS attribute called name, or def when the node has none.
func (n *Node) AttrFloats(name string, def []float32) []float32 {
	if a := n.Attr(name); a != nil && a.Type == AttrFloats {
		return a.Floats
	}
	return def
}

// AttrString returns the STRING attribute called name, or def when the node has none.
func (n *Node) AttrString(name, def string) string {
	if a := n.Attr(name); a != nil && a.Type == AttrString {
		return a.String
	}
	return def
}

// String names the node for messages: its name and op type.
func (n *Node) String() string {
	return fmt.Sprintf("%q (%s)", n.Name, n.OpType)
}

// NumElements is the number of elements the tensor's dims call for: 1 for a scalar.
// Impossible dims (negative, or too many elements) give -1.
func (t *Tensor) NumElements() int {
	n, err := countElements(t.Dims)
	if err != nil {
		return -1
	}
	return n
}
