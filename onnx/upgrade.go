package onnx

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// The opsets UpgradeOpset converts to.
const (
	MinUpgradeOpset = 13
	MaxUpgradeOpset = 17
)

// UpgradeOpsetOps returns the operators UpgradeOpset handles (those of the op table,
// KnownOps), sorted.
func UpgradeOpsetOps() []string { return KnownOps() }

// schemaAt returns the since_version of op's definition in force at opset v.
func schemaAt(since []int64, v int64) int64 {
	s := int64(0)
	for _, x := range since {
		if x <= v {
			s = x
		}
	}
	return s
}

// UpgradeOpset returns a copy of m rewritten from its ai.onnx opset (7 to 16) to target
// (13 to 17), so that a model exported at an old opset can be written out at one that
// ONNX Runtime and current tools expect. Attributes that became inputs become
// initializers of the new model, named after the node ("<node>_axes", ...):
//
//   - Slice (10): starts, ends and axes become int64 inputs.
//   - Clip (11): min and max become float scalar inputs. Pad (11): pads becomes an int64
//     input, and a non-zero value of constant mode a float scalar input.
//   - Dropout (12): ratio becomes a float scalar input; is_test is dropped (seed, valid
//     from 12 on, is kept). The mask output of a Dropout before opset 10 (then a float
//     tensor, later bool) must not be used.
//   - Unsqueeze, Squeeze and ReduceSum (13): axes becomes an int64 input. Split (13): split
//     becomes an int64 input.
//   - Softmax, LogSoftmax and Hardmax (13): before 13 the input is coerced to a matrix at axis
//     (default 1), from 13 the function runs along that one axis (default -1). When the
//     input's rank is known (from the model's declarations or shape inference) and axis
//     is its last dimension, the node is kept as it is; otherwise it becomes
//     Flatten(axis) -> Softmax(axis=1) -> Reshape to Shape(input), which holds for any
//     rank and batch size.
//   - BatchNormalization (9, 14): spatial (must be 1), consumed_inputs and is_test are
//     dropped, and so are the optional training-mode outputs (running and saved
//     statistics) when nothing uses them: the node comes out in the one-output inference
//     form, which is what opset 14 allows without training_mode. (The toolkit's backend
//     leaves training mode to the caller; the ONNX specification before 14, and ONNX
//     Runtime, read a node listing those outputs as training mode.) Used training-mode
//     outputs are an error when the upgrade crosses opset 14.
//
// The other operators UpgradeOpsetOps lists (every operator of the op table; each
// schema's upgrade rule is in its family's file) changed only in the types they accept,
// or gained attributes or inputs whose defaults keep the old meaning (Shape's start and
// end, Reshape's allowzero, pooling's ceil_mode), and are copied as they are. An operator
// that does not exist yet at the model's opset, any other operator, and any operator of
// another domain are errors naming the node. A model at
// an opset below 7 is upgraded only when each of its operators has the definition it has
// at opset 7.
//
// The ai.onnx opset import is set to target and the IR version raised to at least the
// one target needs (7 for opsets 13 and 14, 8 from 15). Value infos of outputs the
// rewrite drops or retypes are dropped. A model already at target or above comes back
// as an unchanged copy. m is not modified; the new model shares its initializers with m.
func UpgradeOpset(m *Model, target int64) (*Model, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("upgrade opset: no graph")
	}
	if target < MinUpgradeOpset || target > MaxUpgradeOpset {
		return nil, fmt.Errorf("upgrade opset: target opset %d: want %d to %d", target, MinUpgradeOpset, MaxUpgradeOpset)
	}
	from := m.Opset("")
	if from == 0 {
		return nil, errors.New("upgrade opset: the model imports no ai.onnx opset")
	}
	out := cloneModel(m)
	if from >= target {
		return out, nil
	}
	u := &upgrader{from: from, to: target, orig: m, names: graphNames(out.Graph), stale: map[string]bool{}}
	u.used = map[string]bool{}
	for _, n := range out.Graph.Nodes {
		for _, in := range n.Inputs {
			u.used[in] = true
		}
		for _, in := range subgraphInputs(n) {
			u.used[in] = true
		}
	}
	for _, v := range out.Graph.Outputs {
		u.used[v.Name] = true
	}
	nodes := make([]*Node, 0, len(out.Graph.Nodes))
	for _, n := range out.Graph.Nodes {
		repl, err := u.node(n)
		if err != nil {
			return nil, fmt.Errorf("upgrade opset %d to %d: node %q (%s): %w", from, target, n.Name, n.OpType, err)
		}
		nodes = append(nodes, repl...)
	}
	out.Graph.Nodes = nodes
	out.Graph.Initializers = append(out.Graph.Initializers, u.inits...)
	out.Graph.ValueInfo = slices.DeleteFunc(out.Graph.ValueInfo, func(v *ValueInfo) bool { return u.stale[v.Name] })
	found := false
	for i, op := range out.OpsetImports {
		if op.Domain == "" || op.Domain == "ai.onnx" {
			out.OpsetImports[i].Version = target
			found = true
		}
	}
	if !found {
		out.OpsetImports = append(out.OpsetImports, OpsetImport{Version: target})
	}
	ir := int64(7)
	if target >= 15 {
		ir = 8
	}
	out.IRVersion = max(out.IRVersion, ir)
	return out, nil
}

