package kernels

import (
	"fmt"
	"math"
	"testing"
)

// TestDepthwiseEveryImplementation checks the depthwise forward pass (without an
// activation, and with a Relu or Clip stored by it) on every implementation against the float64
// direct loops, on planes whose spans leave every block of the vector loop
// (eight vectors, four, one, a masked remainder), strides 1 and 2, odd widths,
// 3×3 and 5×5 filters and a channel multiplier of 2; and the vector loops of the
// AVX-512 and AVX2 kernels bit for bit alike (the same fused multiply-adds in the
// same order), so that a run gives the same numbers on either.
func TestDepthwiseEveryImplementation(t *testing.T) {
	geoms := []Conv2DParams{
		{N: 2, C: 3, H: 40, W: 37, M: 3, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 3},
		{N: 1, C: 5, H: 7, W: 7, M: 5, KH: 5, KW: 5, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2, Group: 5},
		{N: 2, C: 4, H: 33, W: 30, M: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 4},
		{N: 1, C: 3, H: 29, W: 31, M: 3, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2, Group: 3},
		{N: 3, C: 2, H: 3, W: 4, M: 2, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2},
	}
	// Outputs narrower than dwRowsMin run over the span, 3w+4 (every remainder of 8
	// and 16) and 8w+14 (up to eight blocks); wider ones row by row, w (every
	// remainder) up to 130 (eight blocks and more), stride 2 too.
	for w := 1; w <= 60; w++ {
		for _, h := range []int{3, 8} {
			geoms = append(geoms, Conv2DParams{N: 1, C: 2, H: h, W: w, M: 2, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2})
		}
	}
	for _, w := range []int{130, 131} {
		geoms = append(geoms,
			Conv2DParams{N: 1, C: 2, H: 4, W: w, M: 2, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2},
			Conv2DParams{N: 1, C: 2, H: 5, W: 2 * w, M: 2, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2})
	}
	type result struct {
		name string
		y    [][]float32
	}
	var first *result
	vector := 0
	forEachImplementation(t, func(t *testing.T) {
		rng := newRNG(23)
		got := &result{name: Current()}
		for gi, g := range geoms {
			p := g.WithOutSize()
			x, w, b := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M)
			want := naiveConv(p, x, w, b)
			acts := []Activation{{}, {Kind: ReluActivation}, {Kind: ClipActivation, Lo: -0.5, Hi: 1.5}}
			for _, act := range acts {
				y := make([]float32, p.YLen())
				for i := range y {
					y[i] = float32(math.NaN()) // overwritten, never read
				}
				name := fmt.Sprintf("geometry %d activation %+v", gi, act)
				Conv2DForwardAct(p, to32(x), to32(w), to32(b), y, act)
				lo, hi := act.bounds()
				want := append([]float64(nil), want...)
				for i, v := range want {
					want[i] = min(max(v, float64(lo)), float64(hi))
				}
				assertClose(t, name, to64(y), want, 1e-5)
				got.y = append(got.y, y)
			}
		}
		kern := packedKernel[float32]()
		if kern == nil || kern.dwTaps == nil {
			return
		}
		vector++
		if first == nil {
			first = got
			return
		}
		for i := range got.y {
			for j := range got.y[i] {
				if math.Float32bits(got.y[i][j]) != math.Float32bits(first.y[i][j]) {
					t.Fatalf("output %d [%d]: %s gives %g, %s %g", i, j, got.name, got.y[i][j], first.name, first.y[i][j])
				}
			}
		}
	})
	want := 0 // the implementations with the vector loop this CPU runs
	for _, k := range asmKernels() {
		if k.dwTaps != nil {
			want++
		}
	}
	if vector != want {
		t.Fatalf("%d implementations ran the vector depthwise loop; this CPU has %d", vector, want)
	}
}

// TestEvenOdd checks the stride-2 column split of every kernel that has one against
// the plain loop, over every length up to 50 (each remainder of both widths), one row
// and three (with strides past the rows: the gaps left alone).
func TestEvenOdd(t *testing.T) {
	forEachKernelWith(t, "the vector column split", func(k *gemmKernel) bool { return k.evenOdd != nil }, func(t *testing.T, kern *gemmKernel) {
		rng := newRNG(5)
		for n := 1; n <= 50; n++ {
			for _, rows := range []int{1, 3} {
				xs, ds := 2*n+3, n+2
				x := to32(randn(rng, rows*xs))
				even, odd := make([]float32, rows*ds), make([]float32, rows*ds)
				for i := range even {
					even[i], odd[i] = 7, 7
				}
				kern.evenOdd(n, &x[0], &even[0], &odd[0], rows, xs, ds)
				for r := range rows {
					for i := range ds {
						we, wo := float32(7), float32(7) // past the row: left alone
						if i < n {
							we, wo = x[r*xs+2*i], x[r*xs+2*i+1]
						}
						if even[r*ds+i] != we || odd[r*ds+i] != wo {
							t.Fatalf("n %d, row %d of %d [%d]: %g %g, want %g %g", n, r, rows, i, even[r*ds+i], odd[r*ds+i], we, wo)
						}
					}
				}
			}
		}
	})
}

// TestCopyRows checks the row copy of every kernel that has one against copy, over
// every width up to 70 (each remainder of both vector widths, the four-vector loop),
// one row and three, with gaps that must be left alone.
func TestCopyRows(t *testing.T) {
	forEachKernelWith(t, "the vector row copy", func(k *gemmKernel) bool { return k.copyRows != nil }, func(t *testing.T, kern *gemmKernel) {
		rng := newRNG(9)
		for n := 1; n <= 70; n++ {
			for _, rows := range []int{1, 3} {
				ss, ds := n+5, n+3
				src := to32(randn(rng, rows*ss))
				dst := make([]float32, rows*ds+1)
				for i := range dst {
					dst[i] = 7
				}
				kern.copyRows(n, &src[0], &dst[0], rows, ss, ds)
				for i, v := range dst {
					r, j := i/ds, i%ds
					want := float32(7) // a gap or past the end: left alone
					if r < rows && j < n {
						want = src[r*ss+j]
					}
					if v != want {
						t.Fatalf("n %d, %d rows: dst[%d] = %g, want %g", n, rows, i, v, want)
					}
				}
			}
		}
	})
}
