package onnx

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"toolkit/internal/testref"
)

// nodeTestDir holds the ONNX backend node tests (Debian's libonnx-testdata).
const nodeTestDir = "/usr/share/libonnx-testdata/data/node"

// python is Debian's interpreter, which has torch, torchvision and onnx.
const python = "/usr/bin/python3"

// needPython skips the test unless /usr/bin/python3 can import every module listed.
func needPython(t testing.TB, modules ...string) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		testref.Missing(t, "%s not found", python)
	}
	script := "import " + strings.Join(modules, ", ")
	if out, err := exec.Command(python, "-c", script).CombinedOutput(); err != nil {
		testref.Missing(t, "%s cannot import %s: %v: %s", python, strings.Join(modules, ", "), err, out)
	}
}

// runPython runs a Python script with args and returns its standard output.
func runPython(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(python, append([]string{"-c", script}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return out
}

func testdata(name ...string) string {
	return filepath.Join(append([]string{"testdata"}, name...)...)
}

func mustRead(t testing.TB, path string) *Model {
	t.Helper()
	m, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// nodeTests lists the node test folders, skipping the test when they are not installed.
func nodeTests(t testing.TB) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(nodeTestDir, "test_*"))
	if err != nil || len(dirs) == 0 {
		testref.Missing(t, "no ONNX node tests in %s", nodeTestDir)
	}
	return dirs
}