// upgrader rewrites the nodes of one graph from opset from to opset to.
type upgrader struct {
	from, to int64
	orig     *Model          // the model as read, for shape inference
	names    map[string]bool // every node and tensor name in use
	used     map[string]bool // tensors some node or the graph's outputs use
	inits    []*Tensor       // initializers the rewrite adds
	stale    map[string]bool // tensors whose value infos no longer hold

	ranksDone bool
	ranks     map[string]int
}

// graphNames collects the names of g's nodes and tensors.
func graphNames(g *Graph) map[string]bool {
	names := map[string]bool{}
	for _, n := range g.Nodes {
		names[n.Name] = true
		for _, s := range n.Inputs {
			names[s] = true
		}
		for _, s := range n.Outputs {
			names[s] = true
		}
	}
	for _, t := range g.Initializers {
		names[t.Name] = true
	}
	for _, list := range [][]*ValueInfo{g.Inputs, g.Outputs, g.ValueInfo} {
		for _, v := range list {
			names[v.Name] = true
		}
	}
	return names
}

// fresh returns a name based on base that no node or tensor has yet, and reserves it.
func (u *upgrader) fresh(base string) string {
	name := base
	for i := 1; u.names[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	u.names[name] = true
	return name
}

// base is the stem for the names of what the rewrite of n adds.
func base(n *Node) string {
	if n.Name != "" {
		return n.Name
	}
	if len(n.Outputs) > 0 && n.Outputs[0] != "" {
		return n.Outputs[0]
	}
	return n.OpType
}

// constInput adds an initializer holding t, named after n and what, and returns its name.
func (u *upgrader) constInput(n *Node, what string, t *Tensor) string {
	t.Name = u.fresh(base(n) + "_" + what)
	u.inits = append(u.inits, t)
	return t.Name
}

func int64Tensor(v []int64) *Tensor {
	return &Tensor{DataType: Int64, Dims: []int64{int64(len(v))}, Ints: slices.Clone(v)}
}

func floatScalar(v float32) *Tensor {
	return &Tensor{DataType: Float, Floats: []float32{v}}
}

// crosses reports whether the upgrade passes the opset at which a definition changed.
func (u *upgrader) crosses(v int64) bool { return u.from < v && u.to >= v }

// without returns n's attributes other than those named.
func without(attrs []*Attribute, names ...string) []*Attribute {
	return slices.DeleteFunc(slices.Clone(attrs), func(a *Attribute) bool { return slices.Contains(names, a.Name) })
}

// trimInputs drops trailing omitted optional inputs.
func trimInputs(in []string) []string {
	for len(in) > 0 && in[len(in)-1] == "" {
		in = in[:len(in)-1]
	}
	return in
}

// node returns the nodes that replace n (n itself, changed in place: it is a copy).
func (u *upgrader) node(n *Node) ([]*Node, error) {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil, fmt.Errorf("operator %s of domain %q is not supported by the upgrade", n.OpType, n.Domain)
	}
	s := schemas[n.OpType]
	if s == nil {
		return nil, fmt.Errorf("operator %s is not supported by the upgrade (supported: %v)", n.OpType, UpgradeOpsetOps())
	}
	if s.DefinitionAt(u.from) == 0 {
		return nil, fmt.Errorf("operator %s does not exist at opset %d (it was added at opset %d)", n.OpType, u.from, s.since[0])
	}
	if u.from < 7 && s.DefinitionAt(u.from) != s.DefinitionAt(7) {
		return nil, fmt.Errorf("%s of opset %d (definition of opset %d) predates opset 7, the oldest the upgrade handles",
			n.OpType, u.from, s.DefinitionAt(u.from))
	}
	if s.upgrade == nil {
		return []*Node{n}, nil
	}
	return s.upgrade(u, n)
}

// rank returns the rank of tensor in the original model, or -1 when it is not known:
// from its declaration, else from shape inference for the declared input shapes (with
// 1 for symbolic and unknown dimensions; ranks do not depend on them).
func (u *upgrader) rank(tensor string) int {
	if v := u.orig.Graph.ValueInfoOf(tensor); v != nil && v.HasShape {
		return len(v.Shape)
	}
	if !u.ranksDone {
		u.ranksDone = true
		feeds := map[string][]int64{}
		for _, v := range u.orig.Graph.RealInputs() {
			if !v.HasShape {
				continue
			}
			s := make([]int64, len(v.Shape))
			for i, d := range v.Shape {
				s[i] = max(d.Value, 1)
			}
			feeds[v.Name] = s
		}
		if in, err := inferShapes(u.orig, feeds); err == nil {
			u.ranks = map[string]int{}
			for name, d := range in.dims {
				u.ranks[name] = len(d)
			}
		}
	}
	if r, ok := u.ranks[tensor]; ok {
		return r
	}
	return -1
}
