package headbuilder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"toolkit/internal/testref"
	"toolkit/npy"

	"toolkit/onnx"
)

// irFor is the IR version the ONNX release that introduced each opset wrote.
var irFor = map[int64]int64{7: 3, 9: 4, 11: 6, 12: 7, 13: 7, 15: 8, 17: 8}

// convBase is a small headless base: input [N 3 16 16] -> Conv 3x3 pad 1 (8 filters)
// -> Relu -> MaxPool 2x2 -> "features" [N 8 8 8]. For IR version 3 the initializers
// are graph inputs too, as that version requires.
func convBase(opset int64) *onnx.Model {
	ir := irFor[opset]
	w := make([]float32, 8*3*3*3)
	for i := range w {
		w[i] = float32(i%7-3) / 10
	}
	g := &onnx.Graph{
		Name: "base",
		Nodes: []*onnx.Node{
			{Name: "conv1", OpType: "Conv", Inputs: []string{"input", "conv1.weight", "conv1.bias"}, Outputs: []string{"c1"},
				Attributes: []*onnx.Attribute{
					{Name: "kernel_shape", Type: onnx.AttrInts, Ints: []int64{3, 3}},
					{Name: "pads", Type: onnx.AttrInts, Ints: []int64{1, 1, 1, 1}},
				}},
			{Name: "relu1", OpType: "Relu", Inputs: []string{"c1"}, Outputs: []string{"r1"}},
			{Name: "pool1", OpType: "MaxPool", Inputs: []string{"r1"}, Outputs: []string{"features"},
				Attributes: []*onnx.Attribute{
					{Name: "kernel_shape", Type: onnx.AttrInts, Ints: []int64{2, 2}},
					{Name: "strides", Type: onnx.AttrInts, Ints: []int64{2, 2}},
				}},
		},
		Initializers: []*onnx.Tensor{
			{Name: "conv1.weight", DataType: onnx.Float, Dims: []int64{8, 3, 3, 3}, Floats: w},
			{Name: "conv1.bias", DataType: onnx.Float, Dims: []int64{8}, Floats: make([]float32, 8)},
		},
		Inputs:  []*onnx.ValueInfo{floatInfo("input", -1, 3, 16, 16)},
		Outputs: []*onnx.ValueInfo{floatInfo("features", -1, 8, 8, 8)},
	}
	if ir < 4 {
		g.Inputs = append(g.Inputs, floatInfo("conv1.weight", 8, 3, 3, 3), floatInfo("conv1.bias", 8))
	}
	return &onnx.Model{
		IRVersion:       ir,
		OpsetImports:    []onnx.OpsetImport{{Domain: "", Version: opset}},
		ProducerName:    "headbuilder-test",
		ProducerVersion: "1.0",
		Metadata:        []onnx.MetadataEntry{{Key: "origin", Value: "hand-made"}},
		Graph:           g,
	}
}

// vectorBase is input [N width] -> Relu -> "features" [N width]: a base with a 2-D output.
func vectorBase(width int64) *onnx.Model {
	return &onnx.Model{
		IRVersion:    8,
		OpsetImports: []onnx.OpsetImport{{Version: 13}},
		Graph: &onnx.Graph{
			Name:    "vector",
			Nodes:   []*onnx.Node{{Name: "relu", OpType: "Relu", Inputs: []string{"input"}, Outputs: []string{"features"}}},
			Inputs:  []*onnx.ValueInfo{floatInfo("input", -1, width)},
			Outputs: []*onnx.ValueInfo{floatInfo("features", -1, width)},
		},
	}
}

// floatInfo declares a float tensor; a dim of -1 is the symbolic batch "N".
func floatInfo(name string, dims ...int64) *onnx.ValueInfo {
	v := &onnx.ValueInfo{Name: name, ElemType: onnx.Float, HasShape: true}
	for _, d := range dims {
		if d < 0 {
			v.Shape = append(v.Shape, onnx.Dim{Param: "N"})
		} else {
			v.Shape = append(v.Shape, onnx.Dim{Value: d})
		}
	}
	return v
}

// wantNodes lists the head's nodes, name and op, that Append should add.
func wantNodes(s Spec, opset int64) []string {
	s = s.withDefaults()
	var out []string
	switch s.Pool {
	case PoolAvg:
		out = append(out, "head.pool GlobalAveragePool")
	case PoolMax:
		out = append(out, "head.pool GlobalMaxPool")
	}
	out = append(out, "head.flatten Flatten")
	if len(s.Dense) == 0 && s.Dropout > 0 {
		out = append(out, "head.dropout0 Dropout")
	}
	acts := map[string]string{ActReLU: "Relu", ActLeakyReLU: "LeakyRelu", ActTanh: "Tanh", ActSigmoid: "Sigmoid"}
	for i := range s.Dense {
		out = append(out, fmt.Sprintf("head.dense%d Gemm", i))
		if op, ok := acts[s.Activation]; ok {
			out = append(out, fmt.Sprintf("head.act%d %s", i, op))
		}
		if s.Dropout > 0 {
			out = append(out, fmt.Sprintf("head.dropout%d Dropout", i))
		}
	}
	return append(out, "head.logits Gemm")
}

