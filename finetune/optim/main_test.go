package optim

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"

	"toolkit/internal/testref"
)

// adamRan records the Adam kernels TestAdamKernelsAgree ran.
var adamRan = map[string]bool{}

// TestMain runs the tests, then, under CI and when every test ran (no -run), fails
// the package if the CPU supports an Adam kernel path (AVX-512F, AVX2) that no test ran.
// A -tags purego build leaves the assembly out by design.
func TestMain(m *testing.M) {
	code := m.Run()
	if f := flag.Lookup("test.run"); code == 0 && (f == nil || f.Value.String() == "") && !puregoBuild && runtime.GOARCH == "amd64" {
		paths := []testref.KernelPath{{Name: "avx512", Flags: []string{"avx512f"}}, {Name: "avx2", Flags: []string{"avx2"}}}
		for _, line := range testref.MissedKernelPaths(paths, adamRan) {
			fmt.Fprintln(os.Stderr, "FAIL:", line)
			code = 1
		}
	}
	os.Exit(code)
}
