package kernels

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// naiveConv is a direct seven-loop convolution, independent of im2col.
func naiveConv(p Conv2DParams, x, w, bias []float64) []float64 {
	p = p.norm()
	cg, mg := p.C/p.Group, p.M/p.Group
	y := make([]float64, p.N*p.M*p.OutH*p.OutW)
	for n := 0; n < p.N; n++ {
		for m := 0; m < p.M; m++ {
			for oh := 0; oh < p.OutH; oh++ {
				for ow := 0; ow < p.OutW; ow++ {
					s := 0.0
					if bias != nil {
						s = bias[m]
					}
					for c := m / mg * cg; c < (m/mg+1)*cg; c++ {
						for kh := 0; kh < p.KH; kh++ {
							for kw := 0; kw < p.KW; kw++ {
								ih := oh*p.StrideH - p.PadTop + kh*p.DilH
								iw := ow*p.StrideW - p.PadLeft + kw*p.DilW
								if ih < 0 || ih >= p.H || iw < 0 || iw >= p.W {
									continue
								}
								s += x[((n*p.C+c)*p.H+ih)*p.W+iw] * w[((m*cg+c%cg)*p.KH+kh)*p.KW+kw]
							}
						}
					}
					y[((n*p.M+m)*p.OutH+oh)*p.OutW+ow] = s
				}
			}
		}
	}
	return y
}

// naiveConvBackward computes dX and dW by scattering every output gradient
// over its window with direct loops.
func naiveConvBackward(p Conv2DParams, x, w, dy []float64) (dx, dw []float64) {
	p = p.norm()
	cg, mg := p.C/p.Group, p.M/p.Group
	dx, dw = make([]float64, p.XLen()), make([]float64, p.WLen())
	for n := 0; n < p.N; n++ {
		for m := 0; m < p.M; m++ {
			for oh := 0; oh < p.OutH; oh++ {
				for ow := 0; ow < p.OutW; ow++ {
					g := dy[((n*p.M+m)*p.OutH+oh)*p.OutW+ow]
					for c := m / mg * cg; c < (m/mg+1)*cg; c++ {
						for kh := 0; kh < p.KH; kh++ {
							for kw := 0; kw < p.KW; kw++ {
								ih := oh*p.StrideH - p.PadTop + kh*p.DilH
								iw := ow*p.StrideW - p.PadLeft + kw*p.DilW
								if ih < 0 || ih >= p.H || iw < 0 || iw >= p.W {
									continue
								}
								xi := ((n*p.C+c)*p.H+ih)*p.W + iw
								wi := ((m*cg+c%cg)*p.KH+kh)*p.KW + kw
								dx[xi] += g * w[wi]
								dw[wi] += g * x[xi]
							}
						}
					}
				}
			}
		}
	}
	return dx, dw
}

// convGeometries covers pads 0-2 (asymmetric), strides 1-2, dilations 1-2,
// 1x1 kernels (the direct path) and non-square everything.
var convGeometries = []Conv2DParams{
	{N: 2, C: 3, H: 5, W: 6, M: 4, KH: 3, KW: 3},
	{N: 2, C: 2, H: 7, W: 6, M: 3, KH: 3, KW: 2, StrideH: 2, StrideW: 1, PadTop: 1, PadLeft: 2, PadBottom: 0, PadRight: 1},
	{N: 1, C: 2, H: 8, W: 7, M: 2, KH: 3, KW: 3, DilH: 2, DilW: 1, PadTop: 2, PadLeft: 0, PadBottom: 1, PadRight: 2},
	{N: 3, C: 2, H: 6, W: 6, M: 3, KH: 2, KW: 3, StrideH: 2, StrideW: 2, DilH: 2, DilW: 2, PadTop: 0, PadLeft: 1, PadBottom: 2, PadRight: 2},
	{N: 2, C: 4, H: 4, W: 5, M: 3, KH: 1, KW: 1},
	{N: 2, C: 3, H: 5, W: 5, M: 2, KH: 1, KW: 1, StrideH: 2, StrideW: 2, PadTop: 1, PadRight: 1},
	{N: 1, C: 1, H: 3, W: 3, M: 1, KH: 3, KW: 3, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2, StrideH: 2, StrideW: 2},
	{N: 2, C: 3, H: 6, W: 5, M: 2, KH: 5, KW: 4, StrideH: 1, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
}

func TestConv2DForwardAgainstNaive(t *testing.T) {
	rng := newRNG(1)
	for i, g := range convGeometries {
		p := g.WithOutSize()
		if err := p.Validate(); err != nil {
			t.Fatalf("geometry %d: %v", i, err)
		}
		x, w, b := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M)
		y := make([]float64, p.YLen())
		Conv2DForward(p, x, w, b, y)
		assertClose(t, fmt.Sprintf("geometry %d with bias", i), y, naiveConv(p, x, w, b), 1e-12)
		Conv2DForward(p, x, w, nil, y)
		assertClose(t, fmt.Sprintf("geometry %d without bias", i), y, naiveConv(p, x, w, nil), 1e-12)
	}
}