type manifestCase struct {
	File            string                  `json:"file"`
	Opset           int64                   `json:"opset"`
	BaseOutput      string                  `json:"base_output"`
	BaseOutputShape []int64                 `json:"base_output_shape"`
	Spec            manifestSpec            `json:"spec"`
	Initializers    map[string]manifestInit `json:"initializers"`
}

type manifestSpec struct {
	Pool       string  `json:"pool"`
	Dense      []int   `json:"dense"`
	Activation string  `json:"activation"`
	Dropout    float64 `json:"dropout"`
	Classes    int     `json:"classes"`
}

type manifestInit struct {
	Dims   []int64   `json:"dims"`
	Values []float32 `json:"values"`
}

// TestAppendConvBase appends every pooling with 0, 1 and 2 hidden layers to conv bases
// of several opsets, checks the result in Go, then has onnx's checker and a numpy
// reference check every written model in one Python run.
func TestAppendConvBase(t *testing.T) {
	dir := t.TempDir()
	var manifest []manifestCase
	acts := []string{"", ActLeakyReLU, ActTanh, ActSigmoid, ActNone, ActReLU}
	k := 0
	for _, opset := range []int64{7, 9, 11, 12, 13, 15, 17} {
		for _, pool := range []string{PoolFlatten, PoolAvg, PoolMax} {
			for _, dense := range [][]int{nil, {16}, {16, 12}} {
				// Vary the activation and the dropout across the cases so that each
				// meets every pooling and depth.
				k++
				spec := Spec{Pool: pool, Dense: dense, Activation: acts[(k/3)%len(acts)], Classes: 3 + k%4, Seed: uint64(k)}
				if (k+k/3)%3 != 0 {
					spec.Dropout = []float64{0.25, 0.5}[k%2]
				}
				name := fmt.Sprintf("opset%d_%s_%d", opset, pool, len(dense))
				t.Run(name, func(t *testing.T) {
					c := checkAppend(t, convBase(opset), spec, opset, dir, name)
					manifest = append(manifest, c)
				})
			}
		}
	}
	runPythonCheck(t, dir, manifest)
}

