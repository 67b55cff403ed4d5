package onnx

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Blocks splits the model into layer groups at its stage boundaries, where the
// spatial resolution halves: a strided convolution or pooling layer starts a stage,
// with the module it belongs to (a ResNet's layer2 starts at layer2.0's first
// convolution, a MobileNet's features.2 at its expansion convolution, a DenseNet's
// stage at its transition, a VGG block after the previous block's MaxPool): a module
// belongs to the resolution of its output. Stages without parameters join the one
// before. A base with fewer than three stages and a run of at
// least four sibling blocks (a ViT's encoder layers) is split into the part before the
// blocks and up to four groups of blocks, as even as they can be. For a full model, the
// classifier (everything after HeadlessCut) is a last block named "classifier".
//
// Boundaries fall where a single tensor crosses from one stage to the next (CutPoints
// without the constants), never inside a residual block. The modules come from the
// scoped node names PyTorch writes (/layer2/layer2.0/conv1/Conv: see ModulePath);
// without them a strided convolution starts a stage at the tensor just before it.
//
// The blocks are named after the modules where the names say something: stem,
// layer1 ... layer4 for a ResNet; stem, block1 ... block4 for a RegNet. Otherwise a base
// whose first convolution is strided gets stem, stage1, stage2, ...; any other base
// block1, block2, ... (VGG's blocks). Params lists, in order, the parameters (float
// initializers, by the name the nodes use) each block's nodes consume; Identity nodes
// that only copy a parameter go with the first node using it, just before it.
func Blocks(m *Model) []Block {
	if m == nil || m.Graph == nil {
		return nil
	}
	g := m.Graph
	params := paramNames(g)
	inBase := map[*Node]bool{}
	full := false
	if cut, err := HeadlessCut(m); err == nil {
		full = true
		inBase = ancestors(g, cut)
	} else {
		for _, n := range g.Nodes {
			inBase[n] = true
		}
	}
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
	var base []*Node
	classifier := Block{Name: "classifier"}
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
	for _, n := range g.Nodes {
		switch {
		case isAlias[n]:
		case !inBase[n]:
			addNode(&classifier, n)
		default:
			base = append(base, n)
		}
	}
	st := newStager(m, base, params)
	segs := st.segments()
	var blocks []Block
	for i, seg := range segs {
		b := Block{Name: st.names[i]}
		for _, n := range base[seg[0]:seg[1]] {
			addNode(&b, n)
		}
		blocks = append(blocks, b)
	}
	if full && len(classifier.Nodes) > 0 {
		blocks = append(blocks, classifier)
	}
	return blocks
}

// ModulePath returns the PyTorch module path of a node from its scoped name, one
// element per level: "/layer2/layer2.0/conv1/Conv" is [layer2 layer2.0 layer2.0.conv1]
// (the exporter names a Sequential's children after it, "layer2.0", and other children
// by their attribute, "conv1"). A name without scopes gives nil.
func ModulePath(nodeName string) []string {
	if !strings.HasPrefix(nodeName, "/") {
		return nil
	}
	parts := strings.Split(nodeName[1:], "/")
	if len(parts) < 2 {
		return nil
	}
	var path []string
	prev := ""
	for _, p := range parts[:len(parts)-1] {
		if p == "" {
			return nil
		}
		full := p
		if prev != "" {
			parent := path[len(path)-1]
			if rest, ok := strings.CutPrefix(p, prev+"."); ok {
				full = parent + "." + rest
			} else {
				full = parent + "." + p
			}
		}
		path = append(path, full)
		prev = p
	}
	return path
}

// stager finds the stages of a base: nodes are the base's nodes in graph order
// (without the Identity copies of parameters).
type stager struct {
	nodes  []*Node
	params map[string]*Tensor
	paths  [][]string
	// cut[i] says that one activation alone crosses from nodes[:i+1] to the rest.
	cut   []bool
	names []string
}

func newStager(m *Model, nodes []*Node, params map[string]*Tensor) *stager {
	st := &stager{nodes: nodes, params: params, paths: make([][]string, len(nodes))}
	for i, n := range nodes {
		st.paths[i] = ModulePath(n.Name)
	}
	st.cut = cutAfter(m, nodes, params)
	return st
}

