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

// TestHardSwishForwardFloat32 checks the float32 forward pass of HardSwish on every
// implementation (the vector loops of the assembly kernels, a chunk at a time, the last
// values through a block of scratch) against PyTorch's definition, x·relu6(x+3)/6, in
// float64: within three float32 roundings, NaN kept (and -Inf·0, NaN as in PyTorch), -0
// for -0 and zero below -3; over
// lengths past a chunk and with every tail; in place too; and a value's bits the same
// wherever it is.
func TestHardSwishForwardFloat32(t *testing.T) {
	inf := float32(math.Inf(1))
	special := []float32{0, float32(math.Copysign(0, -1)), 3, -3, 6, -6, 1.5, -1.5, math.Nextafter32(3, 4), math.Nextafter32(-3, -4),
		math.Nextafter32(3, 0), math.Nextafter32(-3, 0), inf, -inf, float32(math.NaN()), 1e-40, -1e-40, 1e30, -1e30}
	rng := newRNG(11)
	want := func(v float32) float64 {
		x := float64(v)
		return x * min(max(x+3, 0), 6) / 6
	}
	forEachImplementation(t, func(t *testing.T) {
		for _, n := range []int{1, 7, 16, 17, 100, 1024, 1031, 2500} {
			x := make([]float32, n)
			for i := range x {
				if i < len(special) && n >= len(special) {
					x[i] = special[i]
				} else {
					x[i] = float32(8 * randn(rng, 1)[0])
				}
			}
			y := make([]float32, n)
			UnaryForward(Unary{Op: HardSwish}, x, y)
			for i, v := range x {
				w, got := want(v), y[i]
				switch {
				case w != w: // NaN, and -Inf·0 as PyTorch has it
					if got == got {
						t.Fatalf("n=%d: HardSwish(%v) = %v, want NaN", n, v, got)
					}
				case math.IsInf(float64(v), 0) || w == 0:
					if float64(got) != w || math.Signbit(float64(got)) != math.Signbit(float64(v)) && v >= -3 {
						t.Fatalf("n=%d: HardSwish(%v) = %v, want %v", n, v, got, w)
					}
				case math.Abs(float64(got)-w) > 3.6e-7*math.Abs(w):
					t.Fatalf("n=%d: HardSwish(%v) = %v, want %v", n, v, got, w)
				}
			}
			in := append([]float32(nil), x...)
			UnaryForward(Unary{Op: HardSwish}, in, in)
			assertBits(t, "in place", in, y)
			// The same values one place later: every value's bits as before.
			shifted := append([]float32{1}, x...)
			ys := make([]float32, len(shifted))
			UnaryForward(Unary{Op: HardSwish}, shifted, ys)
			assertBits(t, "shifted by one", ys[1:], y)
		}
	})
}