func TestConv2DGradients(t *testing.T) {
	rng := newRNG(2)
	for i, g := range convGeometries {
		p := g.WithOutSize()
		x, w, b := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M)
		dy := randn(rng, p.YLen())
		y := make([]float64, p.YLen())
		fwd := func() []float64 { Conv2DForward(p, x, w, b, y); return y }

		dx := make([]float64, p.XLen())
		Conv2DBackwardData(p, w, dy, dx)
		checkGrad(t, fmt.Sprintf("geometry %d dX", i), x, dy, dx, fwd)

		dw := make([]float64, p.WLen())
		Conv2DBackwardWeight(p, x, dy, dw)
		checkGrad(t, fmt.Sprintf("geometry %d dW", i), w, dy, dw, fwd)

		db := make([]float64, p.M)
		Conv2DBackwardBias(p, dy, db)
		checkGrad(t, fmt.Sprintf("geometry %d dB", i), b, dy, db, fwd)

		wdx, wdw := naiveConvBackward(p, x, w, dy)
		assertClose(t, fmt.Sprintf("geometry %d dX vs direct loops", i), dx, wdx, 1e-12)
		assertClose(t, fmt.Sprintf("geometry %d dW vs direct loops", i), dw, wdw, 1e-12)
	}
}

// TestConv2DOverwrites checks that outputs are overwritten, not accumulated,
// including garbage (NaN) already in them.
func TestConv2DOverwrites(t *testing.T) {
	rng := newRNG(3)
	for i, g := range convGeometries {
		p := g.WithOutSize()
		x, w, dy := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.YLen())
		nan := func(n int) []float64 {
			s := make([]float64, n)
			for j := range s {
				s[j] = math.NaN()
			}
			return s
		}
		y, dx, dw, db := nan(p.YLen()), nan(p.XLen()), nan(p.WLen()), nan(p.M)
		Conv2DForward(p, x, w, nil, y)
		Conv2DBackwardData(p, w, dy, dx)
		Conv2DBackwardWeight(p, x, dy, dw)
		Conv2DBackwardBias(p, dy, db)
		for name, s := range map[string][]float64{"y": y, "dx": dx, "dw": dw, "db": db} {
			for _, v := range s {
				if math.IsNaN(v) {
					t.Errorf("geometry %d: %s keeps NaN", i, name)
					break
				}
			}
		}
	}
}

// TestIm2ColAdjoint checks <Im2Col(x), c> == <x, Col2Im(c)>.
func TestIm2ColAdjoint(t *testing.T) {
	rng := newRNG(4)
	for i, g := range convGeometries {
		p := g.WithOutSize()
		x := randn(rng, p.C*p.H*p.W)
		c := randn(rng, p.ColLen())
		col := make([]float64, p.ColLen())
		Im2Col(p, x, col)
		back := make([]float64, len(x))
		Col2Im(p, c, back)
		if l, r := dot(col, c), dot(x, back); math.Abs(l-r) > 1e-12*math.Max(1, math.Abs(l)) {
			t.Errorf("geometry %d: <im2col x, c> = %g, <x, col2im c> = %g", i, l, r)
		}
	}
}

