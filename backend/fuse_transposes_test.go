package backend

import (
	"testing"

	"toolkit/internal/familyfixtures"
	"toolkit/onnx"
)

// TestTransposedMatMulsFolded checks that the vision transformer fixture's attention
// products take their Transposes (and the query's scale by 1/√d, a power of two here)
// into the products (planTransposedMatMuls): every batched MatMul (factors of rank 3)
// that reads a Transpose, directly or through that scale, computes through it, and
// those Transposes are gone from the training step (the fixture's products of a 3-D
// activation by a transposed 2-D weight broadcast the weight: they stay as they are). What the folded products compute, forward and backward, is
// checked against PyTorch by TestFamiliesPyTorchParity on the same fixture.
func TestTransposedMatMulsFolded(t *testing.T) {
	fx := familyfixtures.Load(t)
	f, ok := fx.Families["vit_b_16"]
	if !ok {
		t.Fatal("no vit_b_16 fixture")
	}
	for _, file := range []string{"model_opset13.onnx", "model_opset17.onnx"} {
		t.Run(file, func(t *testing.T) {
			ir, m, x, _ := loadFamilyModel(t, f, file, nil)
			producer := map[string]string{}
			for _, n := range ir.Graph.Nodes {
				for _, o := range n.Outputs {
					producer[o] = n.OpType
				}
			}
			readers := map[string]string{} // a Div's or Mul's input, by its output
			for _, n := range ir.Graph.Nodes {
				if n.OpType == "Div" || n.OpType == "Mul" {
					readers[n.Outputs[0]] = n.Inputs[0]
				}
			}
			in := m.Inputs()[0].Name
			shapes, err := onnx.InferShapes(ir, map[string][]int64{in: {int64(x.Shape[0]), int64(x.Shape[1]), int64(x.Shape[2]), int64(x.Shape[3])}})
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, n := range ir.Graph.Nodes {
				if n.OpType != "MatMul" || len(shapes.Dims[n.Inputs[0]]) != 3 || len(shapes.Dims[n.Inputs[1]]) != 3 {
					continue
				}
				for _, in := range n.Inputs {
					if producer[in] == "Transpose" || producer[readers[in]] == "Transpose" {
						want++
						break
					}
				}
			}
			if want < 2 {
				t.Fatalf("%d MatMuls read a Transpose: not the attention this test is for", want)
			}
			p, err := m.Program(Options{InputShapes: map[string][]int{in: x.Shape}, Training: true, Trainable: m.TrainableNames(), Loss: WeightedSum})
			if err != nil {
				t.Fatal(err)
			}
			folded, scaled, transposes := 0, 0, 0
			for _, s := range p.p.steps {
				if s.kind != stepForward {
					continue
				}
				if mm, ok := s.fwd.k.(*matMul[float32]); ok && mm.transposed != nil {
					folded++
					if mm.transposed.Alpha == 0.25 { // 1/√16: 4 heads of 16
						scaled++
					}
				}
				if s.opType() == "Transpose" {
					transposes++
				}
			}
			if folded != want || scaled != want/2 {
				t.Errorf("%d of %d MatMuls reading a Transpose folded it, %d of %d with the scale", folded, want, scaled, want/2)
			}
			t.Logf("%d products through their transposes; %d Transposes left", folded, transposes)
		})
	}
}
