package kernels

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestUseAndCurrent(t *testing.T) {
	orig := Current()
	defer func() {
		if err := Use(orig); err != nil {
			t.Error(err)
		}
	}()
	names := Implementations()
	if len(names) < 2 || names[len(names)-1] != "gonum" {
		t.Fatalf("implementations %v: want at least the portable one and gonum, gonum last", names)
	}
	for _, n := range names {
		if err := Use(n); err != nil {
			t.Fatalf("Use(%q): %v", n, err)
		}
		if Current() != n {
			t.Errorf("after Use(%q), Current() = %q", n, Current())
		}
	}
	err := Use("avx1024")
	if err == nil || !strings.Contains(err.Error(), `no GEMM "avx1024"`) || !strings.Contains(err.Error(), names[0]) {
		t.Errorf("Use of an unknown name: %v, want an error listing %v", err, names)
	}
	// The default is TOOLKIT_KERNELS's choice when set, else the build's: the fastest
	// kernel the CPU runs (the first implementation but openblas), or OpenBLAS under
	// the openblas tag, gonum under purego.
	want := buildDefaultBLAS().Name()
	if env := os.Getenv(EnvKernels); env != "" {
		b, err := blasNamed(env)
		if err != nil {
			t.Fatalf("%s=%s: %v", EnvKernels, env, err)
		}
		want = b.Name()
	}
	if got := defaultBLAS().Name(); got != want {
		t.Errorf("the default BLAS is %s, want %s", got, want)
	}
	if ks := asmKernels(); len(ks) > 0 && buildDefaultBLAS().Name() != (goBLAS{kern: ks[0]}).Name() && !slices.Contains(names, "openblas") {
		t.Errorf("the build's default %s is not the fastest kernel the CPU runs, %s", buildDefaultBLAS().Name(), ks[0].name)
	}
	t.Logf("implementations on this machine: %v", names)
}