// cutAfter marks the positions after which exactly one activation (not a parameter or
// a constant) computed so far, or a real input, is still needed.
func cutAfter(m *Model, nodes []*Node, params map[string]*Tensor) []bool {
	konst := map[string]bool{}
	for name := range params {
		konst[name] = true
	}
	for _, t := range m.Graph.Initializers {
		konst[t.Name] = true
	}
	if si := symbolicShapes(m); si != nil {
		for name := range si.consts {
			konst[name] = true
		}
	}
	for _, n := range nodes {
		if n.OpType == "Constant" {
			for _, o := range n.Outputs {
				konst[o] = true
			}
		}
	}
	last := map[string]int{}
	for i, n := range nodes {
		for _, in := range append(slices.Clone(n.Inputs), subgraphInputs(n)...) {
			if in != "" && !konst[in] {
				last[in] = i
			}
		}
	}
	if len(nodes) > 0 {
		for _, o := range nodes[len(nodes)-1].Outputs {
			last[o] = len(nodes)
		}
	}
	live := map[string]bool{}
	for _, in := range m.Graph.RealInputs() {
		if _, used := last[in.Name]; used {
			live[in.Name] = true
		}
	}
	cut := make([]bool, len(nodes))
	for i, n := range nodes {
		for _, o := range n.Outputs {
			if o != "" && !konst[o] && last[o] > i {
				live[o] = true
			}
		}
		for t := range live {
			if last[t] <= i {
				delete(live, t)
			}
		}
		cut[i] = len(live) == 1
	}
	return cut
}

// downsamples reports whether n is a strided convolution or pooling layer.
func downsamples(n *Node) bool {
	switch n.OpType {
	case "Conv", "MaxPool", "AveragePool", "LpPool":
	default:
		return false
	}
	for _, s := range n.AttrInts("strides", nil) {
		if s > 1 {
			return true
		}
	}
	return false
}

// blockOf returns the first and last index of the contiguous run of nodes in the
// module that node i belongs to at the block level (the second level of its module
// path: layer2.0, features.2), skipping nodes without a module path.
func (st *stager) blockOf(i int) (first, last int) {
	p := st.paths[i]
	if p == nil {
		return i, i
	}
	prefix := p[:min(2, len(p))]
	in := func(j int) bool {
		q := st.paths[j]
		return len(q) >= len(prefix) && slices.Equal(q[:len(prefix)], prefix)
	}
	first, last = i, i
	for j := i - 1; j >= 0; j-- {
		if st.paths[j] == nil {
			continue
		}
		if !in(j) {
			break
		}
		first = j
	}
	for j := i + 1; j < len(st.nodes); j++ {
		if st.paths[j] == nil {
			continue
		}
		if !in(j) {
			break
		}
		last = j
	}
	return first, last
}

// hasParams reports whether a node reads a parameter.
func (st *stager) hasParams(n *Node) bool {
	for _, in := range n.Inputs {
		if st.params[in] != nil {
			return true
		}
	}
	return false
}

// segments returns the stages as [start, end) ranges of st.nodes, and sets st.names.
func (st *stager) segments() [][2]int {
	n := len(st.nodes)
	if n == 0 {
		return nil
	}
	starts := map[int]bool{}
	for i, node := range st.nodes {
		if !downsamples(node) {
			continue
		}
		// The stage starts with the module of the strided layer: at the last cut before
		// it (a module belongs to the resolution of its output).
		first, _ := st.blockOf(i)
		for j := first - 1; j >= 0; j-- {
			if st.cut[j] {
				starts[j+1] = true
				break
			}
		}
	}
	segs := st.split(starts)
	if st.paramSegments(segs) < 3 {
		if even := st.evenBlocks(segs); even != nil {
			segs = even
		}
	}
	st.names = st.name(segs)
	return segs
}

// split turns stage starts into ranges and merges the ranges without parameters into
// the one before (the first into the one after).
func (st *stager) split(starts map[int]bool) [][2]int {
	var idx []int
	for s := range starts {
		if s > 0 && s < len(st.nodes) {
			idx = append(idx, s)
		}
	}
	slices.Sort(idx)
	var segs [][2]int
	lo := 0
	for _, s := range append(idx, len(st.nodes)) {
		segs = append(segs, [2]int{lo, s})
		lo = s
	}
	var out [][2]int
	pending := -1 // start of parameterless ranges before the first one with parameters
	for _, s := range segs {
		has := slices.ContainsFunc(st.nodes[s[0]:s[1]], st.hasParams)
		switch {
		case has && pending >= 0:
			out = append(out, [2]int{pending, s[1]})
			pending = -1
		case has:
			out = append(out, s)
		case len(out) > 0:
			out[len(out)-1][1] = s[1]
		case pending < 0:
			pending = s[0]
		}
	}
	if pending >= 0 {
		out = append(out, [2]int{pending, len(st.nodes)})
	}
	return out
}

func (st *stager) paramSegments(segs [][2]int) int {
	k := 0
	for _, s := range segs {
		if slices.ContainsFunc(st.nodes[s[0]:s[1]], st.hasParams) {
			k++
		}
	}
	return k
}

