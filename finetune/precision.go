package finetune

import (
	"fmt"

	"toolkit/backend/kernels"
)

// usePrecision selects the matrix products of the recipe's precision for the process
// (kernels.Use: the GEMM is process-wide, like GOMAXPROCS) and returns what puts the
// previous ones back. float32 (or empty) keeps the float32 GEMM in use (TOOLKIT_KERNELS
// may have chosen one); bf16 needs AVX512_BF16 and is refused, with the reason, where
// the CPU lacks it.
func usePrecision(p string) (restore func(), err error) {
	switch p {
	case "", "float32":
		return func() {}, nil
	case "bf16":
		prev := kernels.Current()
		if err := kernels.Use(kernels.BF16); err != nil {
			return nil, fmt.Errorf("precision: bf16: %w", err)
		}
		return func() { _ = kernels.Use(prev) }, nil
	}
	return nil, fmt.Errorf("precision: %q is not float32 or bf16", p)
}
