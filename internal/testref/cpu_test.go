package testref

import (
	"runtime"
	"testing"
)

// TestMissedKernelPaths checks the kernel-path check on this machine's own flags: under
// CI a path whose flags the CPU has is missed until it ran; a path needing a flag no CPU
// has never is; outside CI nothing is checked.
func TestMissedKernelPaths(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the check reads /proc/cpuinfo's x86 flags")
	}
	flags, err := CPUFlags()
	if err != nil {
		t.Fatal(err)
	}
	if !flags["sse2"] {
		t.Fatalf("an x86-64 CPU without sse2 in /proc/cpuinfo: %v", flags)
	}
	paths := []KernelPath{{"base", []string{"sse2"}}, {"future", []string{"sse2", "no_such_flag"}}}
	t.Setenv("CI", "1")
	if missed := MissedKernelPaths(paths, map[string]bool{}); len(missed) != 1 {
		t.Errorf("nothing ran: missed %q, want the base path alone", missed)
	}
	if missed := MissedKernelPaths(paths, map[string]bool{"base": true}); len(missed) != 0 {
		t.Errorf("the base path ran: missed %q", missed)
	}
	t.Setenv("CI", "")
	if missed := MissedKernelPaths(paths, map[string]bool{}); len(missed) != 0 {
		t.Errorf("outside CI: missed %q", missed)
	}
}