// evenBlocks splits the stage with the most parameter-reading nodes at a run of at least
// four sibling modules that are blocks (modules with one parent whose nodes read
// parameters more than once each: encoder.layers.encoder_layer_0, _1, ...) into what
// comes before the run and up to four groups of consecutive blocks; what follows the
// run joins the last group. It returns nil when there is no such run.
func (st *stager) evenBlocks(segs [][2]int) [][2]int {
	best, most := -1, 0
	for i, s := range segs {
		k := 0
		for _, n := range st.nodes[s[0]:s[1]] {
			if st.hasParams(n) {
				k++
			}
		}
		if k > most {
			best, most = i, k
		}
	}
	if best < 0 {
		return nil
	}
	lo, hi := segs[best][0], segs[best][1]
	for depth := 2; depth <= 4; depth++ {
		// Runs of nodes sharing their module path up to depth, among nodes that have
		// that depth; a run's parent is its path up to depth-1.
		type run struct {
			key, parent string
			first       int
			params      int // nodes of the run that read parameters
		}
		var runs []run
		for i := lo; i < hi; i++ {
			p := st.paths[i]
			if len(p) < depth {
				continue
			}
			key := p[depth-1]
			if len(runs) == 0 || runs[len(runs)-1].key != key {
				runs = append(runs, run{key: key, parent: p[depth-2], first: i})
			}
			if st.hasParams(st.nodes[i]) {
				runs[len(runs)-1].params++
			}
		}
		// The longest stretch of consecutive runs with one parent and distinct keys.
		bestFrom, bestLen := 0, 0
		for a := 0; a < len(runs); {
			b := a + 1
			seen := map[string]bool{runs[a].key: true}
			// Blocks, not layers: each reads parameters in more than one node.
			if runs[a].params < 2 {
				a++
				continue
			}
			for b < len(runs) && runs[b].parent == runs[a].parent && !seen[runs[b].key] && runs[b].params >= 2 {
				seen[runs[b].key] = true
				b++
			}
			if b-a > bestLen {
				bestFrom, bestLen = a, b-a
			}
			a = b
		}
		if bestLen < 4 {
			continue
		}
		blocks := runs[bestFrom : bestFrom+bestLen]
		groups := min(4, len(blocks))
		var starts []int
		at := 0
		for k := 0; k < groups; k++ {
			starts = append(starts, blocks[at].first)
			at += len(blocks) / groups
			if k < len(blocks)%groups {
				at++
			}
		}
		out := slices.Clone(segs[:best])
		prev := lo
		for _, s := range starts {
			// Snap to the last cut before the block starts.
			for j := s - 1; j >= prev; j-- {
				if st.cut[j] {
					s = j + 1
					break
				}
			}
			if s > prev {
				out = append(out, [2]int{prev, s})
				prev = s
			}
		}
		out = append(out, [2]int{prev, hi})
		return append(out, segs[best+1:]...)
	}
	return nil
}

// groupName is what a group name must look like (it is a config key).
var groupName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// name gives the stages their names (see Blocks).
func (st *stager) name(segs [][2]int) []string {
	names := make([]string, len(segs))
	stem := false
	for _, n := range st.nodes {
		if n.OpType == "Conv" {
			stem = downsamples(n)
			break
		}
	}
	stem = stem && len(segs) >= 3
	from := 0
	if stem {
		names[0], from = "stem", 1
	}
	for depth := 1; depth <= 2; depth++ {
		// A stage is named after the first module (at this depth) of its nodes that
		// read parameters, or the second when the first is a small module that
		// downsamples, under a third of the stage's parameters (DenseNet's transition1
		// begins the stage of denseblock2). The names must be distinct, and no module
		// may lie in two stages.
		owner := map[string]int{}
		strided := map[string]bool{}
		for _, n := range st.nodes {
			if p := ModulePath(n.Name); len(p) >= depth && downsamples(n) {
				strided[p[depth-1]] = true
			}
		}
		ok := true
		for i := from; i < len(segs) && ok; i++ {
			var keys []string
			size := map[string]int{}
			total := 0
			for _, n := range st.nodes[segs[i][0]:segs[i][1]] {
				p := ModulePath(n.Name)
				if !st.hasParams(n) || len(p) < depth {
					continue
				}
				key := p[depth-1]
				if o, seen := owner[key]; seen && o != i {
					ok = false
					break
				}
				owner[key] = i
				if !slices.Contains(keys, key) {
					keys = append(keys, key)
				}
				for _, in := range n.Inputs {
					if t := st.params[in]; t != nil {
						size[key] += t.NumElements()
						total += t.NumElements()
					}
				}
			}
			if len(keys) == 0 {
				ok = false
				break
			}
			first := keys[0]
			if len(keys) > 1 && strided[first] && 3*size[first] < total {
				first = keys[1]
			}
			local := first
			if depth > 1 {
				if j := strings.LastIndex(first, "."); j >= 0 {
					local = first[j+1:]
				}
			}
			local = strings.ToLower(local)
			if !groupName.MatchString(local) || slices.Contains(names, local) || local == "head" || local == "classifier" {
				ok = false
				break
			}
			names[i] = local
		}
		if ok {
			return names
		}
		for i := from; i < len(names); i++ {
			names[i] = ""
		}
	}
	for i := from; i < len(names); i++ {
		if stem {
			names[i] = fmt.Sprintf("stage%d", i)
		} else {
			names[i] = fmt.Sprintf("block%d", i+1)
		}
	}
	return names
}
