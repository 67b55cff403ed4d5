package kernels

import (
	"math"
	"testing"
)

// TestPiecewiseLinearBackwardFloat32 checks the branch-free float32 backward passes of
// Clip, HardSigmoid and HardSwish against PyTorch's definitions written out with
// comparisons (aten's hardtanh_backward, hardsigmoid_backward, hardswish_backward), on
// random values and on every kink, infinity, signed zero and NaN, bit for bit.
func TestPiecewiseLinearBackwardFloat32(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	x := []float32{0, float32(math.Copysign(0, -1)), 6, -6, 3, -3, 2.5, -2.5, 0.5, -0.5, 1, -1,
		math.Nextafter32(3, 4), math.Nextafter32(-3, -4), math.Nextafter32(6, 0), math.Nextafter32(0, 1),
		math.Nextafter32(0, -1), inf, -inf, nan, 1e-40, -1e-40, 7, -7, 100}
	rng := newRNG(7)
	for _, v := range randn(rng, 200) {
		x = append(x, float32(4*v))
	}
	dy := make([]float32, len(x))
	for i, v := range randn(rng, len(x)) {
		dy[i] = float32(v)
	}
	dy[0], dy[3], dy[17] = inf, nan, -inf

	clip := func(lo, hi float32) func(v, g float32) float32 {
		return func(v, g float32) float32 {
			if v <= lo || v >= hi || v != v {
				return 0
			}
			return g
		}
	}
	hardSigmoid := func(a, b float32) func(v, g float32) float32 {
		return func(v, g float32) float32 {
			if z := a*v + b; z > 0 && z < 1 {
				return g * a
			}
			return 0
		}
	}
	hardSwish := func(v, g float32) float32 {
		if v < -3 {
			return 0
		}
		if v <= 3 {
			return g * (v/3 + 0.5)
		}
		return g
	}
	cases := []struct {
		u   Unary
		ref func(v, g float32) float32
	}{
		{Unary{Op: Clip, Lo: 0, Hi: 6}, clip(0, 6)},
		{Unary{Op: Clip, Lo: -0.5, Hi: math.Inf(1)}, clip(-0.5, inf)},
		{Unary{Op: Clip, Lo: math.Inf(-1), Hi: 1}, clip(-inf, 1)},
		{Unary{Op: Clip, Lo: math.Inf(-1), Hi: math.Inf(1)}, clip(-inf, inf)},
		{Unary{Op: HardSigmoid, Alpha: 0.2, Beta: 0.5}, hardSigmoid(0.2, 0.5)},
		{Unary{Op: HardSigmoid, Alpha: 1.0 / 6, Beta: 0.5}, hardSigmoid(1.0/6, 0.5)},
		{Unary{Op: HardSwish}, hardSwish},
	}
	// Every implementation (Clip's vector loops in the assembly kernels), the inputs
	// repeated past the vector blocks.
	for len(x) < 300 {
		x, dy = append(x, x...), append(dy, dy...)
	}
	forEachImplementation(t, func(t *testing.T) {
		for _, c := range cases {
			dx := make([]float32, len(x))
			y := make([]float32, len(x))
			UnaryForward(c.u, x, y)
			UnaryBackward(c.u, x, y, dy, dx)
			for i, v := range x {
				want := c.ref(v, dy[i])
				if got := dx[i]; math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
					t.Fatalf("%v(lo %v, hi %v, alpha %v) backward at x=%v, dy=%v: %v, want %v", c.u.Op, c.u.Lo, c.u.Hi, c.u.Alpha, v, dy[i], got, want)
				}
				if v != v && y[i] == y[i] {
					t.Fatalf("%v(lo %v, hi %v) of NaN: %v", c.u.Op, c.u.Lo, c.u.Hi, y[i])
				}
			}
		}
	})
}
