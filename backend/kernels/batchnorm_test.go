package kernels

import (
	"fmt"
	"math"
	"testing"
)

var bnShapes = []BatchNormParams{
	{N: 2, C: 3, HW: 5, Epsilon: 1e-5, Momentum: 0.9},
	{N: 4, C: 2, HW: 1, Epsilon: 1e-3, Momentum: 0.5},
	{N: 1, C: 4, HW: 6, Epsilon: 1e-5, Momentum: 0.9},
}

func TestBatchNormInference(t *testing.T) {
	rng := newRNG(20)
	for i, p := range bnShapes {
		x, dy := randn(rng, p.XLen()), randn(rng, p.XLen())
		scale, bias, mean := randn(rng, p.C), randn(rng, p.C), randn(rng, p.C)
		variance := make([]float64, p.C)
		for c := range variance {
			variance[c] = 0.5 + rng.Float64()
		}
		y := make([]float64, p.XLen())
		BatchNormInference(p, x, scale, bias, mean, variance, y)
		for j := range y {
			c := j / p.HW % p.C
			want := scale[c]*(x[j]-mean[c])/math.Sqrt(variance[c]+p.Epsilon) + bias[c]
			if math.Abs(y[j]-want) > 1e-14 {
				t.Fatalf("shape %d: y[%d] = %g, want %g", i, j, y[j], want)
			}
		}
		fwd := func() []float64 { BatchNormInference(p, x, scale, bias, mean, variance, y); return y }
		dx, ds, db := make([]float64, p.XLen()), make([]float64, p.C), make([]float64, p.C)
		BatchNormInferenceBackwardData(p, scale, variance, dy, dx)
		checkGrad(t, fmt.Sprintf("shape %d inference dX", i), x, dy, dx, fwd)
		BatchNormInferenceBackwardScale(p, x, mean, variance, dy, ds)
		checkGrad(t, fmt.Sprintf("shape %d inference dScale", i), scale, dy, ds, fwd)
		BatchNormBackwardBias(p, dy, db)
		checkGrad(t, fmt.Sprintf("shape %d inference dBias", i), bias, dy, db, fwd)
	}
}

func TestBatchNormTraining(t *testing.T) {
	rng := newRNG(21)
	for i, p := range bnShapes {
		x, dy := randn(rng, p.XLen()), randn(rng, p.XLen())
		for j := range x {
			x[j] = 3*x[j] + 1
		}
		scale, bias := randn(rng, p.C), randn(rng, p.C)
		y := make([]float64, p.XLen())
		mean, inv := make([]float64, p.C), make([]float64, p.C)
		rm, rv := randn(rng, p.C), make([]float64, p.C)
		for c := range rv {
			rv[c] = 1 + rng.Float64()
		}
		rm0, rv0 := append([]float64{}, rm...), append([]float64{}, rv...)
		BatchNormTrainForward(p, x, scale, bias, y, mean, inv, rm, rv)

		// Statistics from their definitions.
		m := float64(p.N * p.HW)
		for c := 0; c < p.C; c++ {
			var s, ss float64
			for n := 0; n < p.N; n++ {
				for _, v := range x[(n*p.C+c)*p.HW : (n*p.C+c+1)*p.HW] {
					s += v
				}
			}
			mu := s / m
			for n := 0; n < p.N; n++ {
				for _, v := range x[(n*p.C+c)*p.HW : (n*p.C+c+1)*p.HW] {
					ss += (v - mu) * (v - mu)
				}
			}
			if math.Abs(mean[c]-mu) > 1e-14 || math.Abs(inv[c]-1/math.Sqrt(ss/m+p.Epsilon)) > 1e-12 {
				t.Errorf("shape %d channel %d: saved mean %g invstd %g", i, c, mean[c], inv[c])
			}
			unb := ss / (m - 1)
			if m == 1 {
				unb = 0
			}
			if w := rm0[c]*p.Momentum + mu*(1-p.Momentum); math.Abs(rm[c]-w) > 1e-14 {
				t.Errorf("shape %d channel %d: running mean %g, want %g", i, c, rm[c], w)
			}
			if w := rv0[c]*p.Momentum + unb*(1-p.Momentum); math.Abs(rv[c]-w) > 1e-14 {
				t.Errorf("shape %d channel %d: running var %g, want %g", i, c, rv[c], w)
			}
		}

		fwd := func() []float64 { BatchNormTrainForward(p, x, scale, bias, y, nil, nil, nil, nil); return y }
		dx, ds, db := make([]float64, p.XLen()), make([]float64, p.C), make([]float64, p.C)
		BatchNormTrainBackwardData(p, x, scale, mean, inv, dy, dx)
		checkGrad(t, fmt.Sprintf("shape %d training dX", i), x, dy, dx, fwd)
		BatchNormTrainBackwardScale(p, x, mean, inv, dy, ds)
		checkGrad(t, fmt.Sprintf("shape %d training dScale", i), scale, dy, ds, fwd)
		BatchNormBackwardBias(p, dy, db)
		checkGrad(t, fmt.Sprintf("shape %d training dBias", i), bias, dy, db, fwd)
	}
}

