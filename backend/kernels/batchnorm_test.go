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
