package kernels

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// naivePool computes max or average pooling directly from the definitions:
// every window position is visited and classified as input, explicit
// padding, or beyond the padding.
func naivePool(p Pool2DParams, x []float64, isMax bool) ([]float64, []int32) {
	p = p.norm()
	y := make([]float64, p.N*p.C*p.OutH*p.OutW)
	arg := make([]int32, len(y))
	for pl := 0; pl < p.N*p.C; pl++ {
		for oh := 0; oh < p.OutH; oh++ {
			for ow := 0; ow < p.OutW; ow++ {
				best, bi := math.Inf(-1), -1
				s, count, countPad := 0.0, 0, 0
				for kh := 0; kh < p.KH; kh++ {
					for kw := 0; kw < p.KW; kw++ {
						ih := oh*p.StrideH - p.PadTop + kh*p.DilH
						iw := ow*p.StrideW - p.PadLeft + kw*p.DilW
						inPadded := ih >= -p.PadTop && ih < p.H+p.PadBottom && iw >= -p.PadLeft && iw < p.W+p.PadRight
						if inPadded {
							countPad++
						}
						if ih < 0 || ih >= p.H || iw < 0 || iw >= p.W {
							continue
						}
						v := x[pl*p.H*p.W+ih*p.W+iw]
						count++
						s += v
						if v > best {
							best, bi = v, ih*p.W+iw
						}
					}
				}
				o := pl*p.OutH*p.OutW + oh*p.OutW + ow
				if isMax {
					if bi < 0 {
						best = 0
					}
					y[o], arg[o] = best, int32(bi)
					continue
				}
				div := count
				if p.CountIncludePad {
					div = countPad
				}
				if div > 0 {
					y[o] = s / float64(div)
				}
			}
		}
	}
	return y, arg
}

type poolCase struct {
	p    Pool2DParams
	ceil bool
}

