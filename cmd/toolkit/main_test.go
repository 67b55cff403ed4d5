package main

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/npy"
	"toolkit/onnx"
)

// runMainEnv, set to 1, makes the test binary run main instead of the tests: the tests
// that need the command as its own process (a signal to it) start the binary so.
const runMainEnv = "RUN_TOOLKIT_MAIN_FOR_TEST"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCLI runs the CLI in-process and returns its output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

const fixture = "../../testdata/parity/vgg_classifier_opset13"

func TestImportAndCut(t *testing.T) {
	dir := t.TempDir()
	out, err := runCLI(t, "import", filepath.Join(fixture, "model.onnx"), "--headless", "-o", filepath.Join(dir, "base.onnx"), "--write-config", filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"Conv", "MaxPool", "block2", "Headless:    yes", "[N 8 4 4]"} {
		if !strings.Contains(out, want) {
			t.Errorf("import output lacks %q:\n%s", want, out)
		}
	}
	m, err := onnx.Read(filepath.Join(dir, "base.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !onnx.IsHeadless(m) {
		t.Error("the cut model is not headless")
	}
	if _, err := os.Stat(filepath.Join(dir, "config.yaml")); err != nil {
		t.Error(err)
	}
	out, err = runCLI(t, "import", filepath.Join(fixture, "model.onnx"), "--json")
	if err != nil || !strings.Contains(out, `"op_type": "Gemm"`) && !strings.Contains(out, `"op": "Gemm"`) {
		t.Errorf("--json: %v\n%s", err, out)
	}
}

func TestRunMatchesPyTorch(t *testing.T) {
	dir := t.TempDir()
	out, err := runCLI(t, "run", filepath.Join(fixture, "model.onnx"), "-i", filepath.Join(fixture, "input.npy"), "-o", filepath.Join(dir, "out.npy"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "forward") {
		t.Errorf("run prints no timing: %s", out)
	}
	got, err := npy.ReadFile(filepath.Join(dir, "out.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := npy.ReadFile(filepath.Join(fixture, "output.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Shape, want.Shape) || len(got.Data) != len(want.Data) {
		t.Fatalf("output shape %v (%d values), PyTorch %v (%d values)", got.Shape, len(got.Data), want.Shape, len(want.Data))
	}
	// The parity tolerance: max |ours - torch| / max |torch|.
	var diff, scale float64
	for i := range want.Data {
		diff = max(diff, math.Abs(float64(got.Data[i])-float64(want.Data[i])))
		scale = max(scale, math.Abs(float64(want.Data[i])))
	}
	if diff > 1e-4*scale {
		t.Errorf("output: max |diff| %.3g against PyTorch, whose outputs reach %.3g", diff, scale)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(fixture, "model.onnx")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	raw, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	truncated := write("truncated.onnx", raw[:len(raw)/2])
	notONNX := write("notonnx.onnx", []byte("this is a text file, not a model\n"))
	wrongRank := filepath.Join(dir, "rank.npy")
	npy.WriteFile(wrongRank, &npy.Array{Shape: []int{3, 16, 16}, Data: make([]float32, 3*16*16)})
	wrongShape := filepath.Join(dir, "shape.npy")
	npy.WriteFile(wrongShape, &npy.Array{Shape: []int{1, 3, 8, 8}, Data: make([]float32, 3*8*8)})
	wrongDtype := filepath.Join(dir, "f64.npy")
	if out, err := exec.Command("/usr/bin/python3", "-c", "import numpy,sys; numpy.save(sys.argv[1], numpy.zeros((1,3,16,16)))", wrongDtype).CombinedOutput(); err != nil {
		t.Fatalf("making a float64 .npy with numpy: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out.npy")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing file", []string{"import", filepath.Join(dir, "nope.onnx")}, []string{"nope.onnx", "no such file"}},
		{"not onnx", []string{"import", notONNX}, []string{"notonnx.onnx", "not an ONNX model"}},
		{"truncated", []string{"import", truncated}, []string{"truncated.onnx"}},
		{"unknown cut", []string{"import", model, "--cut-at", "no_such_node"}, []string{`"no_such_node"`}},
		{"headless and cut-at", []string{"import", model, "--headless", "--cut-at", "/features/features.3/Conv", "-o", filepath.Join(dir, "cut.onnx")}, []string{"--headless or --cut-at, not both"}},
		{"input rank", []string{"run", model, "-i", wrongRank, "-o", out}, []string{`input "input"`, "rank 4"}},
		{"input shape", []string{"run", model, "-i", wrongShape, "-o", out}, []string{`input "input"`, "[1 3 8 8]", "[N 3 16 16]"}},
		{"input dtype", []string{"run", model, "-i", wrongDtype, "-o", out}, []string{"f64.npy", "want float32"}},
		{"missing input", []string{"run", model, "-i", filepath.Join(dir, "none.npy"), "-o", out}, []string{"none.npy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := runCLI(t, c.args...)
			t.Log(err)
			if err == nil {
				t.Fatalf("no error; output:\n%s", got)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, p := range []string{out, filepath.Join(dir, "cut.onnx")} {
				if _, statErr := os.Stat(p); statErr == nil {
					t.Errorf("a failed command left %s behind", p)
				}
			}
		})
	}
}
