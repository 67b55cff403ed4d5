package npy

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/internal/testref"
)

const python = "/usr/bin/python3"

func havePythonNumpy(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		testref.Missing(t, "%s with numpy is not available: %v", python, err)
	}
}

// TestNumPyReadsOurFiles writes with Write and reads with numpy.load.
func TestNumPyReadsOurFiles(t *testing.T) {
	havePythonNumpy(t)
	dir := t.TempDir()
	for i, a := range []*Array{
		{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4.5, -5, 6e-8}},
		{Shape: []int{4}, Data: []float32{1, 2, 3, 4}},
		{Shape: []int{}, Data: []float32{7}},
		{Shape: []int{1, 3, 2, 2}, Data: make([]float32, 12)},
	} {
		path := filepath.Join(dir, "a.npy")
		if err := WriteFile(path, a); err != nil {
			t.Fatal(err)
		}
		// numpy's view of the file: dtype, shape, order and every value's bits.
		out, err := exec.Command(python, "-c", `import json,numpy,sys
a=numpy.load(sys.argv[1])
print(json.dumps({"dtype": a.dtype.str, "shape": list(a.shape), "c": bool(a.flags.c_contiguous), "bits": [int(b) for b in a.reshape(-1).view(numpy.uint32)]}))`, path).Output()
		if err != nil {
			t.Fatalf("case %d: numpy.load: %v\n%s", i, err, out)
		}
		var seen struct {
			Dtype string
			Shape []int
			C     bool
			Bits  []uint32
		}
		if err := json.Unmarshal(out, &seen); err != nil {
			t.Fatalf("case %d: %v: %s", i, err, out)
		}
		if seen.Dtype != "<f4" || !slices.Equal(seen.Shape, a.Shape) || !seen.C || len(seen.Bits) != len(a.Data) {
			t.Fatalf("case %d: numpy sees dtype %s, shape %v, C order %v, %d values; wrote <f4 %v, %d values", i, seen.Dtype, seen.Shape, seen.C, len(seen.Bits), a.Shape, len(a.Data))
		}
		for j, b := range seen.Bits {
			if b != math.Float32bits(a.Data[j]) {
				t.Errorf("case %d: value %d: numpy reads %v, wrote %v", i, j, math.Float32frombits(b), a.Data[j])
			}
		}
		back, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(back.Shape) != len(a.Shape) || len(back.Data) != len(a.Data) {
			t.Fatalf("case %d: round trip gave %v", i, back.Shape)
		}
		for j := range a.Data {
			if back.Data[j] != a.Data[j] {
				t.Fatalf("case %d: value %d: %v != %v", i, j, back.Data[j], a.Data[j])
			}
		}
	}
}

// TestReadNumPyFiles reads files numpy.save wrote, checking values numpy printed.
func TestReadNumPyFiles(t *testing.T) {
	havePythonNumpy(t)
	dir := t.TempDir()
	script := `import numpy,sys
d=sys.argv[1]
numpy.save(d+'/f32.npy', numpy.arange(24, dtype=numpy.float32).reshape(2,3,4)/7)
numpy.save(d+'/f64.npy', numpy.zeros((2,2)))
numpy.save(d+'/i64.npy', numpy.zeros((2,2), dtype=numpy.int64))
numpy.save(d+'/fortran.npy', numpy.asfortranarray(numpy.zeros((2,3), dtype=numpy.float32)))
print(repr((numpy.arange(24, dtype=numpy.float32)/7)[5].item()))`
	out, err := exec.Command(python, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	a, err := ReadFile(filepath.Join(dir, "f32.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 3 || a.Shape[0] != 2 || a.Shape[1] != 3 || a.Shape[2] != 4 {
		t.Fatalf("shape %v", a.Shape)
	}
	if got := strings.TrimSpace(string(out)); got != "0.7142857313156128" || a.Data[5] != float32(0.7142857313156128) {
		t.Errorf("element 5: numpy says %s, we read %v", got, a.Data[5])
	}
	for file, want := range map[string]string{
		"f64.npy":     "dtype <f8: want float32",
		"i64.npy":     "dtype <i8: want float32",
		"fortran.npy": "Fortran order",
	} {
		_, err := ReadFile(filepath.Join(dir, file))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: got error %v, want one naming the file and %q", file, err, want)
		}
	}
}

func TestBadFiles(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, &Array{Shape: []int{10}, Data: make([]float32, 10)}); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	cases := map[string][]byte{
		"not npy":   []byte("hello world, not numpy"),
		"truncated": full[:len(full)-3],
		"empty":     nil,
		"header":    full[:20],
	}
	for name, data := range cases {
		if _, err := Read(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.npy")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	if err := Write(&buf, &Array{Shape: []int{3}, Data: make([]float32, 2)}); err == nil {
		t.Error("shape/data mismatch accepted")
	}
}
