package kernels

import (
	"math"
	"runtime"
	"testing"
)

// TestParallelPaths runs pooling and batch norm at sizes that split the
// work across goroutines (run it with -race), against the direct loops and
// the defining formulas. On one CPU (GOMAXPROCS=1) it raises GOMAXPROCS to 2
// for its duration, so that the work is still split between two workers.
func TestParallelPaths(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	rng := newRNG(70)
	p := Pool2DParams{N: 4, C: 16, H: 33, W: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize(true)
	if w := workers(p.N*p.C, p.OutH*p.OutW*p.KH*p.KW); w < 2 {
		t.Fatalf("pool test does not go parallel (%d workers)", w)
	}
	x, dy := distinct(rng, p.XLen()), randn(rng, p.YLen())
	y, arg := make([]float64, p.YLen()), make([]int32, p.YLen())
	MaxPool2DForward(p, x, y, arg)
	wy, warg := naivePool(p, x, true)
	assertClose(t, "parallel maxpool", y, wy, 0)
	dx := make([]float64, p.XLen())
	MaxPool2DBackward(p, x, dy, dx)
	want := make([]float64, p.XLen())
	for o, i := range warg {
		want[o/(p.OutH*p.OutW)*p.H*p.W+int(i)] += dy[o]
	}
	assertClose(t, "parallel maxpool backward", dx, want, 0)
	for _, inc := range []bool{false, true} {
		p.CountIncludePad = inc
		AvgPool2DForward(p, x, y)
		wy, _ := naivePool(p, x, false)
		assertClose(t, "parallel avgpool", y, wy, 1e-14)
		AvgPool2DBackward(p, dy, dx)
		if l, r := dot(y, dy), dot(x, dx); math.Abs(l-r) > 1e-10 {
			t.Errorf("parallel avgpool backward: <y, dy> = %g, <x, dx> = %g", l, r)
		}
	}

	bp := BatchNormParams{N: 4, C: 16, HW: 1024, Epsilon: 1e-5, Momentum: 0.9}
	if w := workers(bp.C, 2*bp.N*bp.HW); w < 2 {
		t.Fatalf("batch norm test does not go parallel (%d workers)", w)
	}
	bx, bdy := randn(rng, bp.XLen()), randn(rng, bp.XLen())
	scale, bias := randn(rng, bp.C), randn(rng, bp.C)
	by, bdx := make([]float64, bp.XLen()), make([]float64, bp.XLen())
	mean, inv := make([]float64, bp.C), make([]float64, bp.C)
	BatchNormTrainForward(bp, bx, scale, bias, by, mean, inv, nil, nil)
	BatchNormTrainBackwardData(bp, bx, scale, mean, inv, bdy, bdx)
	m := float64(bp.N * bp.HW)
	for c := 0; c < bp.C; c++ {
		var s, ss, sdy, sdyx float64
		each := func(f func(i int)) {
			for n := 0; n < bp.N; n++ {
				for i := (n*bp.C + c) * bp.HW; i < (n*bp.C+c+1)*bp.HW; i++ {
					f(i)
				}
			}
		}
		each(func(i int) { s += bx[i] })
		mu := s / m
		each(func(i int) { ss += (bx[i] - mu) * (bx[i] - mu) })
		is := 1 / math.Sqrt(ss/m+bp.Epsilon)
		each(func(i int) { sdy += bdy[i]; sdyx += bdy[i] * (bx[i] - mu) * is })
		each(func(i int) {
			xh := (bx[i] - mu) * is
			if w := scale[c]*xh + bias[c]; math.Abs(by[i]-w) > 1e-12 {
				t.Fatalf("parallel batch norm y[%d] = %g, want %g", i, by[i], w)
			}
			if w := scale[c] * is * (bdy[i] - sdy/m - xh*sdyx/m); math.Abs(bdx[i]-w) > 1e-12 {
				t.Fatalf("parallel batch norm dx[%d] = %g, want %g", i, bdx[i], w)
			}
		})
	}
}
