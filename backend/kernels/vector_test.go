package kernels

import (
	"math"
	"testing"
)

type vectorVariant struct {
	name string
	axpy func(a float32, x, y []float32)
	dot  func(x, y []float32) float32
}

// TestVectorOps checks the vector axpy and dot of the depthwise convolutions (the loops
// the CPU dispatches to, and each assembly loop it runs on its own) against float64
// loops, over lengths that leave every remainder.
func TestVectorOps(t *testing.T) {
	variants := append([]vectorVariant{{"dispatched", axpy32, dot32}}, vectorVariants()...)
	var ran []string
	for _, v := range variants {
		rng := newRNG(90)
		for n := 1; n < 150; n++ {
			x, y := to32(randn(rng, n)), to32(randn(rng, n))
			a := float32(rng.NormFloat64())
			got := append([]float32(nil), y...)
			v.axpy(a, x, got)
			var dot float64
			for i := range x {
				want := float64(y[i]) + float64(a)*float64(x[i])
				if d := math.Abs(float64(got[i]) - want); d > 1e-6*(1+math.Abs(want)) {
					t.Fatalf("%s axpy n %d: [%d] = %g, want %g", v.name, n, i, got[i], want)
				}
				dot += float64(x[i]) * float64(y[i])
			}
			if d := math.Abs(float64(v.dot(x, y)) - dot); d > 1e-5*(1+math.Abs(dot)) {
				t.Fatalf("%s dot n %d: %g, want %g", v.name, n, v.dot(x, y), dot)
			}
		}
		ran = append(ran, v.name)
	}
	t.Logf("ran %v", ran)
}

// TestSigmoidEveryImplementation checks SigmoidForward in float32 on every
// implementation (the vector assembly of the AVX-512 and AVX2 kernels, the
// float64 loop elsewhere) against the float64 formula: within 3e-7 relative
// (1e-38 absolute where the result underflows), NaN kept, every length up to
// 70 (the vector remainders), 0 and 1 at the extremes. The assembly paths must
// also agree bit for bit, so that a run gives the same numbers on either.
func TestSigmoidEveryImplementation(t *testing.T) {
	rng := newRNG(17)
	var x []float32
	for range 3000 {
		x = append(x, float32(rng.NormFloat64()*20))
	}
	x = append(x, 0, 1e-9, -1e-9, 87, -87, 88.5, -88.5, 89, -89, 200, -200,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, -math.MaxFloat32)
	var first []float32
	var firstName string
	forEachImplementation(t, func(t *testing.T) {
		y := make([]float32, len(x))
		SigmoidForward(x, y)
		for i, v := range x {
			want := 1 / (1 + math.Exp(-float64(v)))
			got := float64(y[i])
			if math.IsNaN(want) != math.IsNaN(got) || math.Abs(got-want) > 3e-7*want+1e-38 {
				t.Fatalf("sigmoid(%g) = %g, want %g", v, got, want)
			}
		}
		for n := 0; n <= 70; n++ { // the tails: the same values as the long call
			part := make([]float32, n)
			SigmoidForward(x[:n], part)
			for i := range part {
				if part[i] != y[i] {
					t.Fatalf("length %d: sigmoid(%g) = %g, in the long call %g", n, x[i], part[i], y[i])
				}
			}
		}
		if kern := packedKernel[float32](); kern != nil && kern.sigmoid != nil {
			if first == nil {
				first, firstName = y, Current()
				return
			}
			for i := range y {
				if math.Float32bits(y[i]) != math.Float32bits(first[i]) {
					t.Fatalf("sigmoid(%g): %s gives %g, %s %g", x[i], Current(), y[i], firstName, first[i])
				}
			}
		}
	})
}