// TestBatchNormFloat32EveryImplementation checks the float32 passes (the vector loops of
// the AVX-512 and AVX2 kernels over whole blocks of each plane, Go for the rest and for
// the portable kernels) against the float64 kernels, whose arithmetic the tests above
// check against the definitions: the forward pass (output, saved and running
// statistics), the training gradients and the inference ones, within float32 rounding,
// on planes shorter than a block, of whole blocks, and with remainders.
func TestBatchNormFloat32EveryImplementation(t *testing.T) {
	shapes := []BatchNormParams{
		{N: 3, C: 4, HW: 7, Epsilon: 1e-5, Momentum: 0.9},
		{N: 2, C: 3, HW: 64, Epsilon: 1e-5, Momentum: 0.9},
		{N: 2, C: 5, HW: 100, Epsilon: 1e-3, Momentum: 0.8},
		{N: 4, C: 2, HW: 333, Epsilon: 1e-5, Momentum: 0.9},
	}
	ran := 0
	forEachImplementation(t, func(t *testing.T) {
		if normLoopsFor[float32]() != nil {
			ran++
		}
		rng := newRNG(22)
		for si, p := range shapes {
			x, dy := randn(rng, p.XLen()), randn(rng, p.XLen())
			for j := range x {
				x[j] = 3*x[j] + 1
			}
			scale, bias, rm, rv := randn(rng, p.C), randn(rng, p.C), randn(rng, p.C), make([]float64, p.C)
			for c := range rv {
				rv[c] = 1 + rng.Float64()
			}
			// float64 reference
			y, mean, inv := make([]float64, p.XLen()), make([]float64, p.C), make([]float64, p.C)
			rm64, rv64 := append([]float64{}, rm...), append([]float64{}, rv...)
			BatchNormTrainForward(p, x, scale, bias, y, mean, inv, rm64, rv64)
			dx, ds, db := make([]float64, p.XLen()), make([]float64, p.C), make([]float64, p.C)
			BatchNormTrainBackwardData(p, x, scale, mean, inv, dy, dx)
			BatchNormTrainBackwardScale(p, x, mean, inv, dy, ds)
			BatchNormBackwardBias(p, dy, db)
			yi, dxi, dsi := make([]float64, p.XLen()), make([]float64, p.XLen()), make([]float64, p.C)
			BatchNormInference(p, x, scale, bias, rm, rv, yi)
			BatchNormInferenceBackwardData(p, scale, rv, dy, dxi)
			BatchNormInferenceBackwardScale(p, x, rm, rv, dy, dsi)
			// float32
			x32, dy32, s32, b32 := to32(x), to32(dy), to32(scale), to32(bias)
			y32, mean32, inv32 := make([]float32, p.XLen()), make([]float32, p.C), make([]float32, p.C)
			rm32, rv32 := to32(rm), to32(rv)
			BatchNormTrainForward(p, x32, s32, b32, y32, mean32, inv32, rm32, rv32)
			dx32, ds32, db32 := make([]float32, p.XLen()), make([]float32, p.C), make([]float32, p.C)
			BatchNormTrainBackwardData(p, x32, s32, mean32, inv32, dy32, dx32)
			BatchNormTrainBackwardScale(p, x32, mean32, inv32, dy32, ds32)
			BatchNormBackwardBias(p, dy32, db32)
			yi32, dxi32, dsi32 := make([]float32, p.XLen()), make([]float32, p.XLen()), make([]float32, p.C)
			BatchNormInference(p, x32, s32, b32, to32(rm), to32(rv), yi32)
			BatchNormInferenceBackwardData(p, s32, to32(rv), dy32, dxi32)
			BatchNormInferenceBackwardScale(p, x32, to32(rm), to32(rv), dy32, dsi32)
			for _, c := range []struct {
				what      string
				got, want []float64
				tol       float64 // relative to the largest |want|
			}{
				{"y", to64(y32), y, 1e-5}, {"saved mean", to64(mean32), mean, 1e-5}, {"saved inverse std", to64(inv32), inv, 1e-5},
				{"running mean", to64(rm32), rm64, 1e-5}, {"running variance", to64(rv32), rv64, 1e-5},
				{"dx", to64(dx32), dx, 1e-4}, {"dscale", to64(ds32), ds, 1e-4}, {"dbias", to64(db32), db, 1e-5},
				{"inference y", to64(yi32), yi, 1e-5}, {"inference dx", to64(dxi32), dxi, 1e-5}, {"inference dscale", to64(dsi32), dsi, 1e-5},
			} {
				scale := 0.0
				for _, v := range c.want {
					scale = math.Max(scale, math.Abs(v))
				}
				for j := range c.want {
					if math.Abs(c.got[j]-c.want[j]) > c.tol*scale {
						t.Fatalf("shape %d: %s[%d] = %g, float64 %g", si, c.what, j, c.got[j], c.want[j])
					}
				}
			}
		}
	})
	if want := len(asmKernels()); ran != want {
		t.Errorf("%d implementations ran the vector loops; this CPU has %d", ran, want)
	}
}

