package kernels

import (
	"math"
	"testing"
)

// TestBatchNormSiLUFused checks the normalization with a SiLU fused after it
// (EfficientNet's), in float32 on every implementation and in float64, against the
// formulas in float64: the training forward pass y = s·σ(s) with s = scale·(x −
// mean)/√(var + ε) + bias over the batch's statistics, its data gradient through the
// SiLU's derivative (which the fused pair recomputes s for instead of keeping it), and
// the inference pass and its masked gradient over the running statistics. The output
// must also be the SiLU of the normalization's output as the backward pass recomputes
// it from the saved statistics, bit for bit, and BatchNormActivationMask must give the
// fused backward's masked gradient bit for bit.
func TestBatchNormSiLUFused(t *testing.T) {
	shapes := []BatchNormParams{
		{N: 3, C: 4, HW: 7, Epsilon: 1e-5, Momentum: 0.9},
		{N: 2, C: 5, HW: 100, Epsilon: 1e-3, Momentum: 0.8},
		{N: 2, C: 3, HW: 333, Epsilon: 1e-5, Momentum: 0.9},
	}
	silu := Activation{Kind: SiLUActivation}
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	forEachImplementation(t, func(t *testing.T) {
		rng := newRNG(29)
		for si, p := range shapes {
			x, dy := randn(rng, p.XLen()), randn(rng, p.XLen())
			for i := range x {
				x[i] = 3*x[i] + 1
			}
			scale, bias, rm, rv := randn(rng, p.C), randn(rng, p.C), randn(rng, p.C), make([]float64, p.C)
			for c := range rv {
				rv[c] = 1 + rng.Float64()
			}
			// The references in float64.
			m := float64(p.N * p.HW)
			want := siluResults{make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x))}
			dz := make([]float64, len(x)) // the gradient at the normalization's output
			for c := 0; c < p.C; c++ {
				var sum, sq float64
				each := func(f func(i int)) {
					for n := 0; n < p.N; n++ {
						for i := (n*p.C + c) * p.HW; i < (n*p.C+c+1)*p.HW; i++ {
							f(i)
						}
					}
				}
				each(func(i int) { sum += x[i] })
				mean := sum / m
				each(func(i int) { sq += (x[i] - mean) * (x[i] - mean) })
				inv := 1 / math.Sqrt(sq/m+p.Epsilon)
				var sumDz, sumDzXhat float64
				each(func(i int) {
					xhat := (x[i] - mean) * inv
					s := scale[c]*xhat + bias[c]
					want.y[i] = s * sig(s)
					dz[i] = dy[i] * sig(s) * (1 + s*(1-sig(s)))
					sumDz += dz[i]
					sumDzXhat += dz[i] * xhat
				})
				each(func(i int) {
					xhat := (x[i] - mean) * inv
					want.dx[i] = scale[c] * inv * (dz[i] - sumDz/m - xhat*sumDzXhat/m)
				})
				invR := 1 / math.Sqrt(rv[c]+p.Epsilon)
				each(func(i int) {
					s := scale[c]*(x[i]-rm[c])*invR + bias[c]
					want.yi[i] = s * sig(s)
					want.dxi[i] = dy[i] * sig(s) * (1 + s*(1-sig(s))) * scale[c] * invR
				})
			}
			check := func(what string, got, want []float64, tol float64) {
				t.Helper()
				scale := 0.0
				for _, v := range want {
					scale = math.Max(scale, math.Abs(v))
				}
				for i := range want {
					if math.Abs(got[i]-want[i]) > tol*scale {
						t.Fatalf("shape %d %s[%d] = %g, float64 %g", si, what, i, got[i], want[i])
					}
				}
			}
			for _, f32 := range []bool{true, false} {
				var got siluResults
				if f32 {
					got = siluPair(p, silu, to32(x), to32(scale), to32(bias), to32(rm), to32(rv), to32(dy), t)
				} else {
					got = siluPair(p, silu, x, scale, bias, rm, rv, dy, t)
				}
				tol := 1e-12
				if f32 {
					tol = 1e-5
				}
				check("training y", got.y, want.y, tol)
				check("training dx", got.dx, want.dx, 20*tol)
				check("inference y", got.yi, want.yi, tol)
				check("inference dx", got.dxi, want.dxi, tol)
			}
		}
	})
}

type siluResults struct{ y, dx, yi, dxi []float64 }

// siluPair runs the fused normalization and SiLU in T: training forward and data
// gradient, inference forward and masked data gradient. It checks that the output is
// the SiLU of the recomputed normalization output bit for bit, and that
// BatchNormActivationMask masks as the fused backward does.
func siluPair[T Float](p BatchNormParams, act Activation, x, scale, bias, rm, rv, dy []T, t *testing.T) siluResults {
	t.Helper()
	n := p.XLen()
	y, mean, inv := make([]T, n), make([]T, p.C), make([]T, p.C)
	BatchNormTrainForwardAct(p, x, scale, bias, y, mean, inv, nil, nil, act)
	pre := make([]T, p.HW)
	for i := 0; i < p.N; i++ {
		for c := 0; c < p.C; c++ {
			a, b := bnAffine(act, scale[c], bias[c], float64(mean[c]), float64(inv[c]))
			bnPreActivation(p, channelOf(p, x, nil, c, nil), a, b, i, pre)
			UnaryForward(Unary{Op: SiLU}, pre, pre)
			o := (i*p.C + c) * p.HW
			for j, v := range pre {
				if math.Float64bits(float64(v)) != math.Float64bits(float64(y[o+j])) {
					t.Fatalf("plane (%d, %d) [%d]: output %v, SiLU of the recomputed normalization %v", i, c, j, y[o+j], v)
				}
			}
		}
	}
	g, dx := append([]T(nil), dy...), make([]T, n)
	BatchNormTrainBackward(p, x, scale, bias, mean, inv, act, nil, g, dx, make([]float64, p.C), make([]float64, p.C))
	masked := append([]T(nil), dy...)
	BatchNormActivationMask(p, act, x, scale, bias, mean, inv, nil, masked)
	for i := range g {
		if math.Float64bits(float64(g[i])) != math.Float64bits(float64(masked[i])) {
			t.Fatalf("[%d]: BatchNormActivationMask %v, the fused backward %v", i, masked[i], g[i])
		}
	}
	yi, invR := make([]T, n), make([]T, p.C)
	BatchNormInferenceAct(p, x, scale, bias, rm, rv, yi, act)
	BatchNormInvStd(p, rv, invR)
	gi, dxi := append([]T(nil), dy...), make([]T, n)
	BatchNormActivationMask(p, act, x, scale, bias, rm, invR, nil, gi)
	BatchNormInferenceBackwardData(p, scale, rv, gi, dxi)
	return siluResults{to64(y), to64(dx), to64(yi), to64(dxi)}
}
