package kernels

import (
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
	if b, err := blasNamed(orig); err != nil || defaultBLAS().Name() != b.Name() {
		t.Logf("default %s (TOOLKIT_KERNELS may be set)", defaultBLAS().Name())
	}
	t.Logf("implementations on this machine: %v", names)
}
