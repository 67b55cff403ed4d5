package onnx

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
)

// prepareGraph names unnamed nodes, checks that every node input is available, and
// puts the nodes in topological order when the file does not have them in one. top is
// false for subgraphs, whose nodes may use values of the enclosing graphs: there, an
// input nobody in the subgraph produces is taken to come from outside.
func prepareGraph(g *Graph, top bool) error {
	nameNodes(g)

	// What is available before any node runs.
	avail := make(map[string]bool, len(g.Inputs)+len(g.Initializers))
	for _, v := range g.Inputs {
		avail[v.Name] = true
	}
	seenInit := make(map[string]bool, len(g.Initializers))
	for _, t := range g.Initializers {
		if seenInit[t.Name] {
			return fmt.Errorf("initializer %q is defined twice", t.Name)
		}
		seenInit[t.Name] = true
		avail[t.Name] = true
	}

	// Who produces what.
	producer := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		if n.OpType == "" {
			return fmt.Errorf("node %q has no op type", n.Name)
		}
		for _, out := range n.Outputs {
			if out == "" {
				continue
			}
			if j, ok := producer[out]; ok {
				if j == i {
					return fmt.Errorf("node %q (%s): output %q is listed twice", n.Name, n.OpType, out)
				}
				p := g.Nodes[j]
				return fmt.Errorf("node %q (%s): output %q is already produced by node %q (%s)",
					n.Name, n.OpType, out, p.Name, p.OpType)
			}
			if top && avail[out] {
				return fmt.Errorf("node %q (%s): output %q is also a graph input or initializer",
					n.Name, n.OpType, out)
			}
			producer[out] = i
		}
	}

	// Every input must be available or produced by some node.
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in == "" || avail[in] {
				continue
			}
			if _, ok := producer[in]; !ok && top {
				return fmt.Errorf("node %q (%s): input %q is not produced by any node, initializer or graph input",
					n.Name, n.OpType, in)
			}
		}
	}
	if top {
		for _, v := range g.Outputs {
			if _, ok := producer[v.Name]; !ok && !avail[v.Name] {
				return fmt.Errorf("graph output %q is not produced by any node, initializer or graph input", v.Name)
			}
		}
	}
	return sortNodes(g, avail, producer)
}

// nameNodes gives every unnamed node the name "<OpType>_<index>", made unique with a
// suffix if another node already has it.
func nameNodes(g *Graph) {
	used := make(map[string]bool, len(g.Nodes))
	missing := false
	for _, n := range g.Nodes {
		if n.Name == "" {
			missing = true
		} else {
			used[n.Name] = true
		}
	}
	if !missing {
		return
	}
	for i, n := range g.Nodes {
		if n.Name != "" {
			continue
		}
		base := fmt.Sprintf("%s_%d", n.OpType, i)
		name := base
		for k := 1; used[name]; k++ {
			name = fmt.Sprintf("%s_%d", base, k)
		}
		used[name] = true
		n.Name = name
	}
}

// sortNodes reorders g.Nodes topologically, keeping the file's order among nodes that
// are ready at the same time, so an already ordered graph is left as it is.
func sortNodes(g *Graph, avail map[string]bool, producer map[string]int) error {
	nodes := g.Nodes
	// deps[i]: how many inputs of node i are produced by nodes not yet placed.
	deps := make([]int, len(nodes))
	users := make([][]int, len(nodes))
	ordered := true
	for i, n := range nodes {
		for _, in := range n.Inputs {
			if in == "" || avail[in] {
				continue
			}
			j, ok := producer[in]
			if !ok {
				continue // from an enclosing graph
			}
			deps[i]++
			users[j] = append(users[j], i)
			if j >= i {
				ordered = false
			}
		}
	}
	if ordered {
		return nil
	}
	ready := &intHeap{}
	for i := range nodes {
		if deps[i] == 0 {
			heap.Push(ready, i)
		}
	}
	out := make([]*Node, 0, len(nodes))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		out = append(out, nodes[i])
		for _, u := range users[i] {
			deps[u]--
			if deps[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	if len(out) < len(nodes) {
		return cycleError(nodes, deps, avail, producer)
	}
	g.Nodes = out
	return nil
}

// cycleError describes one cycle among the nodes that could not be placed.
func cycleError(nodes []*Node, deps []int, avail map[string]bool, producer map[string]int) error {
	start := -1
	for i := range nodes {
		if deps[i] > 0 {
			start = i
			break
		}
	}
	// Walk backwards from an unplaced node through unplaced producers until a node
	// repeats: the repeated stretch is a cycle.
	pos := map[int]int{}
	var path []int
	for i := start; ; {
		if p, ok := pos[i]; ok {
			path = path[p:]
			break
		}
		pos[i] = len(path)
		path = append(path, i)
		next := -1
		for _, in := range nodes[i].Inputs {
			if in == "" || avail[in] {
				continue
			}
			if j, ok := producer[in]; ok && deps[j] > 0 {
				next = j
				break
			}
		}
		if next < 0 { // cannot happen: an unplaced node waits on an unplaced one
			break
		}
		i = next
	}
	// path runs against the data flow; print it along the flow, starting at the node
	// that comes first in the file.
	slices.Reverse(path)
	first := 0
	for k := range path {
		if path[k] < path[first] {
			first = k
		}
	}
	path = append(path[first:], path[:first]...)
	names := make([]string, 0, len(path)+1)
	for _, i := range path {
		n := nodes[i]
		names = append(names, fmt.Sprintf("%q (%s)", n.Name, n.OpType))
	}
	names = append(names, names[0])
	return fmt.Errorf("the graph has a cycle: %s", strings.Join(names, " -> "))
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
