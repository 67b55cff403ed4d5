package kernels

import (
	"fmt"
	"os"
	"strings"
)

// The GEMM behind [Gemm] is chosen once, when the package starts: the
// fastest assembly micro-kernel the CPU runs (detected at run time with
// golang.org/x/sys/cpu), unless the TOOLKIT_KERNELS environment variable
// names another of [Implementations], or a build tag chose a BLAS
// (openblas, purego). [Use] changes it; like GOMAXPROCS it is process-wide,
// meant for start-up, benchmarks and tests, and must not be called while
// kernels run.

// EnvKernels is the environment variable that selects the implementation.
const EnvKernels = "TOOLKIT_KERNELS"

// Implementations returns the names of the float32 GEMMs this build can
// run on this CPU, fastest first: "avx512" and "avx2" (the toolkit's
// assembly micro-kernels), "go" (the same packed GEMM with a portable
// micro-kernel), "gonum", and "openblas" under the openblas tag.
func Implementations() []string {
	var names []string
	for _, k := range asmKernels() {
		names = append(names, k.name)
	}
	names = append(names, kernelGo.name, "gonum")
	if _, ok := openBLASImpl(); ok {
		names = append([]string{"openblas"}, names...)
	}
	return names
}

// KernelRuns returns, for each GEMM micro-kernel this build has (avx512 and avx2 where
// the CPU runs them, go), how many blocks it has multiplied in this process: the tests
// use it to check that every kernel path the CPU supports ran.
func KernelRuns() map[string]int64 {
	out := map[string]int64{kernelGo.name: kernelGo.runs.Load()}
	for _, k := range asmKernels() {
		out[k.name] = k.runs.Load()
	}
	return out
}

// Current returns the name, as in [Implementations], of the float32 GEMM in
// use.
func Current() string {
	switch b := blasImpl.(type) {
	case goBLAS:
		return b.kern.name
	case gonumBLAS:
		return "gonum"
	}
	return "openblas"
}

// BF16 is the name [Use] takes for the bfloat16 products (bf16.go): float32 matrices
// whose operands are rounded to bfloat16 as they are packed, the products accumulated in
// float32, on AVX512_BF16. It is not among [Implementations], the float32 GEMMs.
const BF16 = "avx512bf16"

// BF16Available returns nil where this build and CPU run the bfloat16 products, else
// an error saying what is missing.
func BF16Available() error {
	if bf16Kernel() != nil {
		return nil
	}
	if len(asmKernels()) == 0 {
		return fmt.Errorf("kernels: bfloat16 products need this build's AVX-512 assembly (amd64, without the purego tag)")
	}
	return fmt.Errorf("kernels: bfloat16 products need a CPU with AVX512_BF16 (AMD Zen 4 or later, Intel Cooper Lake, Sapphire Rapids or later); this one lacks it, and they are not emulated")
}

// Use selects the float32 GEMM by one of the names of [Implementations], or the
// bfloat16 products by [BF16].
func Use(name string) error {
	b, err := blasNamed(name)
	if err != nil {
		return err
	}
	blasImpl = b
	return nil
}

func blasNamed(name string) (BLAS, error) {
	if name == BF16 {
		if err := BF16Available(); err != nil {
			return nil, err
		}
		return goBLAS{kern: bf16Kernel()}, nil
	}
	for _, k := range asmKernels() {
		if k.name == name {
			return goBLAS{kern: k}, nil
		}
	}
	switch name {
	case kernelGo.name:
		return goBLAS{kern: kernelGo}, nil
	case "gonum":
		return gonumBLAS{}, nil
	case "openblas":
		if b, ok := openBLASImpl(); ok {
			return b, nil
		}
	}
	return nil, fmt.Errorf("kernels: no GEMM %q on this machine and build (have %s)", name, strings.Join(Implementations(), ", "))
}

// defaultBLAS is the implementation the package starts with. A bad
// TOOLKIT_KERNELS value is reported once on standard error and ignored.
func defaultBLAS() BLAS {
	if name := os.Getenv(EnvKernels); name != "" {
		b, err := blasNamed(name)
		if err == nil {
			return b
		}
		fmt.Fprintf(os.Stderr, "%s=%s ignored: %v\n", EnvKernels, name, err)
	}
	return buildDefaultBLAS()
}
