package onnx

// CutPoint is a place where a graph splits into a prefix and a suffix that meet in one
// tensor: the prefix computes Tensor from the graph's inputs, and the suffix computes
// the graph's outputs from Tensor and initializers alone. A frozen prefix computes the
// same Tensor for the same input every time, which is what a feature cache stores.
type CutPoint struct {
	// Tensor is the one activation that crosses the cut.
	Tensor string
	// Node is the index in Graph.Nodes of the prefix's last node.
	Node int
	// PrefixParams are the initializers the prefix's nodes read, in first-use order.
	PrefixParams []string
	// PrefixOps are the op types of the prefix's nodes, in node order.
	PrefixOps []string
}

// CutPoints lists the cut points of m's main graph, earliest first: after each node
// (in the graph's topological order) where exactly one activation computed so far (or a
// real input) is still needed later, that activation is a cut point. A graph with one
// input and a chain of layers has one after every layer; a residual network has them
// at the ends of its blocks, where the skip connections have joined.
func CutPoints(m *Model) []CutPoint {
	g := m.Graph
	if g == nil {
		return nil
	}
	inits := map[string]bool{}
	for _, t := range g.Initializers {
		inits[t.Name] = true
	}
	// lastUse[t] is the index of the last node that reads t; graph outputs are read
	// after every node.
	lastUse := map[string]int{}
	for i, n := range g.Nodes {
		for _, in := range append(append([]string(nil), n.Inputs...), subgraphInputs(n)...) {
			if in != "" && !inits[in] {
				lastUse[in] = i
			}
		}
	}
	for _, o := range g.Outputs {
		lastUse[o.Name] = len(g.Nodes)
	}
	live := map[string]bool{}
	for _, in := range g.RealInputs() {
		if lastUse[in.Name] > -1 {
			live[in.Name] = true
		}
	}
	var cuts []CutPoint
	var params, ops []string
	seenParam := map[string]bool{}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if inits[in] && !seenParam[in] {
				seenParam[in] = true
				params = append(params, in)
			}
		}
		ops = append(ops, n.OpType)
		for _, o := range n.Outputs {
			if o != "" && lastUse[o] > i {
				live[o] = true
			}
		}
		for t := range live {
			if lastUse[t] <= i {
				delete(live, t)
			}
		}
		if len(live) != 1 || i == len(g.Nodes)-1 {
			continue
		}
		for t := range live {
			if !producedBefore(g, t, i) {
				continue // still the graph's input: nothing to cache
			}
			cuts = append(cuts, CutPoint{
				Tensor: t, Node: i,
				PrefixParams: append([]string(nil), params...),
				PrefixOps:    append([]string(nil), ops...),
			})
		}
	}
	return cuts
}

// producedBefore reports whether a node at or before index i computes t.
func producedBefore(g *Graph, t string, i int) bool {
	for _, n := range g.Nodes[:i+1] {
		for _, o := range n.Outputs {
			if o == t {
				return true
			}
		}
	}
	return false
}
