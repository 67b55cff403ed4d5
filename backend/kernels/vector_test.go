package kernels

import (
	"math"
	"testing"
)

// TestVectorOps checks the vector axpy and dot of the depthwise convolutions against
// float64 loops, over lengths that leave every remainder.
func TestVectorOps(t *testing.T) {
	rng := newRNG(90)
	for n := 0; n < 150; n++ {
		x, y := to32(randn(rng, n)), to32(randn(rng, n))
		a := float32(rng.NormFloat64())
		got := append([]float32(nil), y...)
		axpy32(a, x, got)
		var dot float64
		for i := range x {
			want := float64(y[i]) + float64(a)*float64(x[i])
			if d := math.Abs(float64(got[i]) - want); d > 1e-6*(1+math.Abs(want)) {
				t.Fatalf("axpy n %d: [%d] = %g, want %g", n, i, got[i], want)
			}
			dot += float64(x[i]) * float64(y[i])
		}
		if d := math.Abs(float64(dot32(x, y)) - dot); d > 1e-5*(1+math.Abs(dot)) {
			t.Fatalf("dot n %d: %g, want %g", n, dot32(x, y), dot)
		}
	}
	t.Logf("vector assembly: %v", haveVectorAsm)
}
