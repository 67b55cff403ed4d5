package backend

import (
	"math"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// transposeFold is a MatMul read and written through the Transposes around it
// (planTransposedMatMuls): the product of Transpose(ins[0], perms[0]) and
// Transpose(ins[1], perms[1]) (a nil permutation: the input as it is), scaled by alpha,
// stored as Transpose(product, outPerm) under the name out.
type transposeFold struct {
	ins     [2]string
	perms   [2][]int
	outPerm []int
	out     string
	alpha   float64
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
// as it would have scaled the factor, so the values are the same; a MatMul whose views
// the products cannot read in place (no contiguous axis) stays as it is.
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
		f := transposeFold{out: mm.Outputs[0], alpha: 1}
		var folded []*onnx.Node
		for i, in := range mm.Inputs {
			f.ins[i] = in
			name, scale, alpha := in, (*onnx.Node)(nil), 1.0
			if s, a := b.powerOfTwoScale(single(in, "Div"), single(in, "Mul")); s != nil {
				name, scale, alpha = s.Inputs[0], s, a
			}
			t := single(name, "Transpose")
			if t == nil || len(t.Inputs) != 1 {
				continue
			}
			f.ins[i], f.perms[i] = t.Inputs[0], transposePerm(t, len(b.shapes.Dims[t.Inputs[0]]))
			f.alpha *= alpha
			folded = append(folded, t)
			if scale != nil {
				folded = append(folded, scale)
			}
		}
		if t := reader[mm.Outputs[0]]; t != nil && uses[mm.Outputs[0]] == 1 && t.OpType == "Transpose" && t.Domain == "" &&
			len(t.Outputs) == 1 && !b.skip[t] && needed[t] {
			f.out, f.outPerm = t.Outputs[0], transposePerm(t, len(b.shapes.Dims[mm.Outputs[0]]))
			folded = append(folded, t)
		}
		if len(folded) == 0 {
			continue
		}
		if _, err := kernels.NewTransposedMatMul(intsOf(b.shapes.Dims[f.ins[0]]), f.perms[0], intsOf(b.shapes.Dims[f.ins[1]]), f.perms[1], f.outPerm, f.alpha); err != nil {
			continue // not readable in place: the nodes compute as they are
		}
		b.fusedMatMul[mm] = f
		for _, n := range folded {
			b.skip[n] = true
		}
	}
}

// powerOfTwoScale returns the node of div and mul (either may be nil) that scales its
// first input by a power of two (a Div by a scalar constant, a Mul by one as its second
// input), with that factor.
func (b *builder[T]) powerOfTwoScale(div, mul *onnx.Node) (*onnx.Node, float64) {
	for _, n := range []*onnx.Node{div, mul} {
		if n == nil || len(n.Inputs) != 2 {
			continue
		}
		k, ok := b.scalarConst(n.Inputs[1])
		if !ok || k == 0 || math.IsInf(float64(k), 0) || math.IsNaN(float64(k)) {
			continue
		}
		if frac, _ := math.Frexp(float64(k)); math.Abs(frac) != 0.5 {
			continue
		}
		if n == div {
			return n, 1 / float64(k)
		}
		return n, float64(k)
	}
	return nil, 1
}

// transposePerm is a Transpose node's permutation of a tensor of the rank given (the
// default reverses the axes).
func transposePerm(n *onnx.Node, rank int) []int {
	var perm []int
	for _, p := range n.AttrInts("perm", nil) {
		perm = append(perm, int(p))
	}
	if perm == nil {
		for i := rank - 1; i >= 0; i-- {
			perm = append(perm, i)
		}
	}
	return perm
}
