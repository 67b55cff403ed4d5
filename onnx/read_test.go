package onnx

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadTinyVGG(t *testing.T) {
	m := mustRead(t, testdata("tiny_vgg.onnx"))
	if m.ProducerName != "pytorch" || m.IRVersion != 7 || m.Opset("") != 13 || m.Opset("ai.onnx") != 13 || m.Opset("com.microsoft") != 0 {
		t.Errorf("producer %q, IR %d, opset %d", m.ProducerName, m.IRVersion, m.Opset(""))
	}
	g := m.Graph
	in := g.RealInputs()
	if len(in) != 1 || in[0].Name != "input" || FormatShape(in[0].Shape) != "[N 3 16 16]" || in[0].ElemType != Float {
		t.Fatalf("real inputs %+v", in)
	}
	w := g.Initializer("features.0.weight")
	if w == nil || !slices.Equal(w.Dims, []int64{4, 3, 3, 3}) || len(w.Floats) != 108 || w.NumElements() != 108 {
		t.Fatalf("features.0.weight: %+v", w)
	}
	conv := g.Producer("/features/features.0/Conv_output_0")
	if conv == nil || conv.OpType != "Conv" || conv.Name != "/features/features.0/Conv" {
		t.Fatalf("producer: %v", conv)
	}
	if !slices.Equal(conv.AttrInts("pads", nil), []int64{1, 1, 1, 1}) || conv.AttrInt("group", 7) != 1 ||
		conv.AttrInt("missing", 7) != 7 || conv.AttrString("auto_pad", "NOTSET") != "NOTSET" {
		t.Errorf("conv attributes %+v", conv.Attributes)
	}
	if cs := g.Consumers("/features/features.0/Conv_output_0"); len(cs) != 1 || cs[0].OpType != "Relu" {
		t.Errorf("consumers %v", cs)
	}
	if g.Initializer("nope") != nil || g.Producer("input") != nil || conv.Attr("nope") != nil {
		t.Error("lookups of missing names found something")
	}
}

// TestInitializersMatchONNX compares every initializer of the fixtures with what the
// onnx Python package reads from the same files.
func TestInitializersMatchONNX(t *testing.T) {
	needPython(t, "onnx", "numpy")
	files := []string{"tiny_vgg.onnx", "view_net.onnx", "gap_net.onnx", "external/model.onnx"}
	var paths []string
	for _, f := range files {
		paths = append(paths, testdata(f))
	}
	out := runPython(t, `
import json, sys, onnx
from onnx import numpy_helper
res = {}
for f in sys.argv[1:]:
    m = onnx.load(f)
    res[f] = {t.name: {"dims": list(t.dims), "values": numpy_helper.to_array(t).astype("float64").flatten().tolist()}
              for t in m.graph.initializer}
print(json.dumps(res))
`, paths...)
	var want map[string]map[string]struct {
		Dims   []int64
		Values []float64
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		m := mustRead(t, p)
		if len(m.Graph.Initializers) != len(want[p]) {
			t.Errorf("%s: %d initializers, onnx reads %d", p, len(m.Graph.Initializers), len(want[p]))
		}
		for _, init := range m.Graph.Initializers {
			w, ok := want[p][init.Name]
			if !ok {
				t.Errorf("%s: initializer %q unknown to onnx", p, init.Name)
				continue
			}
			if !slices.Equal(init.Dims, w.Dims) && !(len(init.Dims) == 0 && len(w.Dims) == 0) {
				t.Errorf("%s: %q dims %v, onnx %v", p, init.Name, init.Dims, w.Dims)
			}
			got := tensorValues(init)
			if len(got) != len(w.Values) {
				t.Errorf("%s: %q has %d values, onnx %d", p, init.Name, len(got), len(w.Values))
				continue
			}
			for i := range got {
				if got[i] != w.Values[i] {
					t.Errorf("%s: %q[%d] = %v, onnx %v", p, init.Name, i, got[i], w.Values[i])
					break
				}
			}
		}
	}
}

func tensorValues(t *Tensor) []float64 {
	var v []float64
	for _, f := range t.Floats {
		v = append(v, float64(f))
	}
	for _, i := range t.Ints {
		v = append(v, float64(i))
	}
	return v
}

