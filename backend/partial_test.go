package backend

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/onnx"
)

// TestPartialPrograms splits a fixture network at each of its cut points into a prefix
// program (Options.Outputs) and a suffix program (Options.From) and checks that the two
// in a row give the whole program's outputs and the gradients of the suffix's
// parameters, bit for bit: a feature cache trains on them.
func TestPartialPrograms(t *testing.T) {
	dir := filepath.Join(parityDir, "vgg_classifier_opset13")
	ir, err := onnx.Read(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	x := readNPY(t, filepath.Join(dir, "input.npy"))
	in := m.Inputs()[0].Name
	shapes := map[string][]int{in: x.Shape}
	target := make([]float32, x.Shape[0]*10)
	for i := 0; i < x.Shape[0]; i++ {
		target[i*10+i%10] = 1
	}
	whole, err := m.Program(Options{InputShapes: shapes, Trainable: m.TrainableNames(), Loss: CrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	if err := whole.Run([][]float32{x.Data}, target); err != nil {
		t.Fatal(err)
	}
	// The outputs and gradients are valid until the next run of a program of the model.
	wholeOut, wholeLoss := slices.Clone(whole.Output(0)), whole.Loss()
	wholeGrad := map[string][]float32{}
	for _, p := range m.TrainableNames() {
		wholeGrad[p] = slices.Clone(whole.Grad(p))
	}
	cuts := onnx.CutPoints(ir)
	if len(cuts) < 5 {
		t.Fatalf("only %d cut points in a chain network", len(cuts))
	}
	for _, c := range cuts {
		prefixParams := map[string]bool{}
		for _, p := range c.PrefixParams {
			prefixParams[p] = true
		}
		var suffixParams []string
		for _, p := range m.TrainableNames() {
			if !prefixParams[p] {
				suffixParams = append(suffixParams, p)
			}
		}
		pre, err := m.Program(Options{InputShapes: shapes, Outputs: []string{c.Tensor}})
		if err != nil {
			t.Fatalf("prefix to %s: %v", c.Tensor, err)
		}
		if err := pre.Run([][]float32{x.Data}, nil); err != nil {
			t.Fatal(err)
		}
		suf, err := m.Program(Options{InputShapes: shapes, From: c.Tensor, Trainable: suffixParams, Loss: CrossEntropy})
		if err != nil {
			t.Fatalf("suffix from %s: %v", c.Tensor, err)
		}
		// An output of a program of the model, which the run would write over, is
		// refused as an input.
		if err := suf.Run([][]float32{pre.Output(0)}, target); err == nil || !strings.Contains(err.Error(), "pass a copy") {
			t.Fatalf("an input in the model's arena: %v, want an error asking for a copy", err)
		}
		if err := suf.Run([][]float32{slices.Clone(pre.Output(0))}, target); err != nil {
			t.Fatal(err)
		}
		same := func(what string, a, b []float32) {
			if len(a) != len(b) {
				t.Fatalf("cut %s: %s: %d values, the whole program %d", c.Tensor, what, len(a), len(b))
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("cut %s: %s[%d] = %g, the whole program %g", c.Tensor, what, i, a[i], b[i])
				}
			}
		}
		same("output", suf.Output(0), wholeOut)
		if suf.Loss() != wholeLoss {
			t.Errorf("cut %s: loss %g, the whole program %g", c.Tensor, suf.Loss(), wholeLoss)
		}
		for _, p := range suffixParams {
			same("gradient of "+p, suf.Grad(p), wholeGrad[p])
		}
	}
	t.Logf("%d cut points checked", len(cuts))
}

func TestPartialProgramErrors(t *testing.T) {
	ir, err := onnx.Read(filepath.Join(parityDir, "vgg_classifier_opset13", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ir)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{m.Inputs()[0].Name: {2, 3, 16, 16}}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{InputShapes: shapes, From: "nope"}, `no tensor "nope"`},
		{Options{InputShapes: shapes, Outputs: []string{"nope"}}, `"nope" is not computed`},
		{Options{InputShapes: shapes, Outputs: []string{onnx.CutPoints(ir)[0].Tensor}, From: onnx.CutPoints(ir)[3].Tensor}, "the outputs also need \"input\""},
	} {
		_, err := m.Program(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
}