// TestSiLUEveryImplementation checks the float32 SiLU (x·σ(x)) and its derivative on every
// implementation (the AVX-512 and AVX2 loops on the vector sigmoid, the float64 loop
// elsewhere) against the float64 formulas, within 1e-6 relative (1e-36 absolute: the
// vector sigmoid is 0 below x = -88.4), NaN kept; over lengths around the vector widths
// (the masked remainders), written over its input as the executor runs it; and the
// vector paths bit for bit alike.
func TestSiLUEveryImplementation(t *testing.T) {
	rng := newRNG(19)
	var x, dy []float32
	for range 549 {
		x = append(x, float32(rng.NormFloat64()*8))
		dy = append(dy, float32(rng.NormFloat64()))
	}
	x = append(x, 0, 1e-9, -1e-9, 87, -87, 89, -89, 200, -200, float32(math.Inf(1)), float32(math.NaN()))
	for len(dy) < len(x) {
		dy = append(dy, 1)
	}
	u := Unary{Op: SiLU}
	close := func(got, want float64) bool {
		return math.IsNaN(want) == math.IsNaN(got) && (math.IsNaN(want) || math.Abs(got-want) <= 1e-6*math.Abs(want)+1e-36 || got == want)
	}
	asm := 0
	var first, firstD []float32
	var firstName string
	forEachImplementation(t, func(t *testing.T) {
		y, dx := make([]float32, len(x)), make([]float32, len(x))
		UnaryForward(u, x, y)
		UnaryBackward(u, x, nil, dy, dx)
		for i, v := range x {
			f := float64(v)
			s := logistic(f)
			if want := f * s; !close(float64(y[i]), want) && !math.IsInf(f, 0) {
				t.Fatalf("silu(%g) = %g, want %g", v, y[i], want)
			}
			// Near x = -1.28, where the derivative crosses 0, its terms cancel: the
			// bound is relative to their magnitudes.
			want, scale := float64(dy[i])*s*(1+f*(1-s)), math.Abs(float64(dy[i]))*s*(1+math.Abs(f)*(1-s))
			if !math.IsInf(f, 0) && !(math.IsNaN(want) && math.IsNaN(float64(dx[i]))) && !(math.Abs(float64(dx[i])-want) <= 1e-6*scale+1e-36) {
				t.Fatalf("silu'(%g)·%g = %g, want %g", v, dy[i], dx[i], want)
			}
		}
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 515} {
			over := append([]float32(nil), x[:n]...)
			UnaryForward(u, over, over)
			gover := append([]float32(nil), dy[:n]...)
			UnaryBackward(u, x[:n], nil, gover, gover)
			for i := range over {
				if math.Float32bits(over[i]) != math.Float32bits(y[i]) || math.Float32bits(gover[i]) != math.Float32bits(dx[i]) {
					t.Fatalf("length %d, in place: silu(%g) = %g, gradient %g; in the long call %g, %g", n, x[i], over[i], gover[i], y[i], dx[i])
				}
			}
		}
		if kern := packedKernel[float32](); kern != nil && kern.silu != nil {
			asm++
		}
		if kern := packedKernel[float32](); kern != nil && kern.sigmoid != nil {
			if first == nil {
				first, firstD, firstName = y, dx, Current()
				return
			}
			for i := range y {
				if math.Float32bits(y[i]) != math.Float32bits(first[i]) || math.Float32bits(dx[i]) != math.Float32bits(firstD[i]) {
					t.Fatalf("silu(%g): %s gives %g and %g, %s %g and %g", x[i], Current(), y[i], dx[i], firstName, first[i], firstD[i])
				}
			}
		}
	})
	if want := len(asmKernels()); asm != want {
		t.Errorf("%d implementations ran the SiLU loops; this CPU has %d", asm, want)
	}
}

