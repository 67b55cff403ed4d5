package onnx

import (
	"errors"
	"fmt"
	"slices"
)

// Head is the classifier of a full model, as FindHead finds it.
type Head struct {
	// Cut is the tensor the classifier reads: the output of the model's base.
	Cut string
	// Pool is how the classifier turns the base's output into one feature vector per
	// example: PoolAvg (global average pooling, or a mean over the spatial axes),
	// PoolMax, PoolFlatten (the feature map flattened, as VGG and AlexNet do), or
	// PoolToken (the base's output is already [N D]: a transformer's class token, which
	// the base selects).
	Pool string
}

// The pooling kinds of Head.Pool.
const (
	PoolAvg     = "avg"
	PoolMax     = "max"
	PoolFlatten = "flatten"
	PoolToken   = "token"
)

// ErrHeadless is wrapped by HeadlessCut's error for a model with no classifier.
var ErrHeadless = errors.New("already headless")

// HeadlessCut returns FindHead's cut: the tensor to cut a full model at for its base.
func HeadlessCut(m *Model) (string, error) {
	h, err := FindHead(m)
	return h.Cut, err
}

// FindHead finds where a classifier network's head starts: just before its final
// pooling (global average or max pooling, a mean over the spatial axes, or the flatten
// of a feature map), which is followed by fully connected layers (Gemm or MatMul, with
// activations, dropout, normalization in between), or just after the selection of a
// transformer's class token (Gather of one position of a [N T D] sequence). It walks
// back from the graph's first output along the data path. A 1x1 convolution with one
// output channel per class just before the pooling (SqueezeNet's classifier) belongs
// to the head; so does a Pad feeding only the pooling (PyTorch's export of a ceil-mode
// average pool).
//
// A model whose walk meets no recognisable head falls back to the first Flatten,
// Reshape, Gemm, MatMul or pooling layer after the last Conv. It is an error when the
// model has no Conv, or nothing after its last Conv is a classifier (the error then
// wraps ErrHeadless, as it does for a model that ends in a feature map).
func FindHead(m *Model) (Head, error) {
	if m == nil || m.Graph == nil {
		return Head{}, errors.New("headless cut: no graph")
	}
	g := m.Graph
	if !slices.ContainsFunc(g.Nodes, func(n *Node) bool { return n.OpType == "Conv" }) {
		return Head{}, errors.New("headless cut: the model has no Conv layer")
	}
	hw := newHeadWalk(m)
	if len(g.Outputs) > 0 && hw.rank(g.Outputs[0].Name) == 4 {
		return Head{}, fmt.Errorf("headless cut: the model ends in a feature map %q: %w", g.Outputs[0].Name, ErrHeadless)
	}
	if len(g.Outputs) > 0 {
		switch h, found := hw.walk(g.Outputs[0].Name); found {
		case headFound:
			return h, nil
		case headAbsent:
			return Head{}, fmt.Errorf("headless cut: %q is already the output of the pooling, with no classifier after it: %w", h.Cut, ErrHeadless)
		}
	}
	return forwardHeadlessCut(m)
}

// headWalk holds what the walk back from the output needs: producers, constants and
// shapes (nil where shape inference fails).
type headWalk struct {
	g        *Graph
	producer map[string]*Node
	si       *symbolic
	consts   map[string]bool
}

func newHeadWalk(m *Model) *headWalk {
	g := m.Graph
	hw := &headWalk{g: g, producer: producers(g), si: symbolicShapes(m), consts: map[string]bool{}}
	for _, t := range g.Initializers {
		hw.consts[t.Name] = true
	}
	for _, n := range g.Nodes {
		if n.OpType == "Constant" {
			for _, o := range n.Outputs {
				hw.consts[o] = true
			}
		}
	}
	if hw.si != nil {
		for name := range hw.si.consts {
			hw.consts[name] = true
		}
	}
	return hw
}

// dims returns a tensor's shape (batch dimension symbolic), or nil when not known.
func (hw *headWalk) dims(t string) []Dim {
	if hw.si != nil {
		if d, ok := hw.si.shapes[t]; ok {
			return d
		}
	}
	if v := hw.g.ValueInfoOf(t); v != nil && v.HasShape {
		return v.Shape
	}
	return nil
}

func (hw *headWalk) rank(t string) int {
	if d := hw.dims(t); d != nil {
		return len(d)
	}
	return -1
}

// dataInput is the input of n the walk follows: the first that is not a constant.
func (hw *headWalk) dataInput(n *Node) string {
	for _, in := range n.Inputs {
		if in != "" && !hw.consts[in] {
			return in
		}
	}
	if len(n.Inputs) > 0 {
		return n.Inputs[0]
	}
	return ""
}

