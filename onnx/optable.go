package onnx

import (
	"fmt"
	"slices"
)

// OpSchema is what the toolkit knows about one operator of the default (ai.onnx)
// domain apart from computing it: the opsets at which its definition changed, the
// rule that infers its outputs' shapes (folding constants), which of its inputs a
// gradient flows through, and how UpgradeOpset rewrites it across those opsets.
//
// The schemas form the op table. Each op family has one file here (ops_shape.go,
// ops_elementwise.go, ...) that defines its schemas, and the backend's file of the same
// family (backend/ops_shape.go, ...) registers its kernels against them, so that what is
// known about an op is in those two files and nowhere else. The table is filled by the
// families' init functions and never changed afterwards.
type OpSchema struct {
	name string
	// since lists the opsets at which the definition changed (onnx.defs' since_version),
	// oldest first.
	since []int64
	// diff lists the inputs a gradient flows through to something trainable; nil means
	// every input. Running statistics, shapes, indices and bounds are not among them.
	diff []int
	// noDiff marks an op through which no gradient flows at all (Shape, comparisons).
	noDiff bool
	infer  func(nodeCtx) error
	// upgrade rewrites a node for UpgradeOpset (it is a copy the function may change);
	// nil keeps the node as it is: the definitions differ in types only, or in
	// additions whose defaults keep the old meaning.
	upgrade func(*upgrader, *Node) ([]*Node, error)
}

// schemas is the op table, by op type.
var schemas = map[string]*OpSchema{}

// define adds schemas to the table; called from the op families' init functions.
func define(list ...*OpSchema) {
	for _, s := range list {
		if _, dup := schemas[s.name]; dup {
			panic("onnx: op defined twice: " + s.name)
		}
		if s.infer == nil || len(s.since) == 0 {
			panic("onnx: op " + s.name + " has no shape rule or no opset history")
		}
		schemas[s.name] = s
	}
}

// v is an opset history, for the schema literals.
func v(since ...int64) []int64 { return since }

// Schema returns the schema of an ai.onnx operator, or nil when the toolkit does not know
// it.
func Schema(opType string) *OpSchema { return schemas[opType] }

// SchemaOf returns the schema of a node's operator, or nil for an unknown operator or one
// of another domain.
func SchemaOf(n *Node) *OpSchema {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil
	}
	return schemas[n.OpType]
}

// KnownOps lists the operators that have a schema, sorted.
func KnownOps() []string {
	names := make([]string, 0, len(schemas))
	for name := range schemas {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Name returns the operator's type.
func (s *OpSchema) Name() string { return s.name }

// Since returns the opsets at which the operator's definition changed, oldest first.
func (s *OpSchema) Since() []int64 { return slices.Clone(s.since) }

// DefinitionAt returns the since_version of the definition in force at opset v, or 0
// when the operator does not exist yet at v.
func (s *OpSchema) DefinitionAt(v int64) int64 { return schemaAt(s.since, v) }

// IsDifferentiable reports whether a gradient flows through input i to the values
// that feed it (weights, activations): not through shapes, indices, bounds or
// BatchNormalization's running statistics.
func (s *OpSchema) IsDifferentiable(i int) bool {
	if s.noDiff {
		return false
	}
	return s.diff == nil || slices.Contains(s.diff, i)
}

// DifferentiableInputs lists the inputs of n (present ones only) that IsDifferentiable
// admits.
func (s *OpSchema) DifferentiableInputs(n *Node) []int {
	var out []int
	for i, in := range n.Inputs {
		if in != "" && s.IsDifferentiable(i) {
			out = append(out, i)
		}
	}
	return out
}

// onlyData is the diff list of an op whose gradient flows through its first input
// alone (the others are shapes, indices, bounds or ratios).
var onlyData = []int{0}

// upgradeAt returns an upgrade rule that applies f only when the upgrade crosses opset
// at (where the definition changed as f undoes).
func upgradeAt(at int64, f func(*upgrader, *Node) ([]*Node, error)) func(*upgrader, *Node) ([]*Node, error) {
	return func(u *upgrader, n *Node) ([]*Node, error) {
		if !u.crosses(at) {
			return []*Node{n}, nil
		}
		return f(u, n)
	}
}

// node infers the outputs of one node.
func (in *inferer) node(n *Node) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return fmt.Errorf("operator %s of domain %q is not supported by shape inference", n.OpType, n.Domain)
	}
	s := schemas[n.OpType]
	if s == nil {
		return fmt.Errorf("operator %s is not supported by shape inference", n.OpType)
	}
	return s.infer(nodeCtx{in, n})
}

// DifferentiableParams lists the float initializers of m that a gradient can reach
// (through an input its schema calls differentiable), in initializer order: the
// parameters fine-tuning trains, without BatchNormalization's running statistics.
func DifferentiableParams(m *Model) []string {
	if m == nil || m.Graph == nil {
		return nil
	}
	reached := map[string]bool{}
	for _, n := range m.Graph.Nodes {
		if s := SchemaOf(n); s != nil {
			for _, i := range s.DifferentiableInputs(n) {
				reached[n.Inputs[i]] = true
			}
		}
	}
	var out []string
	for _, t := range m.Graph.Initializers {
		if t.DataType == Float && reached[t.Name] {
			out = append(out, t.Name)
		}
	}
	return out
}
