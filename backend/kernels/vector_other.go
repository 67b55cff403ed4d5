//go:build !amd64 || purego

package kernels

const haveVectorAsm = false

func axpy32(a float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

func dot32(x, y []float32) float32 {
	y = y[:len(x)]
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

func toBF16Run(src []float32, dst []uint16)   { toBF16Go(src, dst) }
func fromBF16Run(src []uint16, dst []float32) { fromBF16Go(src, dst) }

// reluMaskBF16Run reports false: no assembly here.
func reluMaskBF16Run(y []uint16, dy, dx []float32) bool { return false }
