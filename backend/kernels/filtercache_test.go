package kernels

import (
	"math"
	"testing"
)

// TestFilterCache checks Conv2DForwardCached against Conv2DForward on every
// implementation: the same bits on the first call, on a second call served
// from the cache, after one weight changes in place (the fingerprint must
// notice), and with the Relu; that a Winograd geometry does fill the cache
// where the implementation has Winograd; and that a disabled cache lets its
// filters go, is not filled again, and gives the same bits.
func TestFilterCache(t *testing.T) {
	p := Conv2DParams{N: 2, C: 16, H: 12, W: 14, M: 20, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize()
	rng := newRNG(31)
	x, w, bias := to32(randn(rng, p.XLen())), to32(randn(rng, p.WLen())), to32(randn(rng, p.M))
	forEachImplementation(t, func(t *testing.T) {
		var cache FilterCache
		check := func(what string, relu bool) {
			t.Helper()
			want, got := make([]float32, p.YLen()), make([]float32, p.YLen())
			var act Activation
			if relu {
				act.Kind = ReluActivation
				Conv2DForwardRelu(p, x, w, bias, want)
			} else {
				Conv2DForward(p, x, w, bias, want)
			}
			Conv2DForwardCached(&cache, p, x, w, bias, got, act)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: y[%d] = %v, uncached %v", what, i, got[i], want[i])
				}
			}
		}
		check("first call", false)
		if kern := packedKernel[float32](); kern != nil && p.norm().winogradOn(kern) && cache.u == nil {
			t.Fatalf("a Winograd convolution left the cache empty")
		}
		check("second call (cached)", false)
		check("with Relu", true)
		old := w[p.WLen()/2]
		w[p.WLen()/2] = old + 0.5
		check("after a weight changed", false)
		w[p.WLen()/2] = old
		check("after it changed back", true)
		cache.Disable()
		if cache.u != nil {
			t.Fatal("Disable kept the transformed filters")
		}
		check("disabled", false)
		if cache.u != nil {
			t.Fatal("a disabled cache was filled")
		}
	})
}

// TestFingerprint checks that the fingerprint changes with any single value,
// at every position of the four lanes and the tail.
func TestFingerprint(t *testing.T) {
	w := to32(randn(newRNG(5), 37))
	base := fingerprint(w)
	for i := range w {
		old := w[i]
		w[i] = math.Nextafter32(old, float32(math.Inf(1)))
		if fingerprint(w) == base {
			t.Errorf("changing w[%d] by one ulp leaves the fingerprint", i)
		}
		w[i] = old
	}
	if fingerprint(w[:36]) == base {
		t.Errorf("dropping the last value leaves the fingerprint")
	}
}

// TestFilterCacheConstant checks Conv2DForwardConstant (the cache trusted, the weights
// packed into it) against Conv2DForward on every implementation, for Winograd,
// pointwise, gathered and padded-grid geometries: the same bits on the first call and
// on calls served from the cache; that each path that packs fills the cache; that a weight changed in place is not noticed (the
// promise) until a checked call refreshes the cache; and that the checked calls after
// give the same bits.
func TestFilterCacheConstant(t *testing.T) {
	geoms := []Conv2DParams{
		{N: 2, C: 16, H: 12, W: 14, M: 20, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 3, C: 24, H: 9, W: 11, M: 19, KH: 1, KW: 1},
		{N: 1, C: 300, H: 9, W: 11, M: 19, KH: 1, KW: 1}, // batch 1: the weights kept as the packed-B products read them
		// Weights packed once: gathered products (a 7×7 map at batch 1, too few tiles
		// for Winograd; a strided layer) and the padded grid (a 5×5 kernel).
		{N: 1, C: 16, H: 7, W: 7, M: 20, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 8, H: 15, W: 15, M: 12, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 1, C: 4, H: 30, W: 64, M: 9, KH: 5, KW: 5, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		// The positions as the product's rows, the weights kept as it reads B.
		{N: 1, C: 40, H: 7, W: 7, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	}
	rng := newRNG(32)
	forEachImplementation(t, func(t *testing.T) {
		for _, g := range geoms {
			p := g.WithOutSize()
			x, w, bias := to32(randn(rng, p.XLen())), to32(randn(rng, p.WLen())), to32(randn(rng, p.M))
			var cache FilterCache
			run := func(f func(*FilterCache, Conv2DParams, []float32, []float32, []float32, []float32, Activation)) []float32 {
				y := make([]float32, p.YLen())
				f(&cache, p, x, w, bias, y, Activation{Kind: ReluActivation})
				return y
			}
			same := func(got, want []float32) bool {
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						return false
					}
				}
				return true
			}
			want := make([]float32, p.YLen())
			Conv2DForwardRelu(p, x, w, bias, want)
			if !same(run(Conv2DForwardConstant[float32]), want) {
				t.Fatalf("%+v: the first constant call differs from Conv2DForward", g)
			}
			kern := packedKernel[float32]()
			if kern != nil && (p.norm().winogradOn(kern) || p.direct() && kern.tileRows != nil || p.norm().forwardFastOn(kern) || p.norm().byPositionsOn(kern)) && cache.u == nil {
				t.Fatalf("%+v: the constant call left the cache empty", g)
			}
			if !same(run(Conv2DForwardConstant[float32]), want) {
				t.Fatalf("%+v: a constant call from the cache differs", g)
			}
			if cache.u == nil {
				continue // nothing kept: nothing to go stale
			}
			w[0] += 0.5
			changed := make([]float32, p.YLen())
			Conv2DForwardRelu(p, x, w, bias, changed)
			if !same(run(Conv2DForwardConstant[float32]), want) {
				t.Fatalf("%+v: a constant call noticed a weight changed in place (it must not check: the outputs of the weights it was filled from)", g)
			}
			if !same(run(Conv2DForwardCached[float32]), changed) {
				t.Fatalf("%+v: the checked call after the change differs", g)
			}
			if !same(run(Conv2DForwardConstant[float32]), changed) {
				t.Fatalf("%+v: a constant call after the refresh differs", g)
			}
		}
	})
}
