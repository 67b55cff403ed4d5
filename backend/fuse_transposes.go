package backend

import (
	"math"
	"slices"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// transposeFold is a MatMul read and written through the Transposes around it
// (planTransposedMatMuls): the product of Transpose(ins[0], perms[0]) and
// Transpose(ins[1], perms[1]) (a nil permutation: the input as it is), scaled by alpha,
// stored as Transpose(product, outPerm) under the name out; plan computes it.
type transposeFold struct {
	ins     [2]string
	perms   [2][]int
	outPerm []int
	out     string
	alpha   float64
	plan    *kernels.TransposedMatMul
}

// foldPart is a Transpose that may fold into a MatMul: one of its factors' (with the
// power-of-two scale after it, if any) or its output's.
type foldPart struct {
	name  string // the tensor the MatMul reads or writes instead
	perm  []int
	alpha float64
	nodes []*onnx.Node // the nodes that compute as part of the MatMul
}

// planTransposedMatMuls finds the MatMuls whose factors are Transposes of other tensors,
// possibly scaled by a power of two after the transpose (a Div or Mul by a scalar
// constant), or whose output only a Transpose reads, as torch.onnx writes attention:
//
//	MatMul(Div(Transpose(q), √d), Transpose(k)), Transpose(MatMul(w, Transpose(v)))
//
// Each Transpose and scale read by the MatMul alone (and the Transpose after it, which
// alone reads its output) computes as part of one op that reads the tensors before the
// transposes in place and writes the one after (kernels.TransposedMatMul): no copies
// forward, none of the gradients backward. A power of two scales each product exactly
// as it would have scaled the factor, so the values are the same. Where the products
// cannot read a view in place (no contiguous axis) or the factors broadcast, the most
// Transposes that can fold do, the others compute as they are. A probe on a folded
// tensor is not taken, as with the other fusions.
func (b *builder[T]) planTransposedMatMuls(needed map[*onnx.Node]bool, uses map[string]int) {
	g := b.m.ir.Graph
	producer, reader := map[string]*onnx.Node{}, map[string]*onnx.Node{}
	for _, n := range g.Nodes {
		if !needed[n] || n.Domain != "" {
			continue
		}
		if len(n.Outputs) == 1 {
			producer[n.Outputs[0]] = n
		}
		for _, in := range n.Inputs {
			reader[in] = n // the only one where uses[in] == 1
		}
	}
	// single returns the node of type op that produces name, read by one node alone.
	single := func(name, op string) *onnx.Node {
		p := producer[name]
		if p == nil || p.OpType != op || uses[name] != 1 || b.skip[p] {
			return nil
		}
		return p
	}
	for _, mm := range g.Nodes {
		if !needed[mm] || mm.OpType != "MatMul" || mm.Domain != "" || len(mm.Inputs) != 2 || len(mm.Outputs) != 1 || b.skip[mm] {
			continue
		}
		var parts [3]*foldPart // the factors', the output's
		for i, in := range mm.Inputs {
			name, alpha, scale := in, 1.0, []*onnx.Node(nil)
			if s, x, a := b.powerOfTwoScale(single(in, "Div"), single(in, "Mul")); s != nil {
				name, alpha, scale = x, a, []*onnx.Node{s}
			}
			if t := single(name, "Transpose"); t != nil && len(t.Inputs) == 1 {
				parts[i] = &foldPart{name: t.Inputs[0], perm: transposePerm(t, len(b.shapes.Dims[t.Inputs[0]])), alpha: alpha, nodes: append(scale, t)}
			}
		}
		if t := reader[mm.Outputs[0]]; t != nil && uses[mm.Outputs[0]] == 1 && t.OpType == "Transpose" && t.Domain == "" && len(t.Outputs) == 1 && !b.skip[t] {
			parts[2] = &foldPart{name: t.Outputs[0], perm: transposePerm(t, len(b.shapes.Dims[mm.Outputs[0]])), alpha: 1, nodes: []*onnx.Node{t}}
		}
		// The most parts that fold together: all, then any two, then any one.
		for _, set := range [...][3]bool{{true, true, true}, {true, true}, {true, false, true}, {false, true, true}, {true}, {false, true}, {false, false, true}} {
			f, ok := b.foldOf(mm, parts, set)
			if !ok {
				continue
			}
			b.fusedMatMul[mm] = f
			for i, p := range parts {
				if set[i] {
					for _, n := range p.nodes {
						b.skip[n] = true
					}
				}
			}
			break
		}
	}
}

// foldOf returns the fold of MatMul mm with the parts in set, and whether it computes
// the tensor the graph says (each part present, the products able to read the views).
func (b *builder[T]) foldOf(mm *onnx.Node, parts [3]*foldPart, set [3]bool) (transposeFold, bool) {
	f := transposeFold{ins: [2]string{mm.Inputs[0], mm.Inputs[1]}, out: mm.Outputs[0], alpha: 1}
	for i, p := range parts {
		switch {
		case !set[i]:
		case p == nil:
			return f, false
		case i < 2:
			f.ins[i], f.perms[i] = p.name, p.perm
			f.alpha *= p.alpha
		default:
			f.out, f.outPerm = p.name, p.perm
		}
	}
	t, err := kernels.NewTransposedMatMul(intsOf(b.shapes.Dims[f.ins[0]]), f.perms[0], intsOf(b.shapes.Dims[f.ins[1]]), f.perms[1], f.outPerm, f.alpha)
	if err != nil || !slices.Equal(t.YShape, intsOf(b.shapes.Dims[f.out])) {
		return f, false
	}
	f.plan = t
	return f, true
}

// powerOfTwoScale returns the node of div and mul (either may be nil) that scales a
// tensor by a power of two without changing its shape (a Div by a scalar constant, a
// Mul by one on either side), that tensor, and the factor.
func (b *builder[T]) powerOfTwoScale(div, mul *onnx.Node) (*onnx.Node, string, float64) {
	for _, n := range []*onnx.Node{div, mul} {
		if n == nil || len(n.Inputs) != 2 {
			continue
		}
		for c := 1; c >= 0; c-- {
			if n == div && c == 0 {
				break
			}
			x := n.Inputs[1-c]
			k, ok := b.scalarConst(n.Inputs[c])
			if !ok || !slices.Equal(b.shapes.Dims[x], b.shapes.Dims[n.Outputs[0]]) {
				continue
			}
			if frac, _ := math.Frexp(float64(k)); math.Abs(frac) != 0.5 {
				continue // not a power of two (0, NaN and the infinities give other fractions)
			}
			if n == div {
				return n, x, 1 / float64(k)
			}
			return n, x, float64(k)
		}
	}
	return nil, "", 1
}