func TestConv2DValidate(t *testing.T) {
	base := Conv2DParams{N: 1, C: 2, H: 5, W: 5, M: 3, KH: 3, KW: 3}.WithOutSize()
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Conv2DParams{}
	p := base
	p.Group = 2
	bad = append(bad, p)
	p = base
	p.OutH++
	bad = append(bad, p)
	p = base
	p.PadLeft = -1
	bad = append(bad, p)
	p = base
	p.KH = 9
	bad = append(bad, p.WithOutSize())
	for i, p := range bad {
		if p.Validate() == nil {
			t.Errorf("case %d: %+v validated", i, p)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Conv2DForward with group 2 did not panic")
		}
	}()
	p = base
	p.Group = 2
	Conv2DForward(p, make([]float64, 100), make([]float64, 100), nil, make([]float64, 100))
}

// TestConv2DFloat32 checks float32 against float64 at realistic sizes, on
// the parallel paths.
func TestConv2DFloat32(t *testing.T) {
	rng := newRNG(5)
	for _, g := range []Conv2DParams{
		{N: 4, C: 32, H: 28, W: 28, M: 48, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 3, C: 64, H: 14, W: 14, M: 32, KH: 1, KW: 1},
		{N: 2, C: 16, H: 33, W: 31, M: 24, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1},
	} {
		p := g.WithOutSize()
		x, w, b, dy := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M), randn(rng, p.YLen())
		x32, w32, b32, dy32 := to32(x), to32(w), to32(b), to32(dy)

		y, y32 := make([]float64, p.YLen()), make([]float32, p.YLen())
		Conv2DForward(p, x, w, b, y)
		Conv2DForward(p, x32, w32, b32, y32)
		assertClose(t, "forward float32", to64(y32), y, 2e-5)

		dx, dx32 := make([]float64, p.XLen()), make([]float32, p.XLen())
		Conv2DBackwardData(p, w, dy, dx)
		Conv2DBackwardData(p, w32, dy32, dx32)
		assertClose(t, "backward data float32", to64(dx32), dx, 2e-5)

		dw, dw32 := make([]float64, p.WLen()), make([]float32, p.WLen())
		Conv2DBackwardWeight(p, x, dy, dw)
		Conv2DBackwardWeight(p, x32, dy32, dw32)
		assertClose(t, "backward weight float32", to64(dw32), dw, 1e-4)

		db, db32 := make([]float64, p.M), make([]float32, p.M)
		Conv2DBackwardBias(p, dy, db)
		Conv2DBackwardBias(p, dy32, db32)
		assertClose(t, "backward bias float32", to64(db32), db, 1e-5)
	}
}

func to32(s []float64) []float32 {
	o := make([]float32, len(s))
	for i, v := range s {
		o[i] = float32(v)
	}
	return o
}

func to64[T Float](s []T) []float64 {
	o := make([]float64, len(s))
	for i, v := range s {
		o[i] = float64(v)
	}
	return o
}

// TestConv2DBanded covers images large enough to be unfolded in bands of
// output rows, against the direct loops.
func TestConv2DBanded(t *testing.T) {
	rng := newRNG(6)
	p := Conv2DParams{N: 2, C: 64, H: 91, W: 90, M: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 0, PadBottom: 2, PadRight: 1}.WithOutSize()
	if p.band() >= p.OutH {
		t.Fatalf("band %d does not split %d output rows", p.band(), p.OutH)
	}
	x, w, dy := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.YLen())
	y := make([]float64, p.YLen())
	Conv2DForward(p, x, w, nil, y)
	assertClose(t, "banded forward", y, naiveConv(p, x, w, nil), 1e-12)
	dx, dw := make([]float64, p.XLen()), make([]float64, p.WLen())
	Conv2DBackwardData(p, w, dy, dx)
	Conv2DBackwardWeight(p, x, dy, dw)
	wdx, wdw := naiveConvBackward(p, x, w, dy)
	assertClose(t, "banded dX", dx, wdx, 1e-12)
	assertClose(t, "banded dW", dw, wdw, 1e-12)
}