// headOps are the ops a classifier head is made of besides its fully connected layers
// and its pooling.
var headOps = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Relu": true, "LeakyRelu": true, "Sigmoid": true,
	"Tanh": true, "HardSwish": true, "HardSigmoid": true, "Clip": true, "Elu": true, "Selu": true,
	"Gelu": true, "Erf": true, "Dropout": true, "Identity": true, "Softmax": true, "LogSoftmax": true,
	"Flatten": true, "Reshape": true, "Squeeze": true, "Unsqueeze": true, "Transpose": true,
	"LayerNormalization": true, "BatchNormalization": true, "ReduceMean": true, "Pow": true,
	"Sqrt": true, "Cast": true, "PRelu": true,
}

// spatialReduce reports whether n reduces the spatial axes of a 4-D (NCHW) tensor
// with a ReduceMean or ReduceMax (PyTorch's x.mean([2, 3])), and which pooling it is.
func (hw *headWalk) spatialReduce(n *Node) (string, bool) {
	if n.OpType != "ReduceMean" && n.OpType != "ReduceMax" || len(n.Inputs) == 0 || hw.rank(n.Inputs[0]) != 4 {
		return "", false
	}
	axes := n.AttrInts("axes", nil)
	slices.Sort(axes)
	if !slices.Equal(axes, []int64{2, 3}) && !slices.Equal(axes, []int64{-2, -1}) {
		return "", false
	}
	if n.OpType == "ReduceMax" {
		return PoolMax, true
	}
	return PoolAvg, true
}

// classToken reports whether n selects one position of a [N T D] sequence (a ViT's
// x[:, 0]).
func (hw *headWalk) classToken(n *Node) bool {
	if n.OpType != "Gather" || n.AttrInt("axis", 0) != 1 || len(n.Inputs) != 2 || hw.rank(n.Inputs[0]) != 3 {
		return false
	}
	idx := hw.dims(n.Inputs[1])
	return idx != nil && len(idx) == 0 && hw.consts[n.Inputs[1]]
}

// What the walk back from the output finds.
type headStatus int

const (
	headUnknown headStatus = iota // a node no head is made of: FindHead falls back
	headFound                     // the pooling, with a classifier after it
	headAbsent                    // the pooling (or class token), and nothing after it
)

func status(classifier bool) headStatus {
	if classifier {
		return headFound
	}
	return headAbsent
}

// walk follows the data path back from the output t and returns the head it finds.
func (hw *headWalk) walk(t string) (Head, headStatus) {
	classifier := false
	for steps := 0; steps <= len(hw.g.Nodes); steps++ {
		n := hw.producer[t]
		if n == nil {
			return Head{}, headUnknown
		}
		switch {
		case n.OpType == "GlobalAveragePool" || n.OpType == "GlobalMaxPool":
			pool := PoolAvg
			if n.OpType == "GlobalMaxPool" {
				pool = PoolMax
			}
			return hw.poolHead(n, pool, classifier)
		case hw.classToken(n):
			return Head{Cut: n.Outputs[0], Pool: PoolToken}, status(classifier)
		case n.OpType == "Gemm" || n.OpType == "MatMul":
			classifier = true
		case n.OpType == "Flatten" || n.OpType == "Reshape":
			if d := hw.dims(n.Inputs[0]); len(d) == 4 && hw.rank(n.Outputs[0]) == 2 && !(d[2].Value == 1 && d[3].Value == 1) {
				// A feature map flattened (a [N C 1 1] one is pooled already and the walk
				// goes on): after global pooling (the next step finds it), after an
				// average pool (PyTorch's export of VGG's adaptive pooling), or as it is
				// (VGG, AlexNet).
				p := hw.producer[n.Inputs[0]]
				if p != nil && (p.OpType == "GlobalAveragePool" || p.OpType == "GlobalMaxPool") {
					break
				}
				if p != nil && p.OpType == "AveragePool" {
					return Head{Cut: hw.beforePad(p.Inputs[0]), Pool: PoolFlatten}, status(classifier)
				}
				return Head{Cut: n.Inputs[0], Pool: PoolFlatten}, status(classifier)
			}
		default:
			if pool, ok := hw.spatialReduce(n); ok {
				return hw.poolHead(n, pool, classifier)
			}
			if !headOps[n.OpType] {
				return Head{}, headUnknown
			}
		}
		t = hw.dataInput(n)
	}
	return Head{}, headUnknown
}

