package onnx

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"toolkit/internal/testref"
)

// fixtures are the committed models that read successfully.
var fixtures = []string{
	"tiny_vgg.onnx", "view_net.onnx", "gap_net.onnx", "dtypes.onnx", "unsorted.onnx",
	"unknown_op.onnx", "gemm_mismatch.onnx", "if.onnx", "external/model.onnx",
}

// roundTrip encodes m and decodes the result.
func roundTrip(t testing.TB, m *Model) *Model {
	t.Helper()
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data, "")
	if err != nil {
		t.Fatalf("decoding what Encode wrote: %v", err)
	}
	return back
}

func TestRoundTripFixtures(t *testing.T) {
	for _, name := range fixtures {
		m := mustRead(t, testdata(name))
		if back := roundTrip(t, m); !reflect.DeepEqual(m, back) {
			t.Errorf("%s: Read -> Encode -> Decode changed the model", name)
		}
	}
}

// TestRoundTripNodeTests checks Read -> Encode -> Decode is lossless for every ONNX
// node test model that reads.
func TestRoundTripNodeTests(t *testing.T) {
	n := 0
	for _, dir := range nodeTests(t) {
		m, err := Read(filepath.Join(dir, "model.onnx"))
		if err != nil {
			continue
		}
		n++
		if back := roundTrip(t, m); !reflect.DeepEqual(m, back) {
			t.Errorf("%s: Read -> Encode -> Decode changed the model", filepath.Base(dir))
		}
	}
	if n < 900 {
		t.Errorf("only %d node test models read", n)
	}
}

// TestCheckerAcceptsWritten writes the fixtures, models cut from them and every
// readable node test model, and has the ONNX checker check them all.
func TestCheckerAcceptsWritten(t *testing.T) {
	needPython(t, "onnx")
	dir := t.TempDir()
	var files []string
	write := func(name string, m *Model) {
		p := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
		if err := Write(p, m); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	for _, name := range fixtures {
		write(name, mustRead(t, testdata(name)))
	}
	for _, name := range []string{"tiny_vgg.onnx", "view_net.onnx", "gap_net.onnx"} {
		m := mustRead(t, testdata(name))
		cut, err := HeadlessCut(m)
		if err != nil {
			t.Fatal(err)
		}
		base, err := Cut(m, cut)
		if err != nil {
			t.Fatal(err)
		}
		write("cut_"+name, base)
	}
	if _, err := os.Stat(nodeTestDir); err == nil {
		for _, d := range nodeTests(t) {
			if m, err := Read(filepath.Join(d, "model.onnx")); err == nil {
				write(filepath.Base(d)+".onnx", m)
			}
		}
	} else {
		testref.Partial(t, "the ONNX node tests (Debian's libonnx-testdata, %s) are not installed: the round trip of their models is left out", nodeTestDir)
	}
	bad := checkWithONNX(t, dir, files, false)
	t.Logf("the ONNX checker accepted %d of %d written models", len(files)-len(bad), len(files))
}

func TestWriteReplacesAtomically(t *testing.T) {
	m := mustRead(t, testdata("tiny_vgg.onnx"))
	dir := t.TempDir()
	p := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, m); err != nil {
		t.Fatal(err)
	}
	back := mustRead(t, p)
	if !reflect.DeepEqual(m, back) {
		t.Error("Write -> Read changed the model")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d files after Write, want only the model", len(entries))
	}
	// A model that cannot be encoded leaves the old file alone.
	bad := &Model{IRVersion: 7, Graph: &Graph{Initializers: []*Tensor{{Name: "t", DataType: Float, Dims: []int64{2}}}}}
	err := Write(p, bad)
	if err == nil || !strings.Contains(err.Error(), `tensor "t": dims [2] need 2 elements, Floats has 0`) {
		t.Errorf("Write of a broken model: %v", err)
	}
	if back := mustRead(t, p); !reflect.DeepEqual(m, back) {
		t.Error("a failed Write changed the file")
	}
	if err := Write(filepath.Join(dir, "no", "such", "folder", "m.onnx"), m); err == nil {
		t.Error("Write into a missing folder succeeded")
	}
}

// checkWithONNX runs onnx.checker.check_model (with full_check: strict shape inference)
// on the files in one Python process, reports each rejection as a test error and
// returns them. dir holds the list of files passed to Python.
func checkWithONNX(t *testing.T, dir string, files []string, full bool) []string {
	t.Helper()
	list := filepath.Join(dir, "files.json")
	data, _ := json.Marshal(files)
	if err := os.WriteFile(list, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fullCheck := "False"
	if full {
		fullCheck = "True"
	}
	out := runPython(t, `
import json, sys, onnx
bad = []
for f in json.load(open(sys.argv[1])):
    try:
        onnx.checker.check_model(onnx.load(f), full_check=`+fullCheck+`)
    except Exception as e:
        bad.append("%s: %s" % (f, str(e).strip().splitlines()[0]))
print(json.dumps(bad))
`, list)
	var bad []string
	if err := json.Unmarshal(out, &bad); err != nil {
		t.Fatalf("checker output %q: %v", out, err)
	}
	for _, b := range bad {
		t.Errorf("ONNX checker: %s", b)
	}
	return bad
}

// TestWriteStreamsTheSameModel checks that Write, which streams the weights, gives a file
// that reads back as Encode's bytes do, and that onnx parses (Python's checker, via the
// round-trip tests) as before: the same model, field for field.
func TestWriteStreamsTheSameModel(t *testing.T) {
	m, err := Read("../testdata/parity/vgg_bn_opset13/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := Write(path, m); err != nil {
		t.Fatal(err)
	}
	fromFile, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	fromBytes, err := Decode(data, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, fromBytes) {
		t.Error("the streamed file reads back differently from Encode's bytes")
	}
	fi, _ := os.Stat(path)
	if fi.Size() != int64(len(data)) {
		t.Errorf("streamed file %d bytes, Encode %d", fi.Size(), len(data))
	}
}