// TestConv2DPaths checks float32 convolutions on every GEMM this machine
// runs (each takes its own paths: the padded grid with sparse stores on
// AVX-512, the flipped convolution for the data gradient, grouped im2col
// for narrow maps, col2im for strided ones, plain BLAS calls on gonum)
// against the direct loops in float64, over every geometry of
// convGeometries and sizes that make several groups of images, odd widths
// (runs crossing output rows inside one panel), images wide enough for
// the padded grid (with dilation, asymmetric pads, and pads larger than
// the kernel, which the flipped convolution cannot take), and 1×1
// kernels.
func TestConv2DPaths(t *testing.T) {
	// The strided geometries below that the padded grid's phases must take (a kernel
	// spanning the stride, outputs at least paddedMinWidth wide); a 1×1 stride-2 one
	// that must not.
	for i, g := range []Conv2DParams{
		{N: 2, C: 3, H: 32, W: 30, M: 9, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 1, C: 3, H: 40, W: 37, M: 10, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3},
		{N: 1, C: 2, H: 41, W: 40, M: 6, KH: 3, KW: 3, StrideH: 3, StrideW: 3},
		{N: 2, C: 3, H: 30, W: 28, M: 5, KH: 3, KW: 3, StrideH: 2, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	} {
		if p := g.WithOutSize().norm(); !p.padded() {
			t.Errorf("strided geometry %d (out %dx%d) does not take the padded grid", i, p.OutH, p.OutW)
		}
	}
	if p := (Conv2DParams{N: 1, C: 8, H: 56, W: 56, M: 16, KH: 1, KW: 1, StrideH: 2, StrideW: 2}).WithOutSize().norm(); p.padded() {
		t.Error("a 1×1 stride-2 convolution takes the padded grid's phases, three of four unread")
	}
	geoms := append([]Conv2DParams{}, convGeometries...)
	geoms = append(geoms,
		Conv2DParams{N: 7, C: 5, H: 13, W: 11, M: 9, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 3, C: 2, H: 40, W: 37, M: 7, KH: 3, KW: 3, PadTop: 1, PadLeft: 2, PadBottom: 0, PadRight: 1},
		Conv2DParams{N: 2, C: 3, H: 35, W: 33, M: 13, KH: 2, KW: 3, StrideH: 2, StrideW: 3, DilH: 2, PadTop: 2, PadLeft: 1},
		Conv2DParams{N: 20, C: 4, H: 2, W: 2, M: 5, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 10, C: 3, H: 18, W: 17, M: 8, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 2, C: 6, H: 20, W: 19, M: 17, KH: 3, KW: 3, DilH: 2, DilW: 2, PadTop: 2, PadLeft: 1, PadBottom: 3, PadRight: 2},
		Conv2DParams{N: 2, C: 3, H: 16, W: 16, M: 9, KH: 3, KW: 3, PadTop: 3, PadLeft: 1, PadBottom: 1, PadRight: 3},
		Conv2DParams{N: 3, C: 16, H: 14, W: 15, M: 40, KH: 1, KW: 1},
		// Strided and wide enough for the padded grid split into phases: a 3×3 and a
		// 7×7 stem (pads 1 and 3), dilation with asymmetric pads, strides 3 by 2, and
		// a batch whose images run in parallel.
		Conv2DParams{N: 2, C: 3, H: 32, W: 30, M: 9, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 1, C: 3, H: 40, W: 37, M: 10, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3},
		Conv2DParams{N: 2, C: 4, H: 29, W: 31, M: 6, KH: 3, KW: 3, StrideH: 2, StrideW: 2, DilH: 2, PadTop: 2, PadBottom: 1, PadRight: 3},
		Conv2DParams{N: 3, C: 5, H: 37, W: 33, M: 7, KH: 4, KW: 3, StrideH: 3, StrideW: 2, PadTop: 1, PadLeft: 2, PadRight: 1},
		Conv2DParams{N: 6, C: 8, H: 26, W: 26, M: 16, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 2, C: 3, H: 30, W: 28, M: 5, KH: 3, KW: 3, StrideH: 2, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 1, C: 2, H: 41, W: 40, M: 6, KH: 3, KW: 3, StrideH: 3, StrideW: 3},
		// Pointwise (conv_pointwise.go): one image, a depth over two k blocks, rows past
		// a whole panel; images in parallel with A packed once.
		Conv2DParams{N: 1, C: 600, H: 9, W: 7, M: 13, KH: 1, KW: 1},
		Conv2DParams{N: 5, C: 20, H: 12, W: 12, M: 70, KH: 1, KW: 1},
		Conv2DParams{N: 1, C: 3, H: 30, W: 64, M: 33, KH: 5, KW: 5, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		// Grouped: depthwise (stride 1 and 2, channel multiplier 1 and 2), groups of 2 and 4 channels.
		Conv2DParams{N: 3, C: 8, H: 14, W: 13, M: 8, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 8},
		Conv2DParams{N: 2, C: 6, H: 15, W: 16, M: 12, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2, Group: 6},
		Conv2DParams{N: 2, C: 4, H: 9, W: 7, M: 4, KH: 3, KW: 3, DilH: 2, DilW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2, Group: 4},
		Conv2DParams{N: 2, C: 3, H: 6, W: 5, M: 6, KH: 3, KW: 2, PadTop: 0, PadLeft: 2, PadBottom: 1, PadRight: 0, Group: 3},
		Conv2DParams{N: 2, C: 8, H: 13, W: 16, M: 12, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 4},
		Conv2DParams{N: 3, C: 6, H: 7, W: 6, M: 9, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, Group: 3},
		Conv2DParams{N: 2, C: 8, H: 5, W: 5, M: 16, KH: 1, KW: 1, Group: 2},
		// Groups of 8 channels through the taps' loop (RegNet's): a 7×7 map, one wide
		// enough to be computed row by row, stride 2; groups of 26 on a small map (taps)
		// and on a larger one, as a product per image and group.
		Conv2DParams{N: 2, C: 24, H: 7, W: 7, M: 24, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 3},
		Conv2DParams{N: 1, C: 16, H: 9, W: 36, M: 16, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2},
		Conv2DParams{N: 2, C: 16, H: 15, W: 14, M: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2},
		Conv2DParams{N: 2, C: 52, H: 6, W: 7, M: 4, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2},
		Conv2DParams{N: 2, C: 52, H: 15, W: 14, M: 4, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2},
		// Winograd F(2×2, 3×3): odd heights and widths (part tiles),
		// 16-tile groups with a remainder, M = 16 (the data gradient too), and
		// images cut into several units (C = 272).
		Conv2DParams{N: 2, C: 16, H: 17, W: 33, M: 24, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 3, C: 20, H: 16, W: 16, M: 16, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 1, C: 272, H: 21, W: 63, M: 17, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		// Several small images per unit.
		Conv2DParams{N: 5, C: 24, H: 8, W: 7, M: 20, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		// Small maps with the positions as the product's rows (convForwardByPositions):
		// a 7×7 map over two k blocks, two images in one product, a 1×1 stride-2
		// projection, a pointwise one, dilation with asymmetric pads, images of a 12×12
		// map in two products (three and one).
		Conv2DParams{N: 1, C: 40, H: 7, W: 7, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 2, C: 12, H: 7, W: 7, M: 32, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		Conv2DParams{N: 1, C: 300, H: 14, W: 14, M: 32, KH: 1, KW: 1, StrideH: 2, StrideW: 2},
		Conv2DParams{N: 1, C: 70, H: 7, W: 7, M: 96, KH: 1, KW: 1},
		Conv2DParams{N: 1, C: 5, H: 9, W: 8, M: 32, KH: 3, KW: 3, DilH: 2, PadTop: 2, PadLeft: 1, PadBottom: 2, PadRight: 1},
		Conv2DParams{N: 4, C: 6, H: 12, W: 12, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	)
	groupTaps, groupProducts := 0, 0
	for _, g := range geoms {
		if p := g.WithOutSize().norm(); p.Group > 1 && !p.Depthwise() {
			if p.byTaps() {
				groupTaps++
			} else {
				groupProducts++
			}
		}
	}
	if groupTaps < 3 || groupProducts < 1 {
		t.Fatalf("%d grouped geometries take the taps' loop and %d the products; want at least 3 and 1", groupTaps, groupProducts)
	}
	positions := map[string]int64{} // convolutions computed by positions, by kernel
	for _, k := range asmKernels() {
		positions[k.name] = -k.positionRuns.Load()
	}
	siluStored := map[string]int{} // geometries whose SiLU the products' epilogue stored, by kernel
	forEachImplementation(t, func(t *testing.T) {
		if kern := packedKernel[float32](); kern != nil && kern.wino != nil {
			forward, data := 0, 0
			for _, g := range geoms {
				p := g.WithOutSize().norm()
				if p.winogradOn(kern) {
					forward++
				}
				if q, ok := p.flipped(); ok && q.winogradOn(kern) {
					data++
				}
			}
			if forward < 3 || data < 2 {
				t.Fatalf("%d geometries take the Winograd forward and %d its data gradient; want at least 3 and 2", forward, data)
			}
		}
		rng := newRNG(7)
		for gi, g := range geoms {
			p := g.WithOutSize()
			x, w, b, dy := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M), randn(rng, p.YLen())
			name := fmt.Sprintf("geometry %d %+v (%s)", gi, g, CurrentBLAS().Name())
			y32 := make([]float32, p.YLen())
			for i := range y32 {
				y32[i] = float32(math.NaN()) // overwritten, never read
			}
			Conv2DForward(p, to32(x), to32(w), to32(b), y32)
			want := naiveConv(p, x, w, b)
			assertClose(t, name+" forward", to64(y32), want, 1e-4)
			for i := range y32 {
				y32[i] = float32(math.NaN())
			}
			Conv2DForwardRelu(p, to32(x), to32(w), to32(b), y32)
			for i, v := range want {
				want[i] = max(v, 0)
			}
			assertClose(t, name+" forward+relu", to64(y32), want, 1e-4)
			for i := range y32 {
				y32[i] = float32(math.NaN())
			}
			clip := Activation{Kind: ClipActivation, Lo: -0.5, Hi: 1.5}
			Conv2DForwardAct(p, to32(x), to32(w), to32(b), y32, clip)
			want = naiveConv(p, x, w, b)
			for i, v := range want {
				want[i] = min(max(v, clip.Lo), clip.Hi)
			}
			assertClose(t, name+" forward+clip", to64(y32), want, 1e-4)
			ys, stored := convSiLU(t, name, p, to32(x), to32(w), to32(b))
			if stored {
				siluStored[packedKernel[float32]().name]++
			}
			want = naiveConv(p, x, w, b)
			for i, v := range want {
				want[i] = v / (1 + math.Exp(-v))
			}
			assertClose(t, name+" forward+silu", to64(ys), want, 1e-4)
			wdx, wdw := naiveConvBackward(p, x, w, dy)
			dw32 := make([]float32, p.WLen())
			for i := range dw32 {
				dw32[i] = float32(math.NaN())
			}
			Conv2DBackwardWeight(p, to32(x), to32(dy), dw32)
			assertClose(t, name+" dW", to64(dw32), wdw, 1e-4)
			dx32 := make([]float32, p.XLen())
			for i := range dx32 {
				dx32[i] = float32(math.NaN())
			}
			Conv2DBackwardData(p, to32(w), to32(dy), dx32)
			assertClose(t, name+" dX", to64(dx32), wdx, 1e-4)
		}
	})
	for _, k := range asmKernels() {
		// At least two of the six geometries above, each called four times or more
		// (forward, Relu, Clip, SiLU): AVX2's panels of 16 columns waste less on the
		// others, and Winograd takes its 3×3 ones on 7×7 maps.
		if n := positions[k.name] + k.positionRuns.Load(); n < 2*4 {
			t.Errorf("%s computed %d convolutions with the positions as rows; want at least %d", k.name, n, 2*4)
		}
		if k.siluStore && siluStored[k.name] < 5 {
			t.Errorf("%s stored the SiLU of %d geometries; want at least 5", k.name, siluStored[k.name])
		}
	}
}

// TestSgemmBias checks the bias epilogue of the packed GEMM (full and
// fringe tiles, several k blocks, with beta 0 and 1).
func TestSgemmBias(t *testing.T) {
	rng := newRNG(84)
	for _, kern := range allKernels() {
		for _, s := range [][3]int{{13, 37, 5}, {6, 16, 300}, {200, 40, 600}, {30, 900, 20}} {
			m, n, k := s[0], s[1], s[2]
			for _, beta := range []float32{0, 1} {
				a, b, c := to32(randn(rng, m*k)), to32(randn(rng, k*n)), to32(randn(rng, m*n))
				bias := to32(randn(rng, m))
				want := naiveGemm64(false, false, m, n, k, 1, a, k, b, n, float64(beta), c, n)
				sgemmPacked(kern, 3, gemmArgs{m: m, n: n, k: k, alpha: 1, beta: beta, a: dense(a, k, false),
					b: dense(b, n, false), c: c, ldc: n, bias: bias})
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						w := want[i*n+j] + float64(bias[i])
						if d := math.Abs(float64(c[i*n+j]) - w); d > 1e-4*(1+math.Abs(w)) {
							t.Fatalf("%s %dx%dx%d beta %g: C[%d][%d] = %g, want %g", kern.name, m, n, k, beta, i, j, c[i*n+j], w)
						}
					}
				}
			}
		}
	}
}

// TestWinogradPaddedInChunks checks that convForwardWinograd gives the same bits when it
// pads the batch a few images at a time (budgets of one, two and three images; units of
// several small images, and of tile rows of one image) as when it pads the whole batch
// at once, on every implementation with the transforms.
func TestWinogradPaddedInChunks(t *testing.T) {
	geoms := []Conv2DParams{
		{N: 5, C: 16, H: 17, W: 19, M: 24, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 9, C: 24, H: 8, W: 7, M: 20, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		// Units of tile rows of one image.
		{N: 3, C: 64, H: 40, W: 41, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	}
	forEachWinograd(t, func(t *testing.T, kern *gemmKernel) {
		rng := newRNG(11)
		for _, g := range geoms {
			p := g.WithOutSize().norm()
			if !p.winogradOn(kern) {
				t.Fatalf("%+v does not take the Winograd path", g)
			}
			x, w, b := to32(randn(rng, p.XLen())), to32(randn(rng, p.WLen())), to32(randn(rng, p.M))
			whole := make([]float32, p.YLen())
			convForwardWinogradPadded(kern, p, x, winoWeights(p.C, w), b, whole, Activation{Kind: ReluActivation}, filterUse{}, 1<<30)
			plane := (2*((p.OutH+1)/2) + 2) * (2*((p.OutW+1)/2) + 2)
			for _, images := range []int{1, 2, 3} {
				y := make([]float32, p.YLen())
				convForwardWinogradPadded(kern, p, x, winoWeights(p.C, w), b, y, Activation{Kind: ReluActivation}, filterUse{}, images*p.C*plane)
				for i := range y {
					if math.Float32bits(y[i]) != math.Float32bits(whole[i]) {
						t.Fatalf("%+v, %d images padded at a time: y[%d] = %v, the whole batch padded %v", g, images, i, y[i], whole[i])
					}
				}
			}
		}
	})
}

// TestWinogradUnitsSplit checks the Winograd path of a batch with fewer units than
// cores (one image on small maps: each unit's transforms and products split across
// the cores) against the same convolution on one core, bit for bit, and against the
// float64 direct convolution, on every implementation with the transforms.
func TestWinogradUnitsSplit(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	geoms := []Conv2DParams{
		{N: 1, C: 24, H: 13, W: 15, M: 20, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 1, C: 64, H: 14, W: 14, M: 40, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	}
	forEachWinograd(t, func(t *testing.T, kern *gemmKernel) {
		rng := newRNG(12)
		for _, g := range geoms {
			p := g.WithOutSize().norm()
			if units, _ := winoPlanUnits(p); !p.winogradOn(kern) || len(units) >= runtime.GOMAXPROCS(0) {
				t.Fatalf("%+v: Winograd %v with %d units; want it with fewer units than the %d cores", g, p.winogradOn(kern), len(units), runtime.GOMAXPROCS(0))
			}
			x, w, b := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M)
			split := make([]float32, p.YLen())
			convForwardWinograd(kern, p, to32(x), winoWeights(p.C, to32(w)), to32(b), split, Activation{}, filterUse{})
			one := make([]float32, p.YLen())
			procs := runtime.GOMAXPROCS(1)
			convForwardWinograd(kern, p, to32(x), winoWeights(p.C, to32(w)), to32(b), one, Activation{}, filterUse{})
			runtime.GOMAXPROCS(procs)
			for i := range one {
				if math.Float32bits(split[i]) != math.Float32bits(one[i]) {
					t.Fatalf("%+v: y[%d] = %v split across the cores, %v on one", g, i, split[i], one[i])
				}
			}
			want := make([]float64, p.YLen())
			Conv2DForward(p, to64(to32(x)), to64(to32(w)), to64(to32(b)), want)
			assertClose(t, fmt.Sprintf("%+v against float64", g), to64(split), want, 1e-4)
		}
	})
}

// convSiLU runs p's forward pass with a SiLU after it, checks that it gives the bits
// of the products followed by the SiLU's pass (whether the products stored it or
// not), and returns its output and whether the products' epilogue stored it.
func convSiLU(t *testing.T, name string, p Conv2DParams, x, w, b []float32) ([]float32, bool) {
	t.Helper()
	kern := packedKernel[float32]()
	var epilogues int64 // blocks whose tiles stored the SiLU
	if kern != nil {
		epilogues = kern.siluRuns.Load()
	}
	y := make([]float32, p.YLen())
	Conv2DForwardAct(p, x, w, b, y, Activation{Kind: SiLUActivation})
	stored := kern != nil && kern.siluRuns.Load() > epilogues
	pass := make([]float32, p.YLen())
	Conv2DForward(p, x, w, b, pass)
	ActivationForward(Activation{Kind: SiLUActivation}, pass, pass)
	assertBits(t, name+": the SiLU stored, against the pass after the products", y, pass)
	return y, stored
}

// forEachWinograd runs fn on every implementation with the Winograd transforms (its
// kernel's), and fails unless every one this CPU has ran.
func forEachWinograd(t *testing.T, fn func(t *testing.T, kern *gemmKernel)) {
	t.Helper()
	forEachKernelWith(t, "the Winograd transforms", func(k *gemmKernel) bool { return k.wino != nil }, fn)
}

// forEachKernelWith runs fn on every implementation whose kernel has what has reports
// (a vector loop, the Winograd transforms), and fails unless every kernel of the CPU
// that has it ran.
func forEachKernelWith(t *testing.T, what string, has func(*gemmKernel) bool, fn func(t *testing.T, kern *gemmKernel)) {
	t.Helper()
	ran := 0
	forEachImplementation(t, func(t *testing.T) {
		if kern := packedKernel[float32](); kern != nil && has(kern) {
			ran++
			fn(t, kern)
		}
	})
	want := 0
	for _, k := range asmKernels() {
		if has(k) {
			want++
		}
	}
	if ran != want {
		t.Fatalf("%d implementations ran %s; this CPU has %d", ran, what, want)
	}
}

// TestWeightGradGroupBudget checks the arithmetic of the weight gradient's image groups
// (weightGradGroup) for padded convolutions: a group's padded copies and the operand its
// product packs whole (dy's rows where the taps are at least the output channels, else the
// taps, in the sizes of the kernel in use) stay within 1<<22 values unless one image alone
// takes more, and the group is the largest that does, at most the batch: a VGG or ResNet
// stem's few taps over 224×224 positions in groups of a few images, not of the batch.
func TestWeightGradGroupBudget(t *testing.T) {
	kern := packedKernel[float32]()
	if kern == nil { // the AVX-512 kernel's panels, the widest the groups allow for
		kern = &gemmKernel{mr: 8, nr: 32, kc: 256}
	}
	for _, g := range []Conv2DParams{
		{N: 32, C: 3, H: 224, W: 224, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 32, C: 3, H: 224, W: 224, M: 64, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3},
		{N: 16, C: 64, H: 112, W: 112, M: 128, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 16, C: 512, H: 14, W: 14, M: 512, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 4, C: 8, H: 7, W: 7, M: 16, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	} {
		p := g.WithOutSize().norm()
		_, _, plane := p.paddedDims()
		K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
		// Values a group of n images holds at once: its padded copies, and the operand
		// sgemmPacked packs whole (A where K >= M, else B).
		held := func(n int) int {
			whole := packedALen(kern, p.M, n*P)
			if K < p.M {
				whole = packedBLen(kern, n*P, K)
			}
			return max(n*p.C*plane, whole)
		}
		n := weightGradGroup(p, false, kern.kc)
		if n < 1 || n > p.N {
			t.Fatalf("%+v: a group of %d images of %d", g, n, p.N)
		}
		if n > 1 && held(n) > 1<<22 {
			t.Errorf("%+v: groups of %d images hold %d values, past 1<<22", g, n, held(n))
		}
		if n < p.N && held(n+1) <= 1<<22 {
			t.Errorf("%+v: groups of %d images; %d would hold %d values, within 1<<22", g, n, n+1, held(n+1))
		}
	}
}
