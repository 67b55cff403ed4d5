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

// TestBroadcastRunsInPieces checks element-wise broadcasts with fewer runs than cores
// (a tensor times a scalar is one run, whatever its shape: the plan merges its axes),
// which cut each run into pieces across the cores, against the defining loops: Mul, Div and Add
// forward, and the data gradients of Mul and Div (MulBackwardA, DivBackwardA), with the
// gradient written over dy as the executor does.
func TestBroadcastRunsInPieces(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	rng := newRNG(71)
	for _, shapes := range [][2][]int{{{3, 70001}, {1}}, {{5, 40001}, {1, 1}}, {{1, 1, 200003}, {1, 1, 1}}} {
		as, bs := shapes[0], shapes[1]
		a, b := randn(rng, Size(as)), randn(rng, Size(bs))
		for i := range b {
			b[i] += 3 // away from 0 for the division
		}
		pl := makePlan("test", as, bs)
		if w, runs := workers(pl.size, 1), pl.size/pl.dims[len(pl.dims)-1]; w < 2 || runs >= w {
			t.Fatalf("%v by %v does not cut runs (%d runs, %d workers)", as, bs, runs, w)
		}
		bAt := func(int) float64 { return b[0] } // b is a scalar
		y := make([]float64, len(a))
		for _, c := range []struct {
			name string
			fwd  func(aShape []int, a []float64, bShape []int, b, y []float64)
			f    func(x, v float64) float64
		}{
			{"Mul", Mul[float64], func(x, v float64) float64 { return x * v }},
			{"Div", Div[float64], func(x, v float64) float64 { return x / v }},
			{"Add", Add[float64], func(x, v float64) float64 { return x + v }},
		} {
			c.fwd(as, a, bs, b, y)
			for i := range y {
				if want := c.f(a[i], bAt(i)); y[i] != want {
					t.Fatalf("%v %s %v: y[%d] = %g, want %g", as, c.name, bs, i, y[i], want)
				}
			}
		}
		dy := randn(rng, len(a))
		for _, c := range []struct {
			name string
			bwd  func(aShape []int, a []float64, bShape []int, b, dy, da []float64)
			f    func(g, v float64) float64
		}{
			{"MulBackwardA", MulBackwardA[float64], func(g, v float64) float64 { return g * v }},
			{"DivBackwardA", DivBackwardA[float64], func(g, v float64) float64 { return g / v }},
		} {
			da := append([]float64(nil), dy...)
			c.bwd(as, a, bs, b, da, da)
			for i := range da {
				if want := c.f(dy[i], bAt(i)); da[i] != want {
					t.Fatalf("%v %s %v: da[%d] = %g, want %g", as, c.name, bs, i, da[i], want)
				}
			}
		}
	}
}

// TestLayerNormParamGradsParallel checks the layer normalization's scale and shift
// gradients with their columns split across the cores against the sums over the rows
// in order: the same bits.
func TestLayerNormParamGradsParallel(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	rows, cols := 1000, 300
	if w := workers(cols, rows); w < 2 {
		t.Fatalf("the layer norm gradients do not go parallel (%d workers)", w)
	}
	rng := newRNG(72)
	x, dy, w, b := randn(rng, rows*cols), randn(rng, rows*cols), randn(rng, cols), randn(rng, cols)
	y, mean, inv := make([]float64, rows*cols), make([]float64, rows), make([]float64, rows)
	LayerNormForward(rows, cols, 1e-5, x, w, b, y, mean, inv)
	dw, db := make([]float64, cols), make([]float64, cols)
	LayerNormBackwardScale(rows, cols, x, mean, inv, dy, dw)
	LayerNormBackwardBias(rows, cols, dy, db)
	for j := 0; j < cols; j++ {
		var sw, sb float64
		for r := 0; r < rows; r++ {
			sw += dy[r*cols+j] * (x[r*cols+j] - mean[r]) * inv[r]
			sb += dy[r*cols+j]
		}
		if dw[j] != sw || db[j] != sb {
			t.Fatalf("column %d: dscale %v, dbias %v; the sums over the rows %v, %v", j, dw[j], db[j], sw, sb)
		}
	}
}

// TestAddTo checks AddTo split across the cores, into a third buffer and over its first
// operand, against a + b.
func TestAddTo(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	rng := newRNG(73)
	n := 300001
	a, b := to32(randn(rng, n)), to32(randn(rng, n))
	if w := workers(n, 1); w < 2 {
		t.Fatalf("AddTo of %d values does not go parallel", n)
	}
	dst := make([]float32, n)
	AddTo(dst, a, b)
	for i := range dst {
		if dst[i] != a[i]+b[i] {
			t.Fatalf("[%d] = %v, want %v", i, dst[i], a[i]+b[i])
		}
	}
	AddTo(a, a, b)
	for i := range a {
		if a[i] != dst[i] {
			t.Fatalf("over a: [%d] = %v, want %v", i, a[i], dst[i])
		}
	}
}
