package kernels

import (
	"fmt"
	"math"
	"testing"
)

// TestConv2DForwardConstantAdd checks the convolution added to what y holds (a residual
// join) on every implementation against the direct loops in float64 plus y, with each
// activation after the sum: geometries the products add as they store (pointwise, and
// small maps with the positions as rows, over one and several k blocks and a batch) and
// ones added in a pass after them (the padded grid, gathered strided products,
// Winograd, grouped); with the weights kept in the cache, a second call from it the
// same bits. Each kernel of the CPU must have added in its products for at least two
// geometries.
func TestConv2DForwardConstantAdd(t *testing.T) {
	geoms := []Conv2DParams{
		{N: 2, C: 20, H: 12, W: 12, M: 70, KH: 1, KW: 1},
		{N: 1, C: 300, H: 9, W: 7, M: 40, KH: 1, KW: 1},
		{N: 1, C: 40, H: 7, W: 7, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 12, H: 7, W: 7, M: 32, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 1, C: 70, H: 7, W: 7, M: 96, KH: 1, KW: 1},
		{N: 1, C: 300, H: 14, W: 14, M: 32, KH: 1, KW: 1, StrideH: 2, StrideW: 2},
		{N: 2, C: 5, H: 20, W: 19, M: 9, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 8, H: 15, W: 15, M: 12, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 16, H: 17, W: 33, M: 24, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 8, H: 13, W: 16, M: 12, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 4},
	}
	acts := []Activation{{}, {Kind: ReluActivation}, {Kind: ClipActivation, Lo: -0.5, Hi: 1.5}, {Kind: SiLUActivation}}
	apply := func(a Activation, v float64) float64 {
		switch a.Kind {
		case ReluActivation:
			return max(v, 0)
		case ClipActivation:
			return min(max(v, a.Lo), a.Hi)
		case SiLUActivation:
			return v / (1 + math.Exp(-v))
		}
		return v
	}
	inProducts := map[string]int{}
	forEachImplementation(t, func(t *testing.T) {
		rng := newRNG(17)
		kern := packedKernel[float32]()
		for gi, g := range geoms {
			p := g.WithOutSize()
			x, w, b, r := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M), randn(rng, p.YLen())
			conv := naiveConv(p, x, w, b)
			if kern != nil && p.norm().addsInProducts(kern) {
				inProducts[kern.name]++
			}
			for _, act := range acts {
				name := fmt.Sprintf("geometry %d %+v, act %v (%s)", gi, g, act.Kind, CurrentBLAS().Name())
				want := make([]float64, len(conv))
				for i, v := range conv {
					want[i] = apply(act, v+r[i])
				}
				var cache FilterCache
				y := to32(r)
				Conv2DForwardConstantAdd(&cache, p, to32(x), to32(w), to32(b), y, act)
				assertClose(t, name, to64(y), want, 1e-4)
				again := to32(r)
				Conv2DForwardConstantAdd(&cache, p, to32(x), to32(w), to32(b), again, act)
				assertBits(t, name+": from the cache", again, y)
			}
		}
	})
	for _, k := range asmKernels() {
		if inProducts[k.name] < 2 {
			t.Errorf("%s added the residual in its products for %d geometries; want at least 2", k.name, inProducts[k.name])
		}
	}
}
