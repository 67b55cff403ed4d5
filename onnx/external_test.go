package onnx

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// writeExternal writes m into dir as model.onnx with its initializers split over files.
func writeExternal(t *testing.T, dir string, m *Model, files []ExternalFile) string {
	t.Helper()
	path := filepath.Join(dir, "model.onnx")
	create := func(p string, write func(*os.File) error) {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	create(path, func(f *os.File) error { return WriteToExternal(f, m, files) })
	for _, ef := range files {
		create(filepath.Join(dir, filepath.FromSlash(ef.Location)), func(f *os.File) error { return WriteExternalData(f, m, ef) })
	}
	return path
}

// TestWriteExternalRoundTrip splits tiny_vgg's float initializers over two data files
// (one in a subfolder) and reads the model back: the same model. ONNX's own loader
// (onnx.load with its external data) then reads the same values as from the original
// file, and its checker accepts the model.
func TestWriteExternalRoundTrip(t *testing.T) {
	m := mustRead(t, testdata("tiny_vgg.onnx"))
	var a, b []string
	for i, init := range m.Graph.Initializers {
		if !init.DataType.IsFloat() {
			continue
		}
		if i%2 == 0 {
			a = append(a, init.Name)
		} else {
			b = append(b, init.Name)
		}
	}
	if len(a) == 0 || len(b) == 0 {
		t.Fatalf("tiny_vgg has too few float initializers: %v %v", a, b)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := []ExternalFile{{Location: "a.bin", Tensors: a}, {Location: "data/b.bin", Tensors: b}}
	path := writeExternal(t, dir, m, files)
	back := mustRead(t, path)
	if !reflect.DeepEqual(m, back) {
		t.Fatal("Read of the model written with external data differs from the original")
	}
	if fi, _ := os.Stat(path); fi.Size() > 4096 {
		t.Errorf("model.onnx is %d bytes: the weights should be in the data files", fi.Size())
	}

	needPython(t, "onnx", "numpy")
	out := runPython(t, `
import sys, onnx, numpy as np
from onnx import numpy_helper
orig = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[1]).graph.initializer}
ext = onnx.load(sys.argv[2])
onnx.checker.check_model(sys.argv[2])
for t in ext.graph.initializer:
    assert np.array_equal(numpy_helper.to_array(t), orig[t.name]), t.name
refs = onnx.load(sys.argv[2], load_external_data=False).graph.initializer
print(sum(t.data_location == onnx.TensorProto.EXTERNAL for t in refs))
`, testdata("tiny_vgg.onnx"), path)
	if got, want := strings.TrimSpace(string(out)), len(a)+len(b); got != strconv.Itoa(want) {
		t.Errorf("ONNX saw %s external tensors, want %d", got, want)
	}
}

func TestWriteExternalErrors(t *testing.T) {
	m := mustRead(t, testdata("tiny_vgg.onnx"))
	name := m.Graph.Initializers[0].Name
	for _, tc := range []struct {
		files []ExternalFile
		want  string
	}{
		{[]ExternalFile{{Location: "../x.bin", Tensors: []string{name}}}, `external data location "../x.bin" must be a relative path inside the model's folder`},
		{[]ExternalFile{{Location: "x.bin", Tensors: []string{"nope"}}}, `external data x.bin: no initializer "nope"`},
		{[]ExternalFile{{Location: "x.bin", Tensors: []string{name}}, {Location: "y.bin", Tensors: []string{name}}}, `tensor "` + name + `" is placed in external data twice`},
	} {
		err := WriteToExternal(new(strings.Builder), m, tc.files)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.files, err, tc.want)
		}
	}
}