// TestDataTypes reads initializers of every supported element type, written both as
// raw_data and as typed fields, against the values numpy wrote them from.
func TestDataTypes(t *testing.T) {
	var want map[string]struct {
		Dims   []int64
		Values []float64
		Type   DataType
	}
	data, err := os.ReadFile(testdata("dtypes.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	m := mustRead(t, testdata("dtypes.onnx"))
	if len(m.Metadata) != 2 || m.Metadata[0].Key == "" {
		t.Errorf("metadata %+v", m.Metadata)
	}
	for key, w := range want {
		for _, prefix := range []string{"raw_", "typed_"} {
			name := prefix + key
			got := m.Graph.Initializer(name)
			if got == nil {
				t.Errorf("no initializer %s", name)
				continue
			}
			wantType := w.Type
			if w.Type.IsFloat() {
				wantType = Float
			}
			if got.DataType != wantType {
				t.Errorf("%s: type %s, want %s", name, got.DataType, wantType)
			}
			if !slices.Equal(got.Dims, w.Dims) && !(len(got.Dims) == 0 && len(w.Dims) == 0) {
				t.Errorf("%s: dims %v, want %v", name, got.Dims, w.Dims)
			}
			if got.Ints != nil && got.Floats != nil {
				t.Errorf("%s: both Ints and Floats set", name)
			}
			vals := tensorValues(got)
			if len(vals) != len(w.Values) {
				t.Errorf("%s: %d values, want %d", name, len(vals), len(w.Values))
				continue
			}
			for i := range vals {
				// The JSON holds int64 values as float64: compare int64 values through it too.
				if got.Ints != nil && float64(got.Ints[i]) != w.Values[i] || got.Floats != nil && vals[i] != w.Values[i] {
					t.Errorf("%s[%d] = %v, want %v", name, i, vals[i], w.Values[i])
				}
			}
		}
	}
	if u := m.Graph.Initializer("raw_u64"); u == nil || uint64(u.Ints[1]) != 1<<63+5 {
		t.Errorf("uint64 above 2^63: %v", u)
	}
}

func TestFloat16(t *testing.T) {
	for _, c := range []struct {
		bits uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.960464477539063e-08},
		{0x8001, -5.960464477539063e-08}, {0x03ff, 6.097555160522461e-05}, {0x0000, 0},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := float16ToFloat32(c.bits); got != c.want {
			t.Errorf("float16 %#04x = %v, want %v", c.bits, got, c.want)
		}
	}
	if got := float16ToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("float16 NaN = %v", got)
	}
	if got := float16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("float16 -0 = %v", got)
	}
}

func TestExternalData(t *testing.T) {
	var want struct{ W, B []float32 }
	data, _ := os.ReadFile(testdata("external.json"))
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	m := mustRead(t, testdata("external", "model.onnx"))
	if w := m.Graph.Initializer("w"); w == nil || !slices.Equal(w.Floats, want.W) || !slices.Equal(w.Dims, []int64{4, 3}) {
		t.Errorf("w = %+v, want %v", w, want.W)
	}
	if b := m.Graph.Initializer("b"); b == nil || !slices.Equal(b.Floats, want.B) {
		t.Errorf("b = %+v, want %v", b, want.B)
	}
	// Decode needs the folder to find the data.
	raw, _ := os.ReadFile(testdata("external", "model.onnx"))
	if _, err := Decode(raw, testdata("external")); err != nil {
		t.Error(err)
	}
	_, err := Decode(raw, "")
	if err == nil || err.Error() != `initializer: tensor "w": external data "weights.bin": no base folder to resolve it in` {
		t.Errorf("Decode without a folder: %v", err)
	}
}