// TestBatchNormActivationFused checks the normalization with a Relu or a Clip (ReLU6,
// and bounds of either sign) fused after it, a channel at a time, against the kernels
// one after the other (ReluForward and ReluBackward, UnaryForward and UnaryBackward with
// Clip), in both precisions on every implementation: the training and inference forward
// passes, and the training data gradient that masks the activation's output gradient
// itself, with the sums it leaves for the scale and shift gradients. Equal values (a
// vector loop's Clip keeps the sign of a zero where Go's min and max give +0) and the
// same bits for the Relu.
func TestBatchNormActivationFused(t *testing.T) {
	shapes := []BatchNormParams{
		{N: 3, C: 4, HW: 7, Epsilon: 1e-5, Momentum: 0.9},
		{N: 2, C: 5, HW: 100, Epsilon: 1e-3, Momentum: 0.8},
		{N: 2, C: 3, HW: 333, Epsilon: 1e-5, Momentum: 0.9},
	}
	acts := []Activation{{Kind: ReluActivation}, {Kind: ClipActivation, Lo: 0, Hi: 6}, {Kind: ClipActivation, Lo: -0.5, Hi: 0.7}}
	forEachImplementation(t, func(t *testing.T) {
		rng := newRNG(23)
		for si, p := range shapes {
			for _, act := range acts {
				x, dy := randn(rng, p.XLen()), randn(rng, p.XLen())
				for i := range x {
					x[i] *= 4
				}
				scale, bias, rm, rv := randn(rng, p.C), randn(rng, p.C), randn(rng, p.C), make([]float64, p.C)
				for c := range rv {
					rv[c] = 1 + rng.Float64()
				}
				check := func(what string, got, want []float64) {
					t.Helper()
					for i := range want {
						if got[i] != want[i] || act.Kind == ReluActivation && math.Float64bits(got[i]) != math.Float64bits(want[i]) {
							t.Fatalf("shape %d %+v %s[%d]: fused %v, one after the other %v", si, act, what, i, got[i], want[i])
						}
					}
				}
				if err := testBatchNormActivationFused(p, act, x, dy, scale, bias, rm, rv, func(what string, got, want []float64) { check("float64 "+what, got, want) }); err != nil {
					t.Fatalf("shape %d %+v float64: %v", si, act, err)
				}
				if err := testBatchNormActivationFused(p, act, to32(x), to32(dy), to32(scale), to32(bias), to32(rm), to32(rv), func(what string, got, want []float32) {
					check("float32 "+what, to64(got), to64(want))
				}); err != nil {
					t.Fatalf("shape %d %+v float32: %v", si, act, err)
				}
			}
		}
	})
}

func testBatchNormActivationFused[T Float](p BatchNormParams, act Activation, x, dy, scale, bias, rm, rv []T, check func(what string, got, want []T)) error {
	n := p.XLen()
	clip := Unary{Op: Clip, Lo: act.Lo, Hi: act.Hi}
	forward := func(y []T) {
		if act.Kind == ReluActivation {
			ReluForward(y, y)
		} else {
			UnaryForward(clip, y, y)
		}
	}
	// Training: forward, then the data gradient and the sums.
	y, mean, inv := make([]T, n), make([]T, p.C), make([]T, p.C)
	rm1, rv1 := append([]T{}, rm...), append([]T{}, rv...)
	BatchNormTrainForward(p, x, scale, bias, y, mean, inv, rm1, rv1)
	forward(y)
	yf, meanf, invf := make([]T, n), make([]T, p.C), make([]T, p.C)
	rm2, rv2 := append([]T{}, rm...), append([]T{}, rv...)
	BatchNormTrainForwardAct(p, x, scale, bias, yf, meanf, invf, rm2, rv2, act)
	check("training output", yf, y)
	check("running variance", rv2, rv1)
	dz := make([]T, n)
	if act.Kind == ReluActivation {
		ReluBackward(y, dy, dz)
	} else {
		UnaryBackward(clip, nil, y, dy, dz)
	}
	dx := make([]T, n)
	BatchNormTrainBackwardData(p, x, scale, mean, inv, dz, dx)
	sumDy, sumDyXhat := make([]float64, p.C), make([]float64, p.C)
	BatchNormTrainBackwardSums(p, x, mean, inv, dz, sumDy, sumDyXhat)
	g, dxf := append([]T{}, dy...), make([]T, n)
	fDy, fDyXhat := make([]float64, p.C), make([]float64, p.C)
	BatchNormTrainBackward(p, x, scale, bias, meanf, invf, act, yf, g, dxf, fDy, fDyXhat)
	check("masked output gradient", g, dz)
	check("data gradient", dxf, dx)
	for c := range sumDy {
		if fDy[c] != sumDy[c] || fDyXhat[c] != sumDyXhat[c] {
			return fmt.Errorf("channel %d: sums %v, %v fused, %v, %v one after the other", c, fDy[c], fDyXhat[c], sumDy[c], sumDyXhat[c])
		}
	}
	// Inference.
	BatchNormInference(p, x, scale, bias, rm, rv, y)
	forward(y)
	BatchNormInferenceAct(p, x, scale, bias, rm, rv, yf, act)
	check("inference output", yf, y)
	return nil
}
