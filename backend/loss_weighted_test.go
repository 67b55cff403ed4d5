package backend

import (
	"math"
	"strings"
	"testing"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// TestLossParams builds a linear layer's training program with each loss and checks
// that the program's loss and its weights' gradient are the kernels' (which
// kernels' tests check against PyTorch) on the layer's output: the focal
// cross-entropy, and the binary cross-entropy with positive weights and focal
// modulation; and that a wrong option is an error when the program is built.
func TestLossParams(t *testing.T) {
	const n, in, k = 3, 4, 5
	w := &onnx.Tensor{Name: "w", DataType: onnx.Float, Dims: []int64{k, in}, Floats: make([]float32, k*in)}
	for i := range w.Floats {
		w.Floats[i] = float32(math.Sin(float64(i)))
	}
	m := tinyModel([]*onnx.Node{{Name: "fc", OpType: "Gemm", Inputs: []string{"x", "w"}, Outputs: []string{"y"},
		Attributes: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, Int: 1}}}},
		[]*onnx.Tensor{w}, []int64{n, in})
	bm, err := NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, n*in)
	for i := range x {
		x[i] = float32(math.Cos(1.7 * float64(i)))
	}
	target := []float32{1, 0, 0, 1, 0.3, 0, 1, 0, 0, 0, 0.5, 0.5, 0, 0, 0}
	pw := []float64{2, 0.5, 1, 3, 1.5}
	for _, tc := range []struct {
		loss   Loss
		params LossParams
	}{
		{CrossEntropy, LossParams{FocalGamma: 2}},
		{BinaryCrossEntropy, LossParams{}},
		{BinaryCrossEntropy, LossParams{FocalGamma: 1.5, PosWeight: pw}},
	} {
		p, err := bm.Program(Options{Batch: n, Training: true, Trainable: []string{"w"}, Loss: tc.loss, LossParams: tc.params})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run([][]float32{x}, target); err != nil {
			t.Fatal(err)
		}
		logits := p.Output(0)
		var want float32
		dl := make([]float32, n*k)
		if tc.loss == CrossEntropy {
			want = kernels.FocalCrossEntropyProbs(n, k, logits, target, tc.params.FocalGamma)
			kernels.FocalCrossEntropyProbsBackward(n, k, logits, target, tc.params.FocalGamma, 1, dl)
		} else {
			want = kernels.BCEWithLogits(n, k, logits, target, tc.params.PosWeight, tc.params.FocalGamma)
			kernels.BCEWithLogitsBackward(n, k, logits, target, tc.params.PosWeight, tc.params.FocalGamma, 1, dl)
		}
		if got := p.Loss(); math.Abs(got-float64(want)) > 1e-6 {
			t.Errorf("loss %d %+v: %g, want %g", tc.loss, tc.params, got, want)
		}
		g := p.Grad("w")
		for o := range k {
			for j := range in {
				var s float64
				for i := range n {
					s += float64(dl[i*k+o]) * float64(x[i*in+j])
				}
				if math.Abs(float64(g[o*in+j])-s) > 1e-6 {
					t.Fatalf("loss %d %+v: dL/dw[%d,%d] = %g, want %g", tc.loss, tc.params, o, j, g[o*in+j], s)
				}
			}
		}
	}
	for _, tc := range []struct {
		loss   Loss
		params LossParams
		want   string
	}{
		{CrossEntropy, LossParams{PosWeight: pw}, "positive weights are for the binary cross-entropy"},
		{BinaryCrossEntropy, LossParams{PosWeight: pw[:2]}, "2 positive weights for 5 outputs"},
		{CrossEntropy, LossParams{FocalGamma: -1}, "focal gamma -1"},
	} {
		_, err := bm.Program(Options{Batch: n, Training: true, Trainable: []string{"w"}, Loss: tc.loss, LossParams: tc.params})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.params, err, tc.want)
		}
	}
}
