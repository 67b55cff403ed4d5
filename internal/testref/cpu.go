package testref

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// KernelPath is an instruction-set path of the toolkit's kernels and the CPU flags (as
// Linux's /proc/cpuinfo names them) a CPU needs to run it.
type KernelPath struct {
	Name  string
	Flags []string
}

// AMD64Paths are the x86-64 kernel paths: the AVX-512 micro-kernels need AVX-512F and
// VL, the AVX2 ones AVX2 and FMA.
var AMD64Paths = []KernelPath{
	{"avx512", []string{"avx512f", "avx512vl"}},
	{"avx2", []string{"avx2", "fma"}},
}

// CPUFlags reads the flags of the first processor in /proc/cpuinfo: the kernel's view
// of the CPU, independent of the golang.org/x/sys/cpu detection the kernels use.
func CPUFlags() (map[string]bool, error) {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "flags" {
			flags := map[string]bool{}
			for _, f := range strings.Fields(val) {
				flags[f] = true
			}
			return flags, nil
		}
	}
	return nil, fmt.Errorf("/proc/cpuinfo has no flags line")
}

// MissedKernelPaths returns, under CI (as .ci/run runs the tests) on an x86-64 Linux
// machine, a line for every kernel path of paths that the CPU supports (by
// /proc/cpuinfo) but that did not run (ran[name] is false): a test that passes without
// exercising a path the machine has proves nothing about it. Elsewhere it returns nil.
func MissedKernelPaths(paths []KernelPath, ran map[string]bool) []string {
	if os.Getenv("CI") == "" || runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		return nil
	}
	flags, err := CPUFlags()
	if err != nil {
		return []string{fmt.Sprintf("cannot tell which kernel paths the CPU supports: %v", err)}
	}
	var missed []string
	for _, p := range paths {
		supported := true
		for _, f := range p.Flags {
			supported = supported && flags[f]
		}
		if supported && !ran[p.Name] {
			missed = append(missed, fmt.Sprintf("the CPU supports the %s kernel path (/proc/cpuinfo: %s) but no test ran it", p.Name, strings.Join(p.Flags, ", ")))
		}
	}
	return missed
}
