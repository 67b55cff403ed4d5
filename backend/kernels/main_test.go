package kernels

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain runs the tests, then, under CI and when every test ran (no -run), fails
// the package if the CPU supports a kernel path (AVX-512, AVX2) that no test ran
// (paths_test.go says which ran).
func TestMain(m *testing.M) {
	code := m.Run()
	if f := flag.Lookup("test.run"); code == 0 && (f == nil || f.Value.String() == "") {
		for _, line := range missedKernelPaths() {
			fmt.Fprintln(os.Stderr, "FAIL:", line)
			code = 1
		}
	}
	os.Exit(code)
}
