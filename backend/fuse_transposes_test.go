package backend

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"toolkit/backend/kernels"
	"toolkit/internal/familyfixtures"
	"toolkit/onnx"
)

// isolateTransposes rewrites ir so that no Transpose folds into a MatMul: an Identity
// before and after each one (the reference the folded programs must match).
func isolateTransposes(ir *onnx.Model) {
	var nodes []*onnx.Node
	for _, n := range ir.Graph.Nodes {
		if n.OpType != "Transpose" {
			nodes = append(nodes, n)
			continue
		}
		in, out := n.Inputs[0]+"/before/"+n.Name, n.Outputs[0]
		moved := *n
		moved.Inputs, moved.Outputs = []string{in}, []string{out + "/after"}
		nodes = append(nodes,
			&onnx.Node{Name: n.Name + "/before", OpType: "Identity", Inputs: n.Inputs[:1], Outputs: []string{in}},
			&moved,
			&onnx.Node{Name: n.Name + "/after", OpType: "Identity", Inputs: []string{out + "/after"}, Outputs: []string{out}})
	}
	ir.Graph.Nodes = nodes
}

// foldedMatMuls returns the program's MatMuls computed through transposes, and the
// Transpose steps left in its forward pass.
func foldedMatMuls(p *Program) (folded []*kernels.TransposedMatMul, transposes int) {
	for _, s := range p.p.steps {
		if s.kind != stepForward {
			continue
		}
		if mm, ok := s.fwd.k.(*matMul[float32]); ok && mm.transposed != nil {
			folded = append(folded, mm.transposed)
		}
		if s.opType() == "Transpose" {
			transposes++
		}
	}
	return folded, transposes
}

// TestTransposedMatMulsFolded checks that the vision transformer fixture's attention
// products take their Transposes (and the query's scale by 1/√d, a power of two here)
// into the products (planTransposedMatMuls): every batched MatMul (factors of rank 3)
// that reads a Transpose, directly or through that scale, computes through it, as does
// the Transpose that alone reads its output, and those Transposes are gone from the
// training step (the fixture's products of a 3-D activation by a transposed 2-D weight
// broadcast the weight: they stay as they are). Then that the loss and every gradient
// are the same bits as with every Transpose computed on its own (isolateTransposes), on
// the float32 products and the bfloat16 ones where the CPU has them. The values
// themselves are checked against PyTorch by TestFamiliesPyTorchParity.
func TestTransposedMatMulsFolded(t *testing.T) {
	fx := familyfixtures.Load(t)
	f, ok := fx.Families["vit_b_16"]
	if !ok {
		t.Fatal("no vit_b_16 fixture")
	}
	for _, file := range []string{"model_opset13.onnx", "model_opset17.onnx"} {
		t.Run(file, func(t *testing.T) {
			ir, m, x, _ := loadFamilyModel(t, f, file, nil)
			in := m.Inputs()[0].Name
			shapes, err := onnx.InferShapes(ir, map[string][]int64{in: {int64(x.Shape[0]), int64(x.Shape[1]), int64(x.Shape[2]), int64(x.Shape[3])}})
			if err != nil {
				t.Fatal(err)
			}
			producer, readers := map[string]*onnx.Node{}, map[string][]*onnx.Node{}
			graphTransposes := 0
			for _, n := range ir.Graph.Nodes {
				for _, o := range n.Outputs {
					producer[o] = n
				}
				for _, i := range n.Inputs {
					readers[i] = append(readers[i], n)
				}
				if n.OpType == "Transpose" {
					graphTransposes++
				}
			}
			want, wantGone := 0, 0
			for _, n := range ir.Graph.Nodes {
				if n.OpType != "MatMul" || len(shapes.Dims[n.Inputs[0]]) != 3 || len(shapes.Dims[n.Inputs[1]]) != 3 {
					continue
				}
				reads := false
				for _, i := range n.Inputs {
					if p := producer[i]; p != nil && (p.OpType == "Div" || p.OpType == "Mul") {
						i = p.Inputs[0]
					}
					if p := producer[i]; p != nil && p.OpType == "Transpose" {
						reads = true
						wantGone++
					}
				}
				if r := readers[n.Outputs[0]]; len(r) == 1 && r[0].OpType == "Transpose" {
					wantGone++
				}
				if reads {
					want++
				}
			}
			if want < 2 {
				t.Fatalf("%d MatMuls read a Transpose: not the attention this test is for", want)
			}
			opts := Options{InputShapes: map[string][]int{in: x.Shape}, Training: true, Trainable: m.TrainableNames(), Loss: WeightedSum}
			p, err := m.Program(opts)
			if err != nil {
				t.Fatal(err)
			}
			folded, transposes := foldedMatMuls(p)
			scaled := 0
			for _, tm := range folded {
				if tm.Alpha == 0.25 { // 1/√16: 4 heads of 16
					scaled++
				}
			}
			if len(folded) != want || scaled != want/2 || transposes != graphTransposes-wantGone {
				t.Errorf("%d of %d MatMuls reading a Transpose folded it, %d of %d with the scale; %d Transposes left of %d, want %d",
					len(folded), want, scaled, want/2, transposes, graphTransposes, graphTransposes-wantGone)
			}
			_, ref, _, _ := loadFamilyModel(t, f, file, isolateTransposes)
			q, err := ref.Program(opts)
			if err != nil {
				t.Fatal(err)
			}
			if f, _ := foldedMatMuls(q); len(f) != 0 {
				t.Fatalf("%d MatMuls folded with every Transpose isolated", len(f))
			}
			sameBits(t, "float32 products", m, p, q, x.Data)
			if kernels.BF16Available() == nil {
				defer useBF16Products(t)()
				sameBits(t, "bfloat16 products", m, p, q, x.Data)
			}
		})
	}
}