var poolGeometries = []poolCase{
	{Pool2DParams{N: 2, C: 3, H: 6, W: 6, KH: 2, KW: 2, StrideH: 2, StrideW: 2}, false},
	{Pool2DParams{N: 2, C: 2, H: 7, W: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, true},
	{Pool2DParams{N: 1, C: 2, H: 6, W: 7, KH: 3, KW: 2, StrideH: 2, StrideW: 1, PadTop: 1, PadLeft: 0, PadBottom: 2, PadRight: 1}, true},
	{Pool2DParams{N: 2, C: 1, H: 9, W: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, DilH: 2, DilW: 2, PadTop: 2, PadLeft: 1, PadBottom: 0, PadRight: 2}, true},
	{Pool2DParams{N: 1, C: 3, H: 5, W: 5, KH: 2, KW: 2, StrideH: 1, StrideW: 1, DilH: 1, DilW: 2, PadTop: 0, PadLeft: 1, PadBottom: 1, PadRight: 0}, false},
	{Pool2DParams{N: 2, C: 2, H: 6, W: 6, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, true},
	{Pool2DParams{N: 1, C: 2, H: 5, W: 4, KH: 4, KW: 3, StrideH: 3, StrideW: 2, PadTop: 2, PadLeft: 1, PadBottom: 2, PadRight: 1}, true},
}

func TestPoolOutSize(t *testing.T) {
	for _, c := range []struct {
		in, k, s, d, pb, pe int
		ceil                bool
		want                int
	}{
		{32, 2, 2, 1, 0, 0, false, 16},
		{7, 3, 2, 1, 1, 1, false, 4},
		{6, 3, 2, 1, 1, 1, false, 3},
		{6, 3, 2, 1, 1, 1, true, 4},
		{5, 2, 2, 1, 0, 0, true, 3},
		{5, 2, 2, 1, 0, 0, false, 2},
		// ceil would add a window starting in the end padding: dropped.
		{4, 2, 2, 1, 1, 1, true, 3},
		{8, 3, 2, 2, 0, 0, true, 3},
		{8, 3, 2, 2, 0, 0, false, 2},
		{112, 3, 2, 1, 0, 0, true, 56},
	} {
		if got := PoolOutSize(c.in, c.k, c.s, c.d, c.pb, c.pe, c.ceil); got != c.want {
			t.Errorf("PoolOutSize(%d, k%d, s%d, d%d, pads %d,%d, ceil %v) = %d, want %d", c.in, c.k, c.s, c.d, c.pb, c.pe, c.ceil, got, c.want)
		}
	}
}

func TestMaxPool2D(t *testing.T) {
	rng := newRNG(10)
	for i, g := range poolGeometries {
		p := g.p.WithOutSize(g.ceil)
		x := distinct(rng, p.XLen())
		y, arg := make([]float64, p.YLen()), make([]int32, p.YLen())
		MaxPool2DForward(p, x, y, arg)
		wy, warg := naivePool(p, x, true)
		assertClose(t, fmt.Sprintf("geometry %d forward", i), y, wy, 0)
		for j := range arg {
			if arg[j] != warg[j] {
				t.Fatalf("geometry %d: argmax[%d] = %d, want %d", i, j, arg[j], warg[j])
			}
		}
		dy := randn(rng, p.YLen())
		dx := make([]float64, p.XLen())
		MaxPool2DBackward(p, x, dy, dx)
		checkGrad(t, fmt.Sprintf("geometry %d dX", i), x, dy, dx, func() []float64 {
			MaxPool2DForward(p, x, y, nil)
			return y
		})
	}
}

// TestMaxPoolPaddingNeverWins uses all-negative input, where a zero-valued
// pad would win.
func TestMaxPoolPaddingNeverWins(t *testing.T) {
	p := Pool2DParams{N: 1, C: 1, H: 3, W: 3, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize(true)
	x := []float64{-9, -8, -7, -6, -5, -4, -3, -2, -1}
	y, arg := make([]float64, p.YLen()), make([]int32, p.YLen())
	MaxPool2DForward(p, x, y, arg)
	assertClose(t, "all-negative", y, []float64{-5, -4, -2, -1}, 0)
	// Ties go to the first cell.
	x = []float64{1, 1, 1, 1, 1, 1, 1, 1, 1}
	MaxPool2DForward(p, x, y, arg)
	if arg[0] != 0 || arg[3] != 4 {
		t.Errorf("ties: argmax %v, want first cells", arg)
	}
}

func TestAvgPool2D(t *testing.T) {
	rng := newRNG(11)
	for i, g := range poolGeometries {
		for _, inc := range []bool{false, true} {
			p := g.p.WithOutSize(g.ceil)
			p.CountIncludePad = inc
			what := fmt.Sprintf("geometry %d count_include_pad=%v", i, inc)
			x := randn(rng, p.XLen())
			y := make([]float64, p.YLen())
			AvgPool2DForward(p, x, y)
			wy, _ := naivePool(p, x, false)
			assertClose(t, what+" forward", y, wy, 1e-14)
			dy := randn(rng, p.YLen())
			dx := make([]float64, p.XLen())
			AvgPool2DBackward(p, dy, dx)
			checkGrad(t, what+" dX", x, dy, dx, func() []float64 {
				AvgPool2DForward(p, x, y)
				return y
			})
		}
	}
}

func TestGlobalPools(t *testing.T) {
	rng := newRNG(12)
	n, c, hw := 3, 4, 10
	x := distinct(rng, n*c*hw)
	y, arg := make([]float64, n*c), make([]int32, n*c)
	dy := randn(rng, n*c)
	dx := make([]float64, len(x))

	GlobalAvgPoolForward(n, c, hw, x, y)
	for i := range y {
		if want := sum(x[i*hw:(i+1)*hw]) / float64(hw); math.Abs(y[i]-want) > 1e-15 {
			t.Errorf("GlobalAvgPool[%d] = %g, want %g", i, y[i], want)
		}
	}
	GlobalAvgPoolBackward(n, c, hw, dy, dx)
	checkGrad(t, "GlobalAvgPool dX", x, dy, dx, func() []float64 { GlobalAvgPoolForward(n, c, hw, x, y); return y })

	// Enough planes to be split across the cores (an EfficientNet's squeeze at 224):
	// each plane's mean and gradient exactly as alone.
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	bn, bc, bhw := 8, 96, 56*56
	if workers(bn*bc, bhw) < 2 {
		t.Fatal("the planes are not split: the check is weak")
	}
	bx, bdy := randn(rng, bn*bc*bhw), randn(rng, bn*bc)
	by, bdx := make([]float64, bn*bc), make([]float64, bn*bc*bhw)
	GlobalAvgPoolForward(bn, bc, bhw, bx, by)
	GlobalAvgPoolBackward(bn, bc, bhw, bdy, bdx)
	for i := range by {
		if want := sum(bx[i*bhw:(i+1)*bhw]) / float64(bhw); by[i] != want {
			t.Fatalf("split GlobalAvgPool[%d] = %g, want %g", i, by[i], want)
		}
		for _, g := range bdx[i*bhw : (i+1)*bhw] {
			if g != bdy[i]/float64(bhw) {
				t.Fatalf("split GlobalAvgPool dX of plane %d: %g, want %g", i, g, bdy[i]/float64(bhw))
			}
		}
	}

	GlobalMaxPoolForward(n, c, hw, x, y, arg)
	for i := range y {
		want := math.Inf(-1)
		for _, v := range x[i*hw : (i+1)*hw] {
			want = math.Max(want, v)
		}
		if y[i] != want || x[i*hw+int(arg[i])] != want {
			t.Errorf("GlobalMaxPool[%d] = %g at %d, want %g", i, y[i], arg[i], want)
		}
	}
	GlobalMaxPoolBackward(n, c, hw, dy, arg, dx)
	checkGrad(t, "GlobalMaxPool dX", x, dy, dx, func() []float64 { GlobalMaxPoolForward(n, c, hw, x, y, nil); return y })
}

// TestMaxPool2x2FastPath checks the branch-free 2×2 stride-2 path against
// the general window rule (maxPoolWindow) on inputs full of ties and NaNs,
// with and without padding, odd sizes and ceil mode, in both precisions.
func TestMaxPool2x2FastPath(t *testing.T) {
	rng := newRNG(91)
	for _, g := range []Pool2DParams{
		{N: 2, C: 3, H: 8, W: 8},
		{N: 1, C: 2, H: 7, W: 9},
		{N: 1, C: 2, H: 9, W: 7, PadTop: 1, PadLeft: 1},
		{N: 1, C: 2, H: 6, W: 7, PadTop: 1, PadLeft: 0, PadBottom: 1, PadRight: 1},
	} {
		for _, ceil := range []bool{false, true} {
			g.KH, g.KW, g.StrideH, g.StrideW = 2, 2, 2, 2
			p := g.WithOutSize(ceil)
			x := make([]float64, p.XLen())
			for i := range x {
				switch r := rng.IntN(10); {
				case r == 0:
					x[i] = math.NaN()
				case r < 5:
					x[i] = float64(rng.IntN(3)) // ties
				default:
					x[i] = rng.NormFloat64()
				}
			}
			check := func(name string, x, y []float64, arg []int32) {
				t.Helper()
				checkWindowRule(t, fmt.Sprintf("%s %+v ceil %v", name, g, ceil), p, x, y, arg)
			}
			y, arg := make([]float64, p.YLen()), make([]int32, p.YLen())
			MaxPool2DForward(p, x, y, arg)
			check("float64", x, y, arg)
			y32 := make([]float32, p.YLen())
			MaxPool2DForward(p, to32(x), y32, arg)
			check("float32", to64(to32(x)), to64(y32), arg)
		}
	}
}

// TestMaxPoolSeparable checks the path of a forward pass without positions (rows, then
// columns), and the branch-free path of the windows inside the input with positions,
// against the general window rule (maxPoolWindow) on inputs full of ties and NaNs,
// over the pooling geometries (paddings, ceil mode, windows past the input, dilations
// with positions) and ResNet's stem pooling at odd sizes, in both precisions.
func TestMaxPoolSeparable(t *testing.T) {
	rng := newRNG(92)
	geoms := []poolCase{
		{Pool2DParams{N: 1, C: 2, H: 11, W: 13, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, false},
		{Pool2DParams{N: 1, C: 2, H: 12, W: 9, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, true},
		{Pool2DParams{N: 1, C: 1, H: 4, W: 4, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2}, false},
	}
	geoms = append(geoms, poolGeometries...)
	for gi, g := range geoms {
		p := g.p.WithOutSize(g.ceil)
		x := make([]float64, p.XLen())
		for i := range x {
			switch r := rng.IntN(10); {
			case r == 0:
				x[i] = math.NaN()
			case r < 5:
				x[i] = float64(rng.IntN(3)) - 1 // ties, negative values among them
			default:
				x[i] = rng.NormFloat64()
			}
		}
		check := func(name string, x, y []float64, arg []int32) {
			t.Helper()
			checkWindowRule(t, fmt.Sprintf("%s geometry %d (%+v)", name, gi, g.p), p, x, y, arg)
		}
		y, arg := make([]float64, p.YLen()), make([]int32, p.YLen())
		y32 := make([]float32, p.YLen())
		if one(p.DilH) == 1 && one(p.DilW) == 1 {
			MaxPool2DForward(p, x, y, nil)
			check("float64", x, y, nil)
			MaxPool2DForward(p, to32(x), y32, nil)
			check("float32", to64(to32(x)), to64(y32), nil)
		}
		MaxPool2DForward(p, x, y, arg)
		check("float64 with positions", x, y, arg)
		MaxPool2DForward(p, to32(x), y32, arg)
		check("float32 with positions", to64(to32(x)), to64(y32), arg)
		// Without NaNs, against the definition.
		for i := range x {
			if math.IsNaN(x[i]) {
				x[i] = rng.NormFloat64()
			}
		}
		MaxPool2DForward(p, x, y, nil)
		wy, _ := naivePool(p, x, true)
		assertClose(t, fmt.Sprintf("geometry %d against the definition", gi), y, wy, 0)
	}
}

// checkWindowRule checks a max pooling's outputs y (and positions arg, unless nil) of x
// against the general window rule, maxPoolWindow, a NaN matching a NaN.
func checkWindowRule(t *testing.T, what string, p Pool2DParams, x, y []float64, arg []int32) {
	t.Helper()
	q := p.norm()
	HW, OHW := q.H*q.W, q.OutH*q.OutW
	wy, warg := make([]float64, OHW), make([]int32, OHW)
	for pl := 0; pl < q.N*q.C; pl++ {
		for oh := 0; oh < q.OutH; oh++ {
			for ow := 0; ow < q.OutW; ow++ {
				maxPoolWindow(q, x[pl*HW:(pl+1)*HW], wy, warg, oh, ow)
			}
		}
		for o := range wy {
			got, want := y[pl*OHW+o], wy[o]
			if !(got == want || math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("%s: plane %d out %d: %g, want %g", what, pl, o, got, want)
			}
			if arg != nil && arg[pl*OHW+o] != warg[o] {
				t.Fatalf("%s: plane %d out %d: position %d, want %d", what, pl, o, arg[pl*OHW+o], warg[o])
			}
		}
	}
}

// TestMaxPoolBackwardWindowSearch checks the float32 backward pass on every kernel with
// a vector window search (gemmKernel.firstMax) against the window rule written out
// here: the first cell in row-major order holding the window's maximum (+0 and -0
// equal), a NaN winning (the last one), padding never (dilations too, which take the
// scalar rule). The inputs are full of ties
// (among them zeros of both signs); some planes hold a NaN or infinities, which send
// the search back to the scalar rule. Each output's gradient is added in the order of
// the outputs, so the sums are compared bit for bit; the forward pass's outputs and
// positions too (the outputs as values: a zero's sign may differ), and the gradient
// from those positions (MaxPool2DBackwardAt).
func TestMaxPoolBackwardWindowSearch(t *testing.T) {
	geoms := []poolCase{
		{Pool2DParams{N: 2, C: 3, H: 37, W: 41, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, false},
		{Pool2DParams{N: 1, C: 2, H: 40, W: 40, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, true},
		{Pool2DParams{N: 2, C: 2, H: 36, W: 39, KH: 2, KW: 2, StrideH: 2, StrideW: 2}, false},
		{Pool2DParams{N: 1, C: 2, H: 35, W: 38, KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1}, true},
		{Pool2DParams{N: 1, C: 2, H: 21, W: 70, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, false},
		{Pool2DParams{N: 1, C: 2, H: 23, W: 53, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2}, false},
		{Pool2DParams{N: 1, C: 2, H: 19, W: 45, KH: 2, KW: 3, StrideH: 3, StrideW: 2, PadLeft: 1, PadRight: 1}, true},
		{Pool2DParams{N: 1, C: 2, H: 9, W: 44, KH: 1, KW: 4, StrideH: 1, StrideW: 2}, false},
		{Pool2DParams{N: 1, C: 2, H: 9, W: 20, KH: 3, KW: 1, StrideH: 2, StrideW: 1}, false},
	}
	geoms = append(geoms, poolGeometries...)
	rng := newRNG(93)
	forEachKernelWith(t, "the vector window search", func(k *gemmKernel) bool { return k.firstMax != nil }, func(t *testing.T, kern *gemmKernel) {
		for gi, g := range geoms {
			p := g.p.WithOutSize(g.ceil).norm()
			HW, OHW := p.H*p.W, p.OutH*p.OutW
			x := make([]float32, p.XLen())
			for i := range x {
				switch r := rng.IntN(8); {
				case r < 2:
					x[i] = float32(math.Copysign(0, float64(rng.IntN(2))-0.5)) // +0 and -0
				case r < 5:
					x[i] = float32(rng.IntN(3)) - 1
				default:
					x[i] = float32(rng.NormFloat64())
				}
			}
			planes := p.N * p.C
			x[(planes-1)*HW+rng.IntN(HW)] = float32(math.NaN())
			if planes > 2 {
				x[HW+rng.IntN(HW)] = float32(math.Inf(1))
				x[HW+rng.IntN(HW)] = float32(math.Inf(-1))
			}
			dy := make([]float32, p.YLen())
			for i := range dy {
				dy[i] = float32(rng.NormFloat64())
			}
			want := make([]float32, p.XLen())
			wantY, wantArg := make([]float32, p.YLen()), make([]int32, p.YLen())
			for pl := 0; pl < planes; pl++ {
				xp, wp := x[pl*HW:(pl+1)*HW], want[pl*HW:(pl+1)*HW]
				for oh := 0; oh < p.OutH; oh++ {
					for ow := 0; ow < p.OutW; ow++ {
						best := -1
						for kh := 0; kh < p.KH; kh++ {
							for kw := 0; kw < p.KW; kw++ {
								ih, iw := oh*p.StrideH-p.PadTop+kh*p.DilH, ow*p.StrideW-p.PadLeft+kw*p.DilW
								if ih < 0 || ih >= p.H || iw < 0 || iw >= p.W {
									continue
								}
								if v := xp[ih*p.W+iw]; best < 0 || v > xp[best] || v != v {
									best = ih*p.W + iw
								}
							}
						}
						o := pl*OHW + oh*p.OutW + ow
						wantArg[o] = int32(best)
						if best >= 0 {
							wp[best] += dy[o]
							wantY[o] = xp[best]
						}
					}
				}
			}
			got := make([]float32, p.XLen())
			searched := kern.searchedPlanes.Load()
			MaxPool2DBackward(p, x, dy, got)
			if wantSearched := newWindowSearch[float32](p) != nil; wantSearched != (kern.searchedPlanes.Load() > searched) {
				t.Fatalf("geometry %d (%+v): planes searched %d, want some: %v", gi, g.p, kern.searchedPlanes.Load()-searched, wantSearched)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("geometry %d (%+v): dx[%d] (plane %d) = %g, want %g", gi, g.p, i, i/HW, got[i], want[i])
				}
			}
			// The forward pass, with and without positions, by the same search.
			y, arg := make([]float32, p.YLen()), make([]int32, p.YLen())
			for _, arg := range [][]int32{nil, arg} {
				MaxPool2DForward(p, x, y, arg)
				for o := range y {
					if y[o] != wantY[o] && !(y[o] != y[o] && wantY[o] != wantY[o]) ||
						arg != nil && arg[o] != wantArg[o] {
						t.Fatalf("geometry %d (%+v) positions %v: y[%d] = %g, want %g", gi, g.p, arg != nil, o, y[o], wantY[o])
					}
				}
			}
			// The gradient from the positions the forward pass kept.
			at := make([]float32, p.XLen())
			for i := range at {
				at[i] = float32(math.NaN()) // overwritten
			}
			MaxPool2DBackwardAt(p, arg, dy, at)
			for i := range at {
				if math.Float32bits(at[i]) != math.Float32bits(want[i]) {
					t.Fatalf("geometry %d (%+v): from the positions, dx[%d] = %g, want %g", gi, g.p, i, at[i], want[i])
				}
			}
		}
	})
}

// TestGlobalAvgPoolAndScaleFloat32 checks the float32 paths that run the normalisation's
// vector loops, on every GEMM implementation (each kernel's own loops): the global
// average pooling's planes (49 to 3139 values: whole vectors, one vector, and the values
// past them) against the float64 mean, within float32's rounding of a sum of that many
// values; and a plane scaled by a channel's factor (a squeeze-excitation block's Mul)
// bit for bit against Go's product, zeros of both signs, infinities and NaN included,
// with each kernel's scale loop called directly too.
func TestGlobalAvgPoolAndScaleFloat32(t *testing.T) {
	rng := newRNG(11)
	forEachImplementation(t, func(t *testing.T) {
		for _, hw := range []int{49, 196, 784, 3139} {
			const n, c = 2, 3
			x := make([]float32, n*c*hw)
			for i := range x {
				x[i] = float32(rng.NormFloat64() + 0.5)
			}
			y := make([]float32, n*c)
			GlobalAvgPoolForward(n, c, hw, x, y)
			for i := range y {
				var s, a float64
				for _, v := range x[i*hw : (i+1)*hw] {
					s += float64(v)
					a += math.Abs(float64(v))
				}
				if d := math.Abs(float64(y[i]) - s/float64(hw)); d > 4*float64(hw)*0x1p-24*a/float64(hw) {
					t.Errorf("hw %d: mean of plane %d = %v, want %v", hw, i, y[i], s/float64(hw))
				}
			}
		}
		for _, m := range []int{1, 15, 16, 17, 63, 64, 65, 200} {
			x, got := make([]float32, m), make([]float32, m)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.NaN()), 1e-40}
			copy(x, specials)
			for _, a := range []float32{0.37, -2, float32(math.Copysign(0, -1))} {
				scaleT(a, x, got)
				for i, v := range x {
					if w := a * v; math.Float32bits(got[i]) != math.Float32bits(w) && !(w != w && got[i] != got[i]) {
						t.Fatalf("%d values: %v·%v = %v, want %v", m, a, v, got[i], w)
					}
				}
			}
		}
	})
	for _, k := range allKernels() {
		if k.norm == nil || k.norm.scale == nil {
			continue
		}
		x := make([]float32, 4*k.norm.block+k.norm.block)
		for i := range x {
			x[i] = float32(i) - 7.5
		}
		y := make([]float32, len(x))
		k.norm.scale(len(x), -1.25, &x[0], &y[0])
		for i, v := range x {
			if y[i] != -1.25*v {
				t.Fatalf("%s: scale gives %v at %d, want %v", k.name, y[i], i, -1.25*v)
			}
		}
	}
}

// TestMaxPoolTaps checks the forward pass without positions (an inference's) on every
// implementation against the window rule, and on every kernel with the values-only
// window loop (gemmKernel.maxTaps, pool_taps.go) bit for bit (a tie of +0 and -0 keeps
// the first cell's zero): pads and
// ceil-mode overhangs read as -Inf, strides 1 to 3, a dilation, rows wide enough to be
// pooled row by row; -Inf among ties, an all-negative plane (a border that read as
// anything but -Inf would win its windows), +Inf beside the borders' -Inf and a NaN
// (planes the loop hands back to the window rule); windows past the pads with no input
// cell (the search's then). It fails if the loop pooled too few planes.
func TestMaxPoolTaps(t *testing.T) {
	geoms := []poolCase{
		{Pool2DParams{N: 1, C: 5, H: 14, W: 14, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, true},
		{Pool2DParams{N: 2, C: 3, H: 21, W: 19, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, false},
		{Pool2DParams{N: 1, C: 4, H: 13, W: 17, KH: 3, KW: 4, StrideH: 2, StrideW: 1, PadTop: 2, PadLeft: 3, PadBottom: 0, PadRight: 1}, true},
		{Pool2DParams{N: 1, C: 3, H: 10, W: 11, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 0, PadBottom: 0, PadRight: 1}, true},
		{Pool2DParams{N: 1, C: 2, H: 9, W: 9, KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2}, false},
		{Pool2DParams{N: 1, C: 2, H: 9, W: 9, KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 2}, false},
		// No padding, a ceil-mode overhang (SqueezeNet's and GoogLeNet's stride-2 pools).
		{Pool2DParams{N: 1, C: 4, H: 14, W: 13, KH: 3, KW: 3, StrideH: 2, StrideW: 2}, true},
		// Row by row: ResNet's stem pool, a stride-1 one, an overhang, 2×2 stride 2
		// (VGG's, DenseNet's); stride 3 and a dilation.
		{Pool2DParams{N: 1, C: 3, H: 70, W: 69, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, false},
		{Pool2DParams{N: 1, C: 2, H: 9, W: 40, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, false},
		{Pool2DParams{N: 1, C: 2, H: 11, W: 70, KH: 3, KW: 3, StrideH: 2, StrideW: 2}, true},
		{Pool2DParams{N: 2, C: 2, H: 12, W: 66, KH: 2, KW: 2, StrideH: 2, StrideW: 2}, false},
		{Pool2DParams{N: 1, C: 2, H: 16, W: 17, KH: 3, KW: 3, StrideH: 3, StrideW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, true},
		{Pool2DParams{N: 1, C: 2, H: 15, W: 16, KH: 3, KW: 2, StrideH: 1, StrideW: 2, DilH: 2, DilW: 2, PadTop: 2, PadLeft: 1, PadBottom: 2, PadRight: 1}, false},
	}
	rng := newRNG(93)
	forEachImplementation(t, func(t *testing.T) {
		kern := packedKernel[float32]()
		var pooled0 int64
		if kern != nil {
			pooled0 = kern.maxTapPlanes.Load()
		}
		for gi, g := range geoms {
			p := g.p.WithOutSize(g.ceil)
			x := make([]float32, p.XLen())
			for i := range x {
				switch r := rng.IntN(20); {
				case r == 0:
					x[i] = float32(math.Inf(-1))
				case r < 4:
					x[i] = float32(math.Copysign(0, float64(rng.IntN(2))-0.5))
				case r < 9:
					x[i] = float32(rng.IntN(3)) - 1
				default:
					x[i] = float32(rng.NormFloat64())
				}
			}
			// Every value of the second plane negative, +Inf in the first plane, a NaN
			// in the last.
			for i := range p.H * p.W {
				x[p.H*p.W+i] = -1 - float32(rng.IntN(3))
			}
			x[3] = float32(math.Inf(1))
			x[len(x)-5] = float32(math.NaN())
			y := make([]float32, p.YLen())
			MaxPool2DForward(p, x, y, nil)
			what := fmt.Sprintf("%s geometry %d (%+v)", CurrentBLAS().Name(), gi, g.p)
			checkWindowRule(t, what, p, to64(x), to64(y), nil)
			if kern == nil || kern.maxTaps == nil {
				continue // the portable pooling may give a zero maximum the other sign
			}
			q := p.norm()
			HW, OHW := q.H*q.W, q.OutH*q.OutW
			want := make([]float32, OHW)
			for pl := range q.N * q.C {
				for oh := range q.OutH {
					for ow := range q.OutW {
						maxPoolWindow(q, x[pl*HW:(pl+1)*HW], want, nil, oh, ow)
					}
				}
				for o, v := range want {
					if got := y[pl*OHW+o]; v == v && math.Float32bits(got) != math.Float32bits(v) {
						t.Fatalf("%s: plane %d out %d: %g (bits %#x), want %g (%#x)", what, pl, o, got, math.Float32bits(got), v, math.Float32bits(v))
					}
				}
			}
		}
		if kern != nil && kern.maxTaps != nil && kern.maxTapPlanes.Load()-pooled0 < 12 {
			t.Errorf("%s: the values-only loop pooled %d planes; want at least 12", kern.name, kern.maxTapPlanes.Load()-pooled0)
		}
	})
}

// TestAvgPoolTaps checks the average pooling by the taps' loop (avgPoolTaps) on every
// kernel that has one, bit for bit against the rule written out here in float32: each
// window's cells inside the input added in row-major order from +0, the sum divided by
// the window's divisor (count_include_pad either way, ceil-mode overhangs, dilation);
// DenseNet's 2×2 stride-2 pools (the reciprocal in the weights), rows wide enough to be
// pooled row by row; zeros of both signs, infinities and a NaN among the inputs.
func TestAvgPoolTaps(t *testing.T) {
	geoms := []poolCase{
		{Pool2DParams{N: 2, C: 3, H: 12, W: 14, KH: 2, KW: 2, StrideH: 2, StrideW: 2}, false},
		{Pool2DParams{N: 1, C: 2, H: 10, W: 70, KH: 2, KW: 2, StrideH: 2, StrideW: 2}, false},
		{Pool2DParams{N: 1, C: 3, H: 9, W: 11, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, false},
		{Pool2DParams{N: 1, C: 3, H: 9, W: 40, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, CountIncludePad: true}, false},
		{Pool2DParams{N: 1, C: 2, H: 13, W: 14, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1}, true},
		{Pool2DParams{N: 1, C: 2, H: 13, W: 12, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, CountIncludePad: true}, true},
		{Pool2DParams{N: 1, C: 2, H: 15, W: 16, KH: 3, KW: 2, StrideH: 1, StrideW: 2, DilH: 2, DilW: 2, PadTop: 2, PadLeft: 1, PadBottom: 2, PadRight: 1}, false},
		{Pool2DParams{N: 1, C: 2, H: 8, W: 8, KH: 4, KW: 4, StrideH: 4, StrideW: 4}, false},
	}
	rng := newRNG(95)
	ran := 0
	forEachImplementation(t, func(t *testing.T) {
		kern := packedKernel[float32]()
		if kern == nil || kern.dwTaps == nil {
			return
		}
		ran++
		for gi, g := range geoms {
			p := g.p.WithOutSize(g.ceil).norm()
			x := make([]float32, p.XLen())
			for i := range x {
				switch r := rng.IntN(10); {
				case r < 2:
					x[i] = float32(math.Copysign(0, float64(rng.IntN(2))-0.5))
				default:
					x[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(5)-2)))
				}
			}
			x[1] = float32(math.Inf(1))
			x[p.H*p.W+2] = float32(math.Inf(-1))
			x[len(x)-3] = float32(math.NaN())
			HW, OHW := p.H*p.W, p.OutH*p.OutW
			want := make([]float32, p.YLen())
			for pl := range p.N * p.C {
				for oh := range p.OutH {
					for ow := range p.OutW {
						hs, ws := oh*p.StrideH-p.PadTop, ow*p.StrideW-p.PadLeft
						var s float32
						cells, padded := 0, 0
						for kh := range p.KH {
							for kw := range p.KW {
								h, w := hs+kh*p.DilH, ws+kw*p.DilW
								if h < p.H+p.PadBottom && w < p.W+p.PadRight {
									padded++ // inside the padded input: counted with count_include_pad
								}
								if h >= 0 && h < p.H && w >= 0 && w < p.W {
									s += x[pl*HW+h*p.W+w]
									cells++
								}
							}
						}
						div := cells
						if p.CountIncludePad {
							div = padded
						}
						if div > 0 {
							want[pl*OHW+oh*p.OutW+ow] = s / float32(div)
						}
					}
				}
			}
			y := make([]float32, p.YLen())
			if !avgPoolTaps(p, x, y) {
				t.Fatalf("%s geometry %d: the taps' loop declined", kern.name, gi)
			}
			for i, w := range want {
				if got := y[i]; math.Float32bits(got) != math.Float32bits(w) && !(got != got && w != w) {
					t.Fatalf("%s geometry %d (%+v) out %d: %g (bits %#x), want %g (%#x)", kern.name, gi, g.p, i, got, math.Float32bits(got), w, math.Float32bits(w))
				}
			}
			clear(y)
			AvgPool2DForward(p, x, y)
			for i, w := range want {
				if got := y[i]; math.Float32bits(got) != math.Float32bits(w) && !(got != got && w != w) {
					t.Fatalf("%s geometry %d: AvgPool2DForward out %d: %g, want %g", kern.name, gi, i, got, w)
				}
			}
		}
	})
	if want := len(asmKernels()); ran < want {
		t.Fatalf("%d kernels ran the taps' average pooling; this CPU has %d", ran, want)
	}
}