// TestBadInput checks the exact errors for files that are not what they should be.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	pngPath := filepath.Join(dir, "logo.png")
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pngPath, buf.Bytes(), 0o644)
	textPath := filepath.Join(dir, "notes.txt")
	os.WriteFile(textPath, []byte("This is a text file, not a model.\n"), 0o644)
	emptyPath := filepath.Join(dir, "empty.onnx")
	os.WriteFile(emptyPath, nil, 0o644)
	good, err := os.ReadFile(testdata("tiny_vgg.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	truncPath := filepath.Join(dir, "truncated.onnx")
	os.WriteFile(truncPath, good[:len(good)/2], 0o644)
	missing := filepath.Join(dir, "missing.onnx")

	for _, c := range []struct {
		path string
		want string
		is   error
	}{
		{missing, "read ONNX model: open " + missing + ": no such file or directory", fs.ErrNotExist},
		{dir, "read ONNX model: " + dir + " is a folder", nil},
		{pngPath, pngPath + ": not an ONNX model: malformed protobuf: invalid wire type ", ErrNotModel},
		{textPath, textPath + ": not an ONNX model: malformed protobuf: invalid wire type 4 at byte 0", ErrNotModel},
		{emptyPath, emptyPath + ": not an ONNX model: empty file", ErrNotModel},
		{truncPath, truncPath + ": truncated ONNX model: unexpected end of data: unexpected EOF", ErrTruncated},
		{testdata("missing_init.onnx"), testdata("missing_init.onnx") + `: node "Add_1" (Add): input "w3" is not produced by any node, initializer or graph input`, nil},
		{testdata("cycle.onnx"), testdata("cycle.onnx") + `: the graph has a cycle: "a" (Add) -> "b" (Relu) -> "a" (Add)`, nil},
		{testdata("external", "missing_data.onnx"), testdata("external", "missing_data.onnx") + `: initializer: tensor "w": external data: open ` +
			testdata("external", "missing.bin") + ": no such file or directory", fs.ErrNotExist},
		{testdata("external", "escape.onnx"), testdata("external", "escape.onnx") + `: initializer: tensor "w": external data location "../make_testdata.py" must be a relative path inside the model's folder`, nil},
	} {
		_, err := Read(c.path)
		if err == nil {
			t.Errorf("Read(%s) succeeded", c.path)
			continue
		}
		// The offset in a PNG depends on the encoder: compare up to it.
		if err.Error() != c.want && !(c.path == pngPath && strings.HasPrefix(err.Error(), c.want)) {
			t.Errorf("Read(%s):\n got %s\nwant %s", c.path, err, c.want)
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("Read(%s): error does not wrap %v", c.path, c.is)
		}
	}
	if _, err := Read(truncPath); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v does not wrap io.ErrUnexpectedEOF", err)
	}
	// Every prefix of a good model is an error, never a panic.
	for n := 0; n < len(good); n += 7 {
		if _, err := Decode(good[:n], ""); err == nil {
			t.Errorf("Decode of the first %d of %d bytes succeeded", n, len(good))
		}
	}
	if _, err := ReadTensor(missing); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadTensor(missing): %v", err)
	}
	if _, err := ReadTensor(truncPath); err == nil || !strings.HasPrefix(err.Error(), truncPath+": ") {
		t.Errorf("ReadTensor(model file): %v", err)
	}
}

func TestUnsortedNodes(t *testing.T) {
	m := mustRead(t, testdata("unsorted.onnx"))
	var got []string
	for _, n := range m.Graph.Nodes {
		got = append(got, n.Name)
	}
	// The file lists Relu (unnamed), add, MatMul (unnamed): unnamed nodes are named by
	// their position in the file, and the order becomes topological.
	if want := []string{"MatMul_2", "add", "Relu_0"}; !slices.Equal(got, want) {
		t.Errorf("nodes %v, want %v", got, want)
	}
}

func TestSubgraphs(t *testing.T) {
	m := mustRead(t, testdata("if.onnx"))
	n := m.Graph.Nodes[0]
	then := n.Attr("then_branch")
	if then == nil || then.Type != AttrGraph || then.Graph == nil || then.Graph.Nodes[0].Name != "then_relu" {
		t.Fatalf("then_branch %+v", then)
	}
}

func TestDecodeTensor(t *testing.T) {
	tests := nodeTests(t)
	_ = tests
	x, err := ReadTensor(filepath.Join(nodeTestDir, "test_conv_with_strides_padding", "test_data_set_0", "input_1.pb"))
	if err != nil {
		t.Fatal(err)
	}
	// The test's weight is all ones, shape [1 1 3 3].
	if !slices.Equal(x.Dims, []int64{1, 1, 3, 3}) || x.DataType != Float || len(x.Floats) != 9 || x.Floats[4] != 1 {
		t.Errorf("weight %+v", x)
	}
	if _, err := DecodeTensor([]byte{0xff}); err == nil {
		t.Error("DecodeTensor of garbage succeeded")
	}
}
