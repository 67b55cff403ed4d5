package backend

import (
	"math"
	"slices"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// transposeFold is a MatMul read and written through the Transposes around it
// (planTransposedMatMuls): it reads the tensors ins (before their transposes) and
// writes out (after its own), as plan computes.
type transposeFold struct {
	ins  [2]string
	out  string
	plan *kernels.TransposedMatMul
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
func (b *builder[T]) planTransposedMatMuls(needed map[*onnx.Node]bool, ix fusionIndex) {
	single := func(name, op string) *onnx.Node { return ix.single(name, op, b.skip) }
	for _, mm := range b.m.ir.Graph.Nodes {
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
		if t := ix.reader[mm.Outputs[0]]; t != nil && ix.uses[mm.Outputs[0]] == 1 && t.OpType == "Transpose" && len(t.Outputs) == 1 && !b.skip[t] {
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
	f := transposeFold{ins: [2]string{mm.Inputs[0], mm.Inputs[1]}, out: mm.Outputs[0]}
	var perms [3][]int // the factors', the output's (nil: none)
	alpha := 1.0
	for i, p := range parts {
		switch {
		case !set[i]:
		case p == nil:
			return f, false
		case i < 2:
			f.ins[i], perms[i] = p.name, p.perm
			alpha *= p.alpha
		default:
			f.out, perms[i] = p.name, p.perm
		}
	}
	t, err := kernels.NewTransposedMatMul(intsOf(b.shapes.Dims[f.ins[0]]), perms[0], intsOf(b.shapes.Dims[f.ins[1]]), perms[1], perms[2], alpha)
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