// checkAppend appends spec to base, checks the result and writes it; it returns the
// manifest entry for the Python check.
func checkAppend(t *testing.T, base *onnx.Model, spec Spec, opset int64, dir, name string) manifestCase {
	t.Helper()
	m, err := Append(base, spec, []int64{1, 3, 16, 16})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	s := spec.withDefaults()
	g := m.Graph

	// The head's nodes, after the base's, in order.
	if len(g.Nodes) < 3 || g.Nodes[2].Name != "pool1" {
		t.Fatalf("base nodes not kept first")
	}
	var got []string
	for _, n := range g.Nodes[3:] {
		got = append(got, n.Name+" "+n.OpType)
	}
	if want := wantNodes(spec, opset); !slices.Equal(got, want) {
		t.Errorf("head nodes\n got %q\nwant %q", got, want)
	}
	for _, n := range g.Nodes[3:] {
		switch n.OpType {
		case "Gemm":
			if n.AttrInt("transB", 0) != 1 {
				t.Errorf("%s: transB = %d", n.Name, n.AttrInt("transB", 0))
			}
		case "Flatten":
			if n.AttrInt("axis", -1) != 1 {
				t.Errorf("%s: axis = %d", n.Name, n.AttrInt("axis", -1))
			}
		case "LeakyRelu":
			if n.AttrFloat("alpha", 0) != LeakyReLUAlpha {
				t.Errorf("%s: alpha = %v", n.Name, n.AttrFloat("alpha", 0))
			}
		case "Dropout":
			if opset < 12 {
				if len(n.Inputs) != 1 || n.AttrFloat("ratio", -1) != float32(s.Dropout) {
					t.Errorf("%s (opset %d): inputs %q, ratio attribute %v", n.Name, opset, n.Inputs, n.AttrFloat("ratio", -1))
				}
			} else {
				r := g.Initializer(n.Name + ".ratio")
				if n.Attr("ratio") != nil || len(n.Inputs) != 2 || n.Inputs[1] != n.Name+".ratio" || r == nil ||
					len(r.Dims) != 0 || !slices.Equal(r.Floats, []float32{float32(s.Dropout)}) {
					t.Errorf("%s (opset %d): inputs %q, ratio initializer %+v", n.Name, opset, n.Inputs, r)
				}
			}
		}
	}

	// Initializers: the base's, then exactly the parameters ParamNames lists (and the
	// dropout ratios), with the documented shapes.
	var params []string
	var ratios int
	for _, init := range g.Initializers[2:] {
		if IsHeadConstant(init.Name) {
			ratios++
			continue
		}
		if !IsHeadParam(init.Name) {
			t.Errorf("initializer %q is not a head parameter", init.Name)
		}
		params = append(params, init.Name)
	}
	if want := ParamNames(spec); !slices.Equal(params, want) {
		t.Errorf("parameters %q, want %q", params, want)
	}
	wantRatios := 0
	if opset >= 12 && s.Dropout > 0 {
		wantRatios = max(len(s.Dense), 1)
	}
	if ratios != wantRatios {
		t.Errorf("%d ratio initializers, want %d", ratios, wantRatios)
	}
	in := int64(8 * 8 * 8)
	if s.Pool != PoolFlatten {
		in = 8
	}
	for i, layer := range layerNames(s) {
		out := int64(s.Classes)
		if i < len(s.Dense) {
			out = int64(s.Dense[i])
		}
		w, b := g.Initializer(layer+".weight"), g.Initializer(layer+".bias")
		if w == nil || b == nil {
			t.Fatalf("no initializers for %s", layer)
		}
		if !slices.Equal(w.Dims, []int64{out, in}) || !slices.Equal(b.Dims, []int64{out}) {
			t.Errorf("%s: weight %v, bias %v; want [%d %d], [%d]", layer, w.Dims, b.Dims, out, in, out)
		}
		if slices.ContainsFunc(b.Floats, func(v float32) bool { return v != 0 }) {
			t.Errorf("%s: bias not zero", layer)
		}
		in = out
	}

	// IR version 3: every initializer is also a graph input.
	if m.IRVersion < 4 {
		for _, init := range g.Initializers {
			if !slices.ContainsFunc(g.Inputs, func(v *onnx.ValueInfo) bool { return v.Name == init.Name }) {
				t.Errorf("IR %d: initializer %q is not a graph input", m.IRVersion, init.Name)
			}
		}
	}
	if real := g.RealInputs(); len(real) != 1 || real[0].Name != "input" {
		t.Errorf("real inputs changed: %v", real)
	}

	// What the base said about itself is kept.
	if m.IRVersion != base.IRVersion || !slices.Equal(m.OpsetImports, base.OpsetImports) ||
		m.ProducerName != base.ProducerName || m.ProducerVersion != base.ProducerVersion ||
		!slices.Equal(m.Metadata, base.Metadata) {
		t.Errorf("model header changed: IR %d opsets %v producer %q %q metadata %v",
			m.IRVersion, m.OpsetImports, m.ProducerName, m.ProducerVersion, m.Metadata)
	}

	// The single output is logits [N classes]; every new tensor has a value info with
	// the symbolic batch; the base's output is still declared.
	if len(g.Outputs) != 1 || g.Outputs[0].Name != Logits {
		t.Fatalf("outputs %v", g.Outputs)
	}
	if got := dimString(g.Outputs[0]); got != fmt.Sprintf("[N %d]", s.Classes) {
		t.Errorf("logits declared %s", got)
	}
	if v := g.ValueInfoOf("features"); v == nil || dimString(v) != "[N 8 8 8]" {
		t.Errorf("base output no longer declared: %v", v)
	}
	for _, n := range g.Nodes[3:] {
		if n.Outputs[0] == Logits {
			continue
		}
		v := g.ValueInfoOf(n.Outputs[0])
		if v == nil || !v.HasShape || v.Shape[0].Param != BatchDim || v.ElemType != onnx.Float {
			t.Errorf("value info of %q: %+v", n.Outputs[0], v)
		}
	}

	// Shape inference at batch 1 and 5, and agreement with the declared shapes.
	for _, batch := range []int64{1, 5} {
		shapes, err := onnx.InferShapes(m, map[string][]int64{"input": {batch, 3, 16, 16}})
		if err != nil {
			t.Fatalf("InferShapes at batch %d: %v", batch, err)
		}
		if got, want := shapes.Dims[Logits], []int64{batch, int64(s.Classes)}; !slices.Equal(got, want) {
			t.Errorf("batch %d: logits %v, want %v", batch, got, want)
		}
		for _, v := range g.ValueInfo {
			want := []int64{batch}
			for _, d := range v.Shape[1:] {
				want = append(want, d.Value)
			}
			if got := shapes.Dims[v.Name]; !slices.Equal(got, want) {
				t.Errorf("batch %d: %q inferred %v, declared %s", batch, v.Name, got, dimString(v))
			}
		}
	}

	// The written file reads back with the same head.
	path := filepath.Join(dir, name+".onnx")
	if err := onnx.Write(path, m); err != nil {
		t.Fatalf("Write: %v", err)
	}
	back, err := onnx.Read(path)
	if err != nil {
		t.Fatalf("Read back: %v", err)
	}
	if len(back.Graph.Nodes) != len(g.Nodes) || len(back.Graph.Initializers) != len(g.Initializers) {
		t.Errorf("read back %d nodes, %d initializers; wrote %d, %d",
			len(back.Graph.Nodes), len(back.Graph.Initializers), len(g.Nodes), len(g.Initializers))
	}

	c := manifestCase{
		File: path, Opset: opset, BaseOutput: "features", BaseOutputShape: []int64{2, 8, 8, 8},
		Spec:         manifestSpec{Pool: s.Pool, Dense: s.Dense, Activation: s.Activation, Dropout: s.Dropout, Classes: s.Classes},
		Initializers: map[string]manifestInit{},
	}
	if c.Spec.Dense == nil {
		c.Spec.Dense = []int{}
	}
	for _, init := range g.Initializers[2:] {
		c.Initializers[init.Name] = manifestInit{Dims: append([]int64{}, init.Dims...), Values: init.Floats}
	}
	return c
}