// poolHead is the head that starts at the global pooling node p, or at the 1x1
// convolution classifier before it.
func (hw *headWalk) poolHead(p *Node, pool string, classifier bool) (Head, headStatus) {
	cut := p.Inputs[0]
	// SqueezeNet: Dropout -> Conv 1x1 (one channel per class) -> Relu -> pooling.
	t := cut
	for steps := 0; steps < 4; steps++ {
		n := hw.producer[t]
		if n == nil {
			break
		}
		if n.OpType == "Conv" && hw.convClassifier(n) {
			cut, classifier = hw.dataInput(n), true
			if d := hw.producer[cut]; d != nil && d.OpType == "Dropout" {
				cut = d.Inputs[0]
			}
			break
		}
		if !slices.Contains([]string{"Relu", "Dropout", "Identity", "Softmax", "LogSoftmax"}, n.OpType) {
			break
		}
		t = n.Inputs[0]
	}
	return Head{Cut: cut, Pool: pool}, status(classifier)
}

// convClassifier reports whether a Conv has 1x1 kernels and as many output channels
// as the model's first output has classes.
func (hw *headWalk) convClassifier(n *Node) bool {
	w := hw.dims(n.Inputs[1])
	out := hw.dims(hw.g.Outputs[0].Name)
	if len(w) != 4 || w[2].Value != 1 || w[3].Value != 1 || len(out) != 2 {
		return false
	}
	return out[1].Value > 0 && w[0].Value == out[1].Value
}

// beforePad steps back over a Pad that feeds only its consumer.
func (hw *headWalk) beforePad(cut string) string {
	for {
		p := hw.producer[cut]
		if p == nil || p.OpType != "Pad" || len(p.Inputs) == 0 || len(hw.g.Consumers(cut)) != 1 {
			return cut
		}
		cut = p.Inputs[0]
	}
}

// forwardClassifierOp reports whether op starts the classifier when it follows the
// last Conv.
func forwardClassifierOp(op string) bool {
	switch op {
	case "Flatten", "Reshape", "Gemm", "MatMul", "GlobalAveragePool", "GlobalMaxPool", "AveragePool":
		return true
	}
	return false
}

// forwardHeadlessCut is FindHead's fallback: the data input of the first Flatten,
// Reshape, Gemm, MatMul, GlobalAveragePool, GlobalMaxPool or AveragePool after the last
// Conv (a Shape node that starts a Shape -> ... -> Reshape flatten chain counts as its
// Reshape, and a Pad feeding only the pooling layer goes with it).
func forwardHeadlessCut(m *Model) (Head, error) {
	nodes := m.Graph.Nodes
	last := -1
	for i, n := range nodes {
		if n.OpType == "Conv" {
			last = i
		}
	}
	hw := &headWalk{g: m.Graph, producer: producers(m.Graph)}
	for _, n := range nodes[last+1:] {
		if len(n.Inputs) == 0 || n.Inputs[0] == "" {
			continue
		}
		if forwardClassifierOp(n.OpType) || (n.OpType == "Shape" && leadsToReshape(m.Graph, n)) {
			pool := PoolFlatten
			switch n.OpType {
			case "GlobalAveragePool":
				pool = PoolAvg
			case "GlobalMaxPool":
				pool = PoolMax
			}
			return Head{Cut: hw.beforePad(n.Inputs[0]), Pool: pool}, nil
		}
	}
	return Head{}, fmt.Errorf("headless cut: no classifier after the last Conv %q: %w", nodes[last].Name, ErrHeadless)
}

// leadsToReshape reports whether a Shape node's output feeds, through shape
// arithmetic, the shape input of a Reshape of the same tensor.
func leadsToReshape(g *Graph, shape *Node) bool {
	seen := map[string]bool{}
	stack := []string{shape.Outputs[0]}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[t] {
			continue
		}
		seen[t] = true
		for _, c := range g.Consumers(t) {
			if c.OpType == "Reshape" && len(c.Inputs) == 2 && c.Inputs[1] == t {
				return len(c.Inputs) > 0 && c.Inputs[0] == shape.Inputs[0]
			}
			switch c.OpType {
			case "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Mul", "Add", "Sub", "Div", "Identity":
				stack = append(stack, c.Outputs...)
			}
		}
	}
	return false
}

// IsHeadless reports whether the model is a base without a classifier: its first
// output is a 4-D feature map (declared or inferred), or FindHead finds no classifier
// after it (a transformer cut after its class token ends in [N D]).
func IsHeadless(m *Model) bool {
	if m == nil || m.Graph == nil || len(m.Graph.Outputs) == 0 {
		return false
	}
	out := m.Graph.Outputs[0]
	if out.HasShape && len(out.Shape) == 4 {
		return true
	}
	_, err := FindHead(m)
	return errors.Is(err, ErrHeadless)
}