// agree fails unless got and want are the same bits, on the toolkit's own products
// (whose packing reads a matrix the same whatever its layout); on another BLAS (gonum's
// under the purego tag, OpenBLAS), whose loops' order depends on the operands'
// transposition, within 1e-5 of want's largest value.
func agree(t *testing.T, what string, got, want []float32) {
	t.Helper()
	switch kernels.Current() {
	case "gonum", "openblas":
		if e := relErrFloor(got, want, 1e-30); e > 1e-5 {
			t.Errorf("%s: relative error %.3g", what, e)
		}
	default:
		if i := firstOtherBits(got, want); i >= 0 {
			t.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// sameBits runs programs p and q of model m (one input, a weighted-sum loss) on x and
// fails unless their losses and gradients agree.
func sameBits(t *testing.T, what string, m *Model, p, q *Program, x []float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	r := make([]float32, numElements(p.OutputShape(0)))
	for i := range r {
		r[i] = float32(rng.NormFloat64())
	}
	for _, prog := range []*Program{p, q} {
		if err := prog.Run([][]float32{x}, r); err != nil {
			t.Fatal(err)
		}
	}
	agree(t, what+": loss folded", []float32{float32(p.Loss())}, []float32{float32(q.Loss())})
	for _, name := range m.TrainableNames() {
		agree(t, what+": "+name+" folded", p.Grad(name), q.Grad(name))
	}
}

// TestPlanTransposedMatMuls checks which Transposes and scales fold into a MatMul on
// small graphs (x of [3, 2, 4]; a = Transpose(x, [1, 0, 2]) of [2, 3, 4], k =
// Transpose(x, [1, 2, 0]) of [2, 4, 3]), and that each program's output and gradients
// are the same bits as with every Transpose computed on its own.
func TestPlanTransposedMatMuls(t *testing.T) {
	tr := func(name, in string, perm ...int64) *onnx.Node {
		return &onnx.Node{Name: name, OpType: "Transpose", Inputs: []string{in}, Outputs: []string{name}, Attributes: []*onnx.Attribute{{Name: "perm", Type: onnx.AttrInts, Ints: perm}}}
	}
	op := func(typ, name string, in ...string) *onnx.Node {
		return &onnx.Node{Name: name, OpType: typ, Inputs: in, Outputs: []string{name}}
	}
	// scalar is a Constant node (an initializer would be a parameter, which training
	// may change).
	scalar := func(name string, v float32, dims ...int64) *onnx.Node {
		return &onnx.Node{Name: name, OpType: "Constant", Outputs: []string{name},
			Attributes: []*onnx.Attribute{{Name: "value", Type: onnx.AttrTensor, Tensor: testTensor(name, dims, func(int) float32 { return v })}}}
	}
	w := testTensor("w", []int64{3, 2, 4}, func(j int) float32 { return 0.1 * float32(j%7-3) })
	for _, c := range []struct {
		name    string
		nodes   []*onnx.Node
		inits   []*onnx.Tensor
		outputs []string // Options.Outputs beside y
		// want: the folded product's stored A, B and output shapes and its scale (none
		// folded: nil)
		shapes [][]int
		alpha  float64
	}{
		{"both factors, scale by Div", []*onnx.Node{scalar("c", 4), tr("a", "x", 1, 0, 2), op("Div", "d", "a", "c"), tr("k", "x", 1, 2, 0), op("MatMul", "y", "d", "k")}, nil, nil, [][]int{{3, 2, 4}, {3, 2, 4}, {2, 3, 3}}, 0.25},
		{"scale by Mul, constant first", []*onnx.Node{scalar("c", -0.5), tr("a", "x", 1, 0, 2), op("Mul", "d", "c", "a"), tr("k", "x", 1, 2, 0), op("MatMul", "y", "d", "k")}, nil, nil, [][]int{{3, 2, 4}, {3, 2, 4}, {2, 3, 3}}, -0.5},
		{"scale not a power of two", []*onnx.Node{scalar("c", 3), tr("a", "x", 1, 0, 2), op("Div", "d", "a", "c"), tr("k", "x", 1, 2, 0), op("MatMul", "y", "d", "k")}, nil, nil, [][]int{{2, 3, 4}, {3, 2, 4}, {2, 3, 3}}, 1},
		{"scale that broadcasts", []*onnx.Node{scalar("c", 4, 1, 1, 1, 1), tr("a", "x", 1, 0, 2), op("Div", "d", "a", "c"), tr("k", "x", 1, 2, 0), op("MatMul", "m", "d", "k"), op("ReduceSum", "y", "m")}, nil, nil, nil, 0},
		{"a factor read twice", []*onnx.Node{tr("a", "x", 1, 0, 2), tr("k", "a", 0, 2, 1), op("MatMul", "y", "a", "k")},
			nil, nil, [][]int{{2, 3, 4}, {2, 3, 4}, {2, 3, 3}}, 1},
		{"the output transposed", []*onnx.Node{tr("a", "x", 1, 0, 2), op("MatMul", "m", "a", "w2"), tr("y", "m", 1, 0, 2)},
			[]*onnx.Tensor{testTensor("w2", []int64{2, 4, 5}, func(j int) float32 { return 0.1 * float32(j%5-2) })}, nil, [][]int{{3, 2, 4}, {2, 4, 5}, {3, 2, 5}}, 1},
		{"the output also an output", []*onnx.Node{tr("a", "x", 1, 0, 2), op("MatMul", "m", "a", "w2"), tr("y", "m", 1, 0, 2)},
			[]*onnx.Tensor{testTensor("w2", []int64{2, 4, 5}, func(j int) float32 { return 0.1 * float32(j%5-2) })}, []string{"m"}, [][]int{{3, 2, 4}, {2, 4, 5}, {2, 3, 5}}, 1},
		{"no contiguous axis in the output", []*onnx.Node{op("MatMul", "m", "x", "w3"), tr("y", "m", 1, 2, 0)},
			[]*onnx.Tensor{testTensor("w3", []int64{3, 4, 5}, func(j int) float32 { return 0.1 * float32(j%5-2) })}, nil, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			inits := append([]*onnx.Tensor{w}, c.inits...)
			build := func(rewrite func(*onnx.Model)) (*Model, *Program) {
				ir := tinyModel(slices.Clone(c.nodes), inits, []int64{3, 2, 4})
				if rewrite != nil {
					rewrite(ir)
				}
				m, err := NewModel(ir)
				if err != nil {
					t.Fatal(err)
				}
				p, err := m.Program(Options{InputShapes: map[string][]int{"x": {3, 2, 4}}, InputGrads: true, Outputs: append([]string{"y"}, c.outputs...), Loss: WeightedSum})
				if err != nil {
					t.Fatal(err)
				}
				return m, p
			}
			_, p := build(nil)
			_, q := build(isolateTransposes)
			folded, _ := foldedMatMuls(p)
			switch {
			case c.shapes == nil && len(folded) != 0:
				t.Fatalf("%d MatMuls folded, want none", len(folded))
			case c.shapes != nil && len(folded) != 1:
				t.Fatalf("%d MatMuls folded, want one", len(folded))
			case c.shapes != nil:
				tm := folded[0]
				if got := [][]int{tm.AShape, tm.BShape, tm.YShape}; !slices.EqualFunc(got, c.shapes, slices.Equal) || tm.Alpha != c.alpha {
					t.Errorf("folded as %v · %v → %v with alpha %v, want %v with %v", tm.AShape, tm.BShape, tm.YShape, tm.Alpha, c.shapes, c.alpha)
				}
			}
			x := make([]float32, 24)
			for i := range x {
				x[i] = float32(i%9-4) * 0.25
			}
			r := make([]float32, numElements(p.OutputShape(0)))
			for i := range r {
				r[i] = float32(i%5 - 2)
			}
			for _, prog := range []*Program{p, q} {
				if err := prog.Run([][]float32{x}, r); err != nil {
					t.Fatal(err)
				}
			}
			for i := range p.p.outputs {
				agree(t, fmt.Sprintf("output %d folded", i), p.Output(i), q.Output(i))
			}
			agree(t, "dx folded", p.Grad("x"), q.Grad("x"))
		})
	}
}