// TestGeluFloat32 checks the float32 Gelu and its gradient (erf32 and exp32, and the
// vector loops of every implementation that has them) against the float64 formulas
// with math.Erf and math.Exp, over [-12, 12] in steps of 1/1024 and at the extremes:
// erf32 within 4.2e-7 absolute, exp32 within 2 ulp, Gelu within 1e-6 of max(1, |x|),
// the gradient within 1e-6 of max(1, |dy·x·φ(x)|); NaN kept; every length, in place;
// the vector instruction sets give the same bits.
func TestGeluFloat32(t *testing.T) {
	var xs []float32
	for i := -12 * 1024; i <= 12*1024; i++ {
		xs = append(xs, float32(i)/1024)
	}
	xs = append(xs, 1e-30, -1e-30, 50, -50, 1e30, -1e30)
	// The clamp to [-4, 4] keeps NaN, -0 and the infinities' signs.
	if v := erf32(float32(math.NaN())); v == v {
		t.Errorf("erf32(NaN) = %g", v)
	}
	if v := erf32(float32(math.Copysign(0, -1))); v != 0 || !math.Signbit(float64(v)) {
		t.Errorf("erf32(-0) = %g", v)
	}
	if a, b := erf32(float32(math.Inf(1))), erf32(float32(math.Inf(-1))); a != erf32(4) || b != erf32(-4) {
		t.Errorf("erf32(±Inf) = %g, %g", a, b)
	}
	for _, x := range xs {
		if d := math.Abs(float64(erf32(x)) - math.Erf(float64(x))); d > 4.2e-7 {
			t.Fatalf("erf32(%g) = %g, math.Erf %g", x, erf32(x), math.Erf(float64(x)))
		}
		if e := -0.5 * x * x; e > -87 {
			got, want := float64(exp32(e)), math.Exp(float64(e))
			if math.Abs(got-want) > 2.4e-7*want {
				t.Fatalf("exp32(%g) = %g, math.Exp %g", e, got, want)
			}
		}
	}
	dy := make([]float32, len(xs))
	for i := range dy {
		dy[i] = float32(i%5) - 1.7
	}
	asm := 0
	var first, firstD []float32
	var firstName string
	forEachImplementation(t, func(t *testing.T) {
		y, dx := make([]float32, len(xs)), make([]float32, len(xs))
		geluForward32(xs, y)
		geluBackward32(xs, dy, dx)
		for i, x := range xs {
			f := float64(x)
			cdf := 0.5 * (1 + math.Erf(f/math.Sqrt2))
			pdf := math.Exp(-f*f/2) / math.Sqrt(2*math.Pi)
			if want := f * cdf; math.Abs(float64(y[i])-want) > 1e-6*math.Max(1, math.Abs(f)) {
				t.Fatalf("gelu(%g) = %g, want %g", x, y[i], want)
			}
			g := float64(dy[i])
			if want := g * (cdf + f*pdf); math.Abs(float64(dx[i])-want) > 1e-6*math.Max(1, math.Abs(g*f*pdf)) {
				t.Fatalf("gelu'(%g)·%g = %g, want %g", x, g, dx[i], want)
			}
		}
		nan := []float32{float32(math.NaN()), 1, float32(math.NaN())}
		ny, ndx := make([]float32, 3), make([]float32, 3)
		geluForward32(nan, ny)
		geluBackward32(nan, dy[:3], ndx)
		if ny[0] == ny[0] || ndx[0] == ndx[0] || ny[2] == ny[2] || ndx[2] == ndx[2] || ny[1] != ny[1] {
			t.Errorf("gelu of NaN, 1, NaN: %g, gradient %g", ny, ndx)
		}
		// Every length (the vector loops' masked remainders), in place, from the middle of
		// xs (around 0, where the outputs differ), nothing written past the end.
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 515} {
			off := len(xs)/2 - n/2
			over := append(append([]float32(nil), xs[off:off+n]...), 7)
			geluForward32(over[:n], over[:n])
			gover := append(append([]float32(nil), dy[off:off+n]...), 7)
			geluBackward32(xs[off:off+n], gover[:n], gover[:n])
			if over[n] != 7 || gover[n] != 7 {
				t.Fatalf("length %d: written past the end", n)
			}
			for i := range n {
				j := off + i
				if math.Float32bits(over[i]) != math.Float32bits(y[j]) || math.Float32bits(gover[i]) != math.Float32bits(dx[j]) {
					t.Fatalf("length %d, in place: gelu(%g) = %g, gradient %g; in the long call %g, %g", n, xs[j], over[i], gover[i], y[j], dx[j])
				}
			}
		}
		if kern := packedKernel[float32](); kern != nil && kern.gelu != nil {
			asm++
			// The instruction sets give the same bits.
			if first == nil {
				first, firstD, firstName = y, dx, Current()
				return
			}
			for i := range y {
				if math.Float32bits(y[i]) != math.Float32bits(first[i]) || math.Float32bits(dx[i]) != math.Float32bits(firstD[i]) {
					t.Fatalf("gelu(%g): %s gives %g and %g, %s %g and %g", xs[i], Current(), y[i], dx[i], firstName, first[i], firstD[i])
				}
			}
		}
	})
	if want := len(asmKernels()); asm != want {
		t.Errorf("%d implementations ran the Gelu loops; this CPU has %d", asm, want)
	}
}