func dimString(v *onnx.ValueInfo) string {
	parts := make([]string, len(v.Shape))
	for i, d := range v.Shape {
		if d.Param != "" {
			parts[i] = d.Param
		} else {
			parts[i] = fmt.Sprint(d.Value)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// runPythonCheck runs testdata/check_head.py on the written models with Debian's
// Python, which has onnx 1.12 and numpy.
func runPythonCheck(t *testing.T, dir string, cases []manifestCase) {
	t.Helper()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		testref.Missing(t, "skipping the ONNX checker and numpy reference: %s not found", python)
	}
	if out, err := exec.Command(python, "-c", "import onnx, numpy").CombinedOutput(); err != nil {
		testref.Missing(t, "skipping the ONNX checker and numpy reference: %s cannot import onnx and numpy (install python3-onnx): %v\n%s",
			python, err, out)
	}
	if len(cases) == 0 {
		t.Fatal("no models to check")
	}
	data, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(manifest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "testdata/check_head.py", manifest).CombinedOutput()
	if err != nil {
		t.Fatalf("check_head.py: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("ok %d\n", len(cases)); string(out) != want {
		t.Errorf("check_head.py printed %q, want %q", out, want)
	}
}

// TestInitStatistics checks the two schemes on a 512x2048 layer made by Append.
func TestInitStatistics(t *testing.T) {
	for _, tc := range []struct {
		init        string
		he          bool
		name        string
		fanIn, fanO int
	}{
		{InitHe, true, "head.dense0.weight", 2048, 512},
		{InitGlorot, false, "head.dense0.weight", 2048, 512},
		{InitHe, false, "head.logits.weight", 512, 10}, // the classifier is Glorot under "he"
	} {
		m, err := Append(vectorBase(2048), Spec{Dense: []int{512}, Classes: 10, Init: tc.init, Seed: 7}, []int64{1, 2048})
		if err != nil {
			t.Fatal(err)
		}
		w := m.Graph.Initializer(tc.name)
		if !slices.Equal(w.Dims, []int64{int64(tc.fanO), int64(tc.fanIn)}) {
			t.Fatalf("%s dims %v", tc.name, w.Dims)
		}
		var sum, sq, maxAbs float64
		for _, v := range w.Floats {
			sum += float64(v)
			sq += float64(v) * float64(v)
			maxAbs = max(maxAbs, math.Abs(float64(v)))
		}
		n := float64(len(w.Floats))
		mean := sum / n
		std := math.Sqrt(sq/n - mean*mean)
		var want, limit float64
		if tc.he {
			want = math.Sqrt(2 / float64(tc.fanIn))
		} else {
			limit = math.Sqrt(6 / float64(tc.fanIn+tc.fanO))
			want = limit / math.Sqrt(3)
		}
		t.Logf("init %s %s: mean %.3g, std %.5g (formula %.5g), max |w| %.4g", tc.init, tc.name, mean, std, want, maxAbs)
		// The mean of n draws has standard error std/sqrt(n): allow 5 of those.
		if math.Abs(mean) > 5*want/math.Sqrt(n) {
			t.Errorf("%s %s: mean %g, want about 0", tc.init, tc.name, mean)
		}
		if math.Abs(std-want) > 0.05*want {
			t.Errorf("%s %s: std %g, want %g within 5%%", tc.init, tc.name, std, want)
		}
		if tc.he {
			// A million normal draws reach beyond 4.5 sigma; a uniform never passes sqrt(3).
			if maxAbs < 4.5*want {
				t.Errorf("%s: max |w| %g = %.2f std: not normal", tc.name, maxAbs, maxAbs/want)
			}
		} else if maxAbs > limit {
			t.Errorf("%s: max |w| %g beyond the Glorot limit %g", tc.name, maxAbs, limit)
		} else if tc.fanIn*tc.fanO > 100000 && maxAbs < 0.999*limit {
			t.Errorf("%s: max |w| %g: does not fill the Glorot range %g", tc.name, maxAbs, limit)
		}
	}
}

// TestInitScheme pins the documented rule.
func TestInitScheme(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want []initScheme // per layer, classifier last
	}{
		{Spec{Dense: []int{4, 4}}, []initScheme{heNormal, heNormal, glorotUniform}},
		{Spec{Dense: []int{4}, Activation: ActLeakyReLU}, []initScheme{heNormal, glorotUniform}},
		{Spec{Dense: []int{4}, Activation: ActTanh}, []initScheme{glorotUniform, glorotUniform}},
		{Spec{Dense: []int{4}, Activation: ActSigmoid}, []initScheme{glorotUniform, glorotUniform}},
		{Spec{Dense: []int{4}, Activation: ActNone}, []initScheme{glorotUniform, glorotUniform}},
		{Spec{Dense: []int{4, 4}, Init: InitGlorot}, []initScheme{glorotUniform, glorotUniform, glorotUniform}},
		{Spec{}, []initScheme{glorotUniform}},
	} {
		s := tc.spec.withDefaults()
		var got []initScheme
		for i := range layerNames(s) {
			got = append(got, schemeFor(s, i))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: schemes %v, want %v", tc.spec, got, tc.want)
		}
	}
}

// TestInitStabilityPin is a change detector, not a correctness check: the first
// values of both schemes, recorded from this implementation, so that a change in the
// random stream (a Go release, an edit) shows up as a failure rather than as quietly
// different experiments. TestInitAgainstPyTorch checks the distributions against
// PyTorch's initialisers.
func TestInitStabilityPin(t *testing.T) {
	he := initWeights(42, "head.dense0.weight", 2, 3, heNormal)
	gl := initWeights(42, "head.logits.weight", 2, 3, glorotUniform)
	wantHe := []float32{1.335485, 0.50048286, -0.6575613, 1.4885212, -0.22273985, -0.17451952}  // recorded
	wantGl := []float32{0.38825086, -0.9886856, -0.4231537, 0.07639242, -0.2224162, -1.0767672} // recorded
	for i := range he {
		if math.Abs(float64(he[i]-wantHe[i])) > 1e-6 || math.Abs(float64(gl[i]-wantGl[i])) > 1e-6 {
			t.Fatalf("the random stream changed:\nhe     %v, want %v\nglorot %v, want %v", he, wantHe, gl, wantGl)
		}
	}
}

// TestInitAgainstPyTorch compares the weights of a 512x2048 layer under both schemes
// with PyTorch's initialisers of a Linear(2048, 512) weight: the distribution's
// parameters come from torch (calculate_gain("relu") and the fans of
// kaiming_normal_; xavier_uniform_'s bound), and scipy's Kolmogorov-Smirnov tests
// compare the values with that distribution and with torch's own draws. A scale off by
// a factor, a wrong fan or a uniform for a normal gives p-values of 0.
func TestInitAgainstPyTorch(t *testing.T) {
	const py = "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch, scipy.stats, numpy").CombinedOutput(); err != nil {
		testref.Missing(t, "%s with torch, scipy and numpy (Debian python3-torch, python3-scipy): %v %s", py, err, out)
		return
	}
	dir := t.TempDir()
	const out, in = 512, 2048
	for name, scheme := range map[string]initScheme{"he": heNormal, "glorot": glorotUniform} {
		w := initWeights(7, "head.dense0.weight", out, in, scheme)
		if err := npy.WriteFile(filepath.Join(dir, name+".npy"), &npy.Array{Shape: []int{out, in}, Data: w}); err != nil {
			t.Fatal(err)
		}
	}
	const script = `
import json, math, sys
import numpy as np, scipy.stats as st, torch
torch.manual_seed(0)
res = {}
for name in ("he", "glorot"):
    w = np.load(sys.argv[1] + "/" + name + ".npy").astype(np.float64).ravel()
    ref = torch.empty(512, 2048)
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(ref)
    if name == "he":
        std = torch.nn.init.calculate_gain("relu") / math.sqrt(fan_in)
        torch.nn.init.kaiming_normal_(ref, mode="fan_in", nonlinearity="relu")
        p = st.kstest(w, "norm", args=(0, std)).pvalue
    else:
        bound = math.sqrt(6 / (fan_in + fan_out))
        torch.nn.init.xavier_uniform_(ref)
        p = st.kstest(w, "uniform", args=(-bound, 2 * bound)).pvalue
    p2 = st.ks_2samp(w, ref.numpy().astype(np.float64).ravel()).pvalue
    res[name] = {"p_formula": p, "p_torch": p2}
print(json.dumps(res))
`
	raw, err := exec.Command(py, "-c", script, dir).Output()
	if err != nil {
		t.Fatalf("torch and scipy: %v", err)
	}
	var res map[string]struct {
		PFormula float64 `json:"p_formula"`
		PTorch   float64 `json:"p_torch"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	for _, name := range []string{"he", "glorot"} {
		r := res[name]
		t.Logf("%s: Kolmogorov-Smirnov p %.3g against torch's distribution, %.3g against torch's draws", name, r.PFormula, r.PTorch)
		if r.PFormula < 1e-3 || r.PTorch < 1e-3 {
			t.Errorf("%s weights are not distributed as PyTorch's initialiser: p %.3g (distribution), %.3g (draws)", name, r.PFormula, r.PTorch)
		}
	}
}

func TestDeterminism(t *testing.T) {
	spec := Spec{Pool: PoolAvg, Dense: []int{16, 12}, Classes: 5, Dropout: 0.5, Seed: 42}
	a, err := Append(convBase(13), spec, []int64{1, 3, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Append(convBase(13), spec, []int64{1, 3, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	ea, err := onnx.Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := onnx.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ea, eb) {
		t.Error("the same spec and seed gave different models")
	}

	other := spec
	other.Seed = 43
	c, err := Append(convBase(13), other, []int64{1, 3, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ParamNames(spec) {
		if strings.HasSuffix(name, ".bias") {
			continue
		}
		if slices.Equal(a.Graph.Initializer(name).Floats, c.Graph.Initializer(name).Floats) {
			t.Errorf("%s: seeds 42 and 43 gave the same weights", name)
		}
	}
	// Within one model, no two layers share a stream.
	if w0, w1 := a.Graph.Initializer("head.dense0.weight").Floats, a.Graph.Initializer("head.dense1.weight").Floats; slices.Equal(w0[:12], w1[:12]) {
		t.Error("dense0 and dense1 start with the same values")
	}

	// A layer's weights depend on the seed, its name and shape, not on the layers after it.
	one := spec
	one.Dense = []int{16}
	d, err := Append(convBase(13), one, []int64{1, 3, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Graph.Initializer("head.dense0.weight").Floats, d.Graph.Initializer("head.dense0.weight").Floats) {
		t.Error("head.dense0.weight changed with the number of layers after it")
	}
}

func TestValidate(t *testing.T) {
	ok := []Spec{
		{Classes: 2},
		{Pool: PoolAvg, Dense: []int{256, 128}, Activation: ActLeakyReLU, Dropout: 0.5, Classes: 10, Init: InitGlorot, Seed: 1},
		{Pool: PoolMax, Activation: ActNone, Classes: 1000},
	}
	for _, s := range ok {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	for _, tc := range []struct {
		spec Spec
		want []string
	}{
		{Spec{}, []string{"head.classes: must be at least 2, got 0"}},
		{Spec{Classes: 1}, []string{"head.classes: must be at least 2, got 1"}},
		{Spec{Pool: "mean", Classes: 2}, []string{`head.pool: unknown "mean"; valid: flatten, avg, max`}},
		{Spec{Dense: []int{64, 0}, Classes: 2}, []string{"head.dense[1]: must be at least 1, got 0"}},
		{Spec{Activation: "gelu", Classes: 2}, []string{`head.activation: unknown "gelu"; valid: relu, leaky_relu, tanh, sigmoid, none`}},
		{Spec{Dropout: 1, Classes: 2}, []string{"head.dropout: must be in [0, 1), got 1"}},
		{Spec{Dropout: -0.1, Classes: 2}, []string{"head.dropout: must be in [0, 1), got -0.1"}},
		{Spec{Dropout: math.NaN(), Classes: 2}, []string{"head.dropout: must be in [0, 1), got NaN"}},
		{Spec{Init: "xavier", Classes: 2}, []string{`head.init: unknown "xavier"; valid: he, glorot`}},
		{Spec{Pool: "avgpool", Dropout: 2, Classes: 0}, []string{`head.pool: unknown "avgpool"`, "head.dropout:", "head.classes:"}},
	} {
		err := tc.spec.Validate()
		if err == nil {
			t.Errorf("%+v: no error", tc.spec)
			continue
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != len(tc.want) {
			t.Errorf("%+v: %d errors, want %d:\n%v", tc.spec, len(lines), len(tc.want), err)
			continue
		}
		for i, w := range tc.want {
			if !strings.HasPrefix(lines[i], w) {
				t.Errorf("%+v: error %q, want %q", tc.spec, lines[i], w)
			}
		}
		// Append refuses an invalid spec with the same message.
		if _, aerr := Append(convBase(13), tc.spec, []int64{1, 3, 16, 16}); aerr == nil || aerr.Error() != err.Error() {
			t.Errorf("%+v: Append error %v, want %v", tc.spec, aerr, err)
		}
	}
}

func TestBaseNotModified(t *testing.T) {
	base := convBase(13)
	before, err := onnx.Encode(base)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Append(base, Spec{Pool: PoolMax, Dense: []int{16}, Dropout: 0.5, Classes: 4}, []int64{1, 3, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	after, err := onnx.Encode(base)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("Append modified the base")
	}
	if len(base.Graph.Nodes) != 3 || len(base.Graph.Initializers) != 2 || base.Graph.Outputs[0].Name != "features" {
		t.Fatal("Append modified the base's graph")
	}
	// The new model shares no memory with the base: changing its weights, nodes and
	// value infos in place leaves the base alone.
	m.Graph.Initializer("conv1.weight").Floats[0] = 42
	m.Graph.Initializer("conv1.weight").Dims[0] = 9
	m.Graph.Node("conv1").Attributes[0].Ints[0] = 5
	m.Graph.Node("conv1").Inputs[0] = "x"
	m.Graph.Inputs[0].Shape[1].Value = 1
	m.Metadata[0].Value = "changed"
	m.OpsetImports[0].Version = 99
	after, err = onnx.Encode(base)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the appended model shares memory with the base")
	}
}

func TestAppendVectorBase(t *testing.T) {
	m, err := Append(vectorBase(32), Spec{Classes: 3, Dropout: 0.2}, []int64{1, 32})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, n := range m.Graph.Nodes[1:] {
		ops = append(ops, n.Name+" "+n.OpType)
	}
	if want := []string{"head.flatten Flatten", "head.dropout0 Dropout", "head.logits Gemm"}; !slices.Equal(ops, want) {
		t.Errorf("nodes %q, want %q", ops, want)
	}
	for _, batch := range []int64{1, 5} {
		shapes, err := onnx.InferShapes(m, map[string][]int64{"input": {batch, 32}})
		if err != nil {
			t.Fatal(err)
		}
		if got := shapes.Dims[Logits]; !slices.Equal(got, []int64{batch, 3}) {
			t.Errorf("batch %d: logits %v", batch, got)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	rank3 := &onnx.Model{
		IRVersion:    8,
		OpsetImports: []onnx.OpsetImport{{Version: 13}},
		Graph: &onnx.Graph{
			Nodes:   []*onnx.Node{{Name: "relu", OpType: "Relu", Inputs: []string{"input"}, Outputs: []string{"tokens"}}},
			Inputs:  []*onnx.ValueInfo{floatInfo("input", -1, 4, 5)},
			Outputs: []*onnx.ValueInfo{floatInfo("tokens", -1, 4, 5)},
		},
	}
	// A 3x3 convolution without padding on a 2x2 image leaves nothing.
	tooSmall := convBase(13)
	tooSmall.Graph.Nodes[0].Attributes = tooSmall.Graph.Nodes[0].Attributes[:1]
	tooSmall.Graph.Nodes = tooSmall.Graph.Nodes[:1]
	tooSmall.Graph.Nodes[0].Outputs[0] = "features"
	tooSmall.Graph.Inputs[0].Shape[2] = onnx.Dim{Param: "H"}
	tooSmall.Graph.Inputs[0].Shape[3] = onnx.Dim{Param: "W"}
	tooSmall.Graph.Outputs[0] = floatInfo("features", -1, 8, 1, 1)
	tooSmall.Graph.Outputs[0].Shape[2] = onnx.Dim{}
	tooSmall.Graph.Outputs[0].Shape[3] = onnx.Dim{}

	twoOutputs := convBase(13)
	twoOutputs.Graph.Outputs = append(twoOutputs.Graph.Outputs, floatInfo("r1", -1, 8, 16, 16))

	twoInputs := convBase(13)
	twoInputs.Graph.Inputs = append(twoInputs.Graph.Inputs, floatInfo("mask", -1, 1))

	oldOpset := convBase(7)
	oldOpset.OpsetImports[0].Version = 6

	noOpset := convBase(13)
	noOpset.OpsetImports = []onnx.OpsetImport{{Domain: "com.microsoft", Version: 1}}

	withHead, err := Append(convBase(13), Spec{Classes: 2}, []int64{1, 3, 16, 16})
	if err != nil {
		t.Fatal(err)
	}

	double := convBase(13)
	double.Graph.Outputs[0].ElemType = onnx.Double

	spec := Spec{Classes: 10}
	for _, tc := range []struct {
		name  string
		base  *onnx.Model
		spec  Spec
		input []int64
		want  []string
	}{
		{"rank 3", rank3, spec, []int64{1, 4, 5},
			[]string{`base output "tokens" is [1 4 5] for input [1 4 5]`, "4-D [N C H W] or 2-D [N features]", "not 3-D"}},
		{"rank 2 with avg", vectorBase(8), Spec{Pool: PoolAvg, Classes: 2}, []int64{1, 8},
			[]string{`base output "features" is [1 8] for input [1 8]`, `head.pool "avg"`, "use pool flatten"}},
		{"rank 2 with max", vectorBase(8), Spec{Pool: PoolMax, Classes: 2}, []int64{1, 8},
			[]string{`head.pool "max"`}},
		{"too small", tooSmall, spec, []int64{1, 3, 2, 2}, []string{"[1 3 2 2]"}},
		{"two outputs", twoOutputs, spec, []int64{1, 3, 16, 16}, []string{"exactly one graph output", `"features", "r1"`}},
		{"two inputs", twoInputs, spec, []int64{1, 3, 16, 16}, []string{"exactly one input", "it has 2"}},
		{"opset 6", oldOpset, spec, []int64{1, 3, 16, 16}, []string{"opset 6", "opset 7 or newer"}},
		{"no default opset", noOpset, spec, []int64{1, 3, 16, 16}, []string{"imports no version of the default"}},
		{"head already there", withHead, spec, []int64{1, 3, 16, 16}, []string{`"head.flatten"`, "already have a head"}},
		{"double output", double, spec, []int64{1, 3, 16, 16}, []string{`base output "features" is DOUBLE`}},
		{"no input shape", convBase(13), spec, nil, []string{`no input shape given for base input "input"`}},
		{"zero in input shape", convBase(13), spec, []int64{0, 3, 16, 16}, []string{"input shape [0 3 16 16]", "at least 1"}},
		{"nil base", nil, spec, []int64{1}, []string{"no graph"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Append(tc.base, tc.spec, tc.input)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestHeadInputTooSmall(t *testing.T) {
	// Whatever shape inference does with a too-small input, a zero-sized output is
	// reported with the input assumed.
	_, err := headInput("features", []int64{1, 512, 0, 0}, []int64{1, 3, 16, 16}, PoolFlatten)
	want := `base output "features" is [1 512 0 0] for input [1 3 16 16]: the input is too small for this base`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if _, err := headInput("f", []int64{1, -1, 4, 4}, []int64{1, 3, 8, 8}, PoolAvg); err == nil || !strings.Contains(err.Error(), "not fully known") {
		t.Errorf("unknown dim: %v", err)
	}
	for _, tc := range []struct {
		dims []int64
		pool string
		want int64
	}{
		{[]int64{1, 512, 7, 7}, PoolFlatten, 25088},
		{[]int64{1, 512, 7, 7}, PoolAvg, 512},
		{[]int64{1, 512, 7, 7}, PoolMax, 512},
		{[]int64{1, 100}, PoolFlatten, 100},
	} {
		got, err := headInput("f", tc.dims, []int64{1, 3, 224, 224}, tc.pool)
		if err != nil || got != tc.want {
			t.Errorf("%v %s: %d, %v; want %d", tc.dims, tc.pool, got, err, tc.want)
		}
	}
}

func TestParamNames(t *testing.T) {
	got := ParamNames(Spec{Dense: []int{256, 128}, Classes: 10})
	want := []string{
		"head.dense0.weight", "head.dense0.bias",
		"head.dense1.weight", "head.dense1.bias",
		"head.logits.weight", "head.logits.bias",
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParamNames %q, want %q", got, want)
	}
	if got := ParamNames(Spec{Classes: 2}); !slices.Equal(got, []string{"head.logits.weight", "head.logits.bias"}) {
		t.Errorf("no hidden layers: %q", got)
	}
	for name, want := range map[string]bool{
		"head.dense0.weight":   true,
		"head.logits.bias":     true,
		"head.dropout0.ratio":  false,
		"head.dropout12.ratio": false,
		"head.dropout.ratio":   true, // not a name the head makes as a constant
		"features.0.weight":    false,
		"header.weight":        false,
		"logits":               false,
	} {
		if got := IsHeadParam(name); got != want {
			t.Errorf("IsHeadParam(%q) = %v, want %v", name, got, want)
		}
	}
	if !IsHeadConstant("head.dropout3.ratio") || IsHeadConstant("head.dropout3.weight") || IsHeadConstant("head.dropoutx.ratio") {
		t.Error("IsHeadConstant")
	}
}
