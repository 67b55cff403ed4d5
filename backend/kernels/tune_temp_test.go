package kernels

import (
	"fmt"
	"testing"
)

func BenchmarkSgemmSerialTune(b *testing.B) {
	for _, s := range [][3]int{{512, 512, 512}, {64, 3136, 576}, {256, 784, 2304}, {512, 196, 4608}, {512, 32, 4608}, {64, 4608, 196}} {
		m, n, k := s[0], s[1], s[2]
		a, bb, c := randf32(m*k, 1), randf32(k*n, 2), make([]float32, m*n)
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			benchFLOPs(b, int64(2*m*n*k), func() { sgemmSerial(false, false, m, n, k, 1, a, k, bb, n, 0, c, n) })
		})
	}
}
