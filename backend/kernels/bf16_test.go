package kernels

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"toolkit/internal/testref"
)

// TestRoundBF16AgainstPyTorch checks the rounding of float32 to bfloat16 against
// PyTorch's (torch.Tensor.to(torch.bfloat16), round to nearest, ties to even) on ties,
// the largest values, subnormals, infinities and random values.
func TestRoundBF16AgainstPyTorch(t *testing.T) {
	if err := torchAvailable(); err != nil {
		testref.Missing(t, "PyTorch reference unavailable (%s with torch; on Debian: apt-get install python3-torch): %v", torchPython, err)
	}
	vals := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1 + 1.0/256, 1 + 3.0/256, 1 + 5.0/256, 3.14159265, -2.71828,
		math.MaxFloat32, -math.MaxFloat32, 3.3895313892515355e38, 1e-38, 1e-40, -1e-45, float32(math.Inf(1)), float32(math.Inf(-1)),
		65504, 0.1, 1.0 / 3}
	rng := newRNG(5)
	for range 500 {
		vals = append(vals, float32(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(20)-10))))
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	bits := make([]uint32, len(vals))
	for i, v := range vals {
		bits[i] = math.Float32bits(v)
	}
	data, _ := json.Marshal(bits)
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `import json, sys, numpy as np, torch
b = np.array(json.load(open(sys.argv[1])), dtype=np.uint32)
x = torch.from_numpy(b.view(np.float32).copy())
y = x.to(torch.bfloat16).to(torch.float32).numpy().view(np.uint32)
json.dump([int(v) for v in y], open(sys.argv[2], "w"))`
	cmd := exec.Command(torchPython, "-c", script, in, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("PyTorch: %v\n%s", err, msg)
	}
	var want []uint32
	if data, err := os.ReadFile(out); err != nil || json.Unmarshal(data, &want) != nil {
		t.Fatalf("PyTorch's output: %v", err)
	}
	for i, v := range vals {
		if got := math.Float32bits(RoundBF16(v)); got != want[i] {
			t.Errorf("RoundBF16(%g = %08x) = %08x, PyTorch %08x", v, bits[i], got, want[i])
		}
	}
	if got := RoundBF16(float32(math.NaN())); got == got {
		t.Errorf("RoundBF16(NaN) = %g", got)
	}
}

// withBF16 runs f with the bfloat16 products in use, or skips where the CPU lacks them
// (then Use must refuse them, saying why).
func withBF16(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	orig := Current()
	if err := Use(BF16); err != nil {
		if BF16Available() == nil {
			t.Fatalf("Use(BF16): %v", err)
		}
		t.Skipf("no bfloat16 products here: %v", err)
	}
	defer func() {
		if err := Use(orig); err != nil {
			t.Error(err)
		}
	}()
	f(t)
}

// roundAll returns the values rounded to bfloat16, in float64.
func roundAll(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(RoundBF16(float32(v)))
	}
	return out
}

// TestGemmBF16 checks the bfloat16 products against float64 products of the operands
// rounded to bfloat16 (products of two bfloat16 are exact in float32, so the difference
// is the float32 accumulation's: within 1e-6 of Σ|a·b|), over shapes with odd depths,
// depths across the kernel's k blocks, transposes, alpha, beta and one row or column;
// and that the operands were rounded (the float32 GEMM gives other values).
func TestGemmBF16(t *testing.T) {
	withBF16(t, func(t *testing.T) {
		rng := newRNG(9)
		rounded := false
		for _, c := range []struct {
			m, n, k     int
			ta, tb      bool
			alpha, beta float64
		}{
			{7, 5, 1, false, false, 1, 0}, {8, 32, 2, false, false, 1, 0}, {9, 33, 3, false, false, 1, 0},
			{40, 70, 255, false, false, 1, 0}, {33, 65, 513, true, false, 0.5, 0}, {17, 130, 300, false, true, 1, 0.75},
			{1, 200, 77, true, true, 2, 1}, {120, 1, 64, false, false, 1, 0}, {64, 96, 1000, false, false, 1, 0},
		} {
			a, b, c0 := randn(rng, c.m*c.k), randn(rng, c.k*c.n), randn(rng, c.m*c.n)
			lda, ldb := c.k, c.n
			if c.ta {
				lda = c.m
			}
			if c.tb {
				ldb = c.k
			}
			want := append([]float64(nil), c0...)
			mag := make([]float64, c.m*c.n)
			ar, br := roundAll(a), roundAll(b)
			at := func(i, p int) float64 {
				if c.ta {
					return ar[p*lda+i]
				}
				return ar[i*lda+p]
			}
			bt := func(p, j int) float64 {
				if c.tb {
					return br[j*ldb+p]
				}
				return br[p*ldb+j]
			}
			for i := 0; i < c.m; i++ {
				for j := 0; j < c.n; j++ {
					var s, sa float64
					for p := 0; p < c.k; p++ {
						s += at(i, p) * bt(p, j)
						sa += math.Abs(at(i, p) * bt(p, j))
					}
					want[i*c.n+j] = c.alpha*s + c.beta*c0[i*c.n+j]
					mag[i*c.n+j] = math.Abs(c.alpha)*sa + math.Abs(c.beta*c0[i*c.n+j])
				}
			}
			got := to32(c0)
			Gemm(c.ta, c.tb, c.m, c.n, c.k, float32(c.alpha), to32(a), lda, to32(b), ldb, float32(c.beta), got, c.n)
			for i := range want {
				if d := math.Abs(float64(got[i]) - want[i]); d > 1e-6*mag[i]+1e-30 {
					t.Fatalf("%+v: C[%d] = %g, float64 of the rounded operands %g (|a·b| %g)", c, i, got[i], want[i], mag[i])
				}
			}
			// The same product in float64 without rounding: some values must differ by
			// more than the accumulation could explain.
			for i := 0; i < c.m && !rounded; i++ {
				for j := 0; j < c.n; j++ {
					var s float64
					for p := 0; p < c.k; p++ {
						ai, bj := a[i*lda+p], b[p*ldb+j]
						if c.ta {
							ai = a[p*lda+i]
						}
						if c.tb {
							bj = b[j*ldb+p]
						}
						s += ai * bj
					}
					if math.Abs(c.alpha*s+c.beta*c0[i*c.n+j]-float64(got[i*c.n+j])) > 1e-4*mag[i*c.n+j] {
						rounded = true
						break
					}
				}
			}
		}
		if !rounded {
			t.Error("no product differs from the unrounded one: the operands were not rounded to bfloat16")
		}
		t.Logf("on %s", fmt.Sprint(Current()))
	})
}

// TestConvBF16 checks the convolutions with the bfloat16 products (the paths that pack
// their operands: no Winograd transforms, no B read in place) against float64
// convolutions of the operands rounded to bfloat16, within 1e-6 of the same convolution
// of their absolute values: forward with bias and fused Relu, data and weight
// gradients, over strides, pads, dilations, 1×1 filters and groups.
func TestConvBF16(t *testing.T) {
	geoms := []Conv2DParams{
		{N: 2, C: 16, H: 17, W: 19, M: 24, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 3, C: 7, H: 13, W: 11, M: 9, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1},
		// Strided and wide enough for the padded grid's phases (a stem).
		{N: 2, C: 3, H: 31, W: 34, M: 20, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 32, H: 14, W: 15, M: 40, KH: 1, KW: 1},
		{N: 1, C: 5, H: 30, W: 24, M: 33, KH: 5, KW: 5, DilH: 2, PadTop: 4, PadLeft: 2, PadBottom: 4, PadRight: 2},
		// Groups run as products (narrower ones, byTaps, run the taps' loop in float32, as
		// depthwise ones).
		{N: 2, C: 52, H: 13, W: 16, M: 12, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 2},
		{N: 4, C: 64, H: 4, W: 4, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		// Even channels on a wide padded grid, read in place as pairs (convForwardPadded):
		// k blocks of an odd depth rounded to whole pairs (270 in two blocks), strided,
		// dilated with asymmetric pads.
		{N: 2, C: 30, H: 5, W: 50, M: 17, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 12, H: 9, W: 97, M: 10, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 1, C: 6, H: 12, W: 52, M: 9, KH: 3, KW: 5, DilH: 2, PadTop: 2, PadLeft: 2, PadBottom: 1, PadRight: 3},
		// Small maps with the positions as the product's rows (convForwardByPositions):
		// a 3×3 layer over two k blocks and a pointwise one.
		{N: 1, C: 40, H: 7, W: 7, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 1, C: 70, H: 7, W: 7, M: 96, KH: 1, KW: 1},
	}
	abs := func(x []float64) []float64 {
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = math.Abs(v)
		}
		return out
	}
	check := func(t *testing.T, what string, got32 []float32, want, mag []float64) {
		t.Helper()
		for i, w := range want {
			if d := math.Abs(float64(got32[i]) - w); d > 1e-6*mag[i]+1e-30 {
				t.Fatalf("%s[%d] = %g, float64 of the rounded operands %g (magnitude %g)", what, i, got32[i], w, mag[i])
			}
		}
	}
	siluStored := 0 // geometries whose SiLU the bfloat16 products' epilogue stored
	var pairRuns, positionRuns int64
	withBF16(t, func(t *testing.T) {
		kern := blasImpl.(goBLAS).kern
		pairs0, positions0 := kern.pairRuns.Load(), kern.positionRuns.Load()
		defer func() { pairRuns, positionRuns = kern.pairRuns.Load()-pairs0, kern.positionRuns.Load()-positions0 }()
		rng := newRNG(13)
		for gi, g := range geoms {
			p := g.WithOutSize()
			x, w, b, dy := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M), randn(rng, p.YLen())
			xr, wr, dyr := roundAll(x), roundAll(w), roundAll(dy)
			name := fmt.Sprintf("geometry %d %+v", gi, g)
			y, ym := make([]float64, p.YLen()), make([]float64, p.YLen())
			Conv2DForward(p, xr, wr, b, y)
			Conv2DForward(p, abs(xr), abs(wr), abs(b), ym)
			y32 := make([]float32, p.YLen())
			Conv2DForward(p, to32(x), to32(w), to32(b), y32)
			check(t, name+" y", y32, y, ym)
			relu := make([]float64, len(y))
			for i, v := range y {
				relu[i] = max(v, 0)
			}
			Conv2DForwardRelu(p, to32(x), to32(w), to32(b), y32)
			check(t, name+" relu(y)", y32, relu, ym)
			clip := Activation{Kind: ClipActivation, Lo: -0.5, Hi: 1.5}
			for i, v := range y {
				relu[i] = min(max(v, clip.Lo), clip.Hi)
			}
			Conv2DForwardAct(p, to32(x), to32(w), to32(b), y32, clip)
			check(t, name+" clip(y)", y32, relu, ym)
			// A SiLU stored by the bfloat16 products: the bits of the pass after them.
			if _, stored := convSiLU(t, name, p, to32(x), to32(w), to32(b)); stored {
				siluStored++
			}
			dx, dxm := make([]float64, p.XLen()), make([]float64, p.XLen())
			Conv2DBackwardData(p, wr, dyr, dx)
			Conv2DBackwardData(p, abs(wr), abs(dyr), dxm)
			dx32 := make([]float32, p.XLen())
			Conv2DBackwardData(p, to32(w), to32(dy), dx32)
			check(t, name+" dx", dx32, dx, dxm)
			dw, dwm := make([]float64, p.WLen()), make([]float64, p.WLen())
			Conv2DBackwardWeight(p, xr, dyr, dw)
			Conv2DBackwardWeight(p, abs(xr), abs(dyr), dwm)
			dw32 := make([]float32, p.WLen())
			Conv2DBackwardWeight(p, to32(x), to32(dy), dw32)
			check(t, name+" dw", dw32, dw, dwm)
		}
	})
	if BF16Available() == nil && siluStored < 3 {
		t.Errorf("the bfloat16 products stored the SiLU of %d geometries; want at least 3", siluStored)
	}
	if BF16Available() == nil && positionRuns < 2*4 {
		t.Errorf("the bfloat16 products computed %d convolutions with the positions as rows; want at least %d", positionRuns, 2*4)
	}
	if BF16Available() == nil && pairRuns == 0 {
		t.Error("no product read its B in place as pairs (pairRows)")
	}
}

type bf16StoreVariant struct {
	name string
	to   func(src []float32, dst []uint16)
	from func(src []uint16, dst []float32)
}

// TestToFromBF16 checks the compact bfloat16 copies (ToBF16, FromBF16) on every path
// this CPU runs (the Go loop, and each assembly loop on whole vectors) against
// RoundBF16 (PyTorch's rounding, TestRoundBF16AgainstPyTorch): ties, the largest values,
// subnormals (a nonzero value that rounds to zero keeps its sign and the smallest
// magnitude instead), infinities, NaNs of both signs and random values, at lengths with
// every tail; and that FromBF16 gives back exactly what ToBF16 kept.
func TestToFromBF16(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1 + 1.0/256, 1 + 3.0/256, 1 + 5.0/256,
		math.MaxFloat32, -math.MaxFloat32, 1e-38, 1e-40, -1e-40, 1e-45, -1e-45, 2e-41, -3e-41,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc12345),
		math.Float32frombits(0x7fffffff), 0.1, 1.0 / 3}
	want := func(v float32) uint32 {
		if v != v {
			return math.Float32bits(v)>>16 | 0x40
		}
		r := math.Float32bits(RoundBF16(v)) >> 16
		if r&0x7fff == 0 && v != 0 {
			r |= 1
		}
		return r
	}
	rng := newRNG(9)
	variants := append([]bf16StoreVariant{{"go", toBF16Go, fromBF16Go}}, bf16StoreVariants()...)
	// 1<<17+3: split across goroutines, a chunk starting on an odd value (two chunks
	// writing the halves of one slot).
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 100, 1000, 4099, 1<<17 + 3} {
		src := make([]float32, n)
		for i := range src {
			if i < len(special) && rng.IntN(2) == 0 {
				src[i] = special[i]
			} else {
				src[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6)))
			}
		}
		check := func(name string, got []uint16, back []float32) {
			t.Helper()
			for i, v := range src[:len(got)] {
				if w := want(v); uint32(got[i]) != w {
					t.Fatalf("%s n=%d: value %d (%g = %08x) kept as %04x, want %04x", name, n, i, v, math.Float32bits(v), got[i], w)
				}
				if b := math.Float32bits(back[i]); b != uint32(got[i])<<16 {
					t.Fatalf("%s n=%d: value %d read back as %08x, kept %04x", name, n, i, b, got[i])
				}
			}
		}
		for _, v := range variants {
			m := n
			if v.name != "go" {
				m = n &^ 15
			}
			if m == 0 {
				continue
			}
			got, back := make([]uint16, m), make([]float32, m)
			v.to(src[:m], got)
			v.from(got, back)
			check(v.name, got, back)
		}
		// The assembly reads back any length (its tail masked), writing nothing past it.
		for _, v := range variants[1:] {
			if n == 0 {
				continue
			}
			got, back := make([]uint16, n), make([]float32, n+1)
			toBF16Go(src, got)
			back[n] = 42
			v.from(got, back[:n])
			check(v.name+" from, any length", got, back[:n])
			if back[n] != 42 {
				t.Fatalf("%s n=%d: wrote past the end", v.name, n)
			}
		}
		packed := make([]float32, BF16Len(n))
		back := make([]float32, n)
		ToBF16(src, packed)
		FromBF16(packed, back)
		check("ToBF16", bf16s(packed)[:n], back)
	}
}

// TestReluBackwardCompact checks the Relu's mask read from a compact copy against the one
// read from the float32 output, bit for bit: zeros of both signs, subnormals (which
// ToBF16 keeps nonzero), NaN, infinities, on lengths around the vector width and the
// chunks.
func TestReluBackwardCompact(t *testing.T) {
	rng := newRNG(81)
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-40, -1e-40, 1e-45, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 3e38}
	for _, n := range []int{1, 15, 16, 17, 2047, 2048, 2049, 5001} {
		y, g := to32(randn(rng, n)), to32(randn(rng, n))
		for i := range y {
			if i%7 == 0 {
				y[i] = special[(i/7)%len(special)]
			}
		}
		want := make([]float32, n)
		ReluBackward(y, g, want)
		c := make([]float32, BF16Len(n))
		ToBF16(y, c)
		dx := make([]float32, n)
		g0 := append([]float32(nil), g...)
		ReluBackwardCompact(c, g, dx)
		assertBits(t, fmt.Sprintf("n=%d into dx", n), dx, want)
		assertBits(t, fmt.Sprintf("n=%d: dy kept", n), g, g0)
		ReluBackwardCompact(c, g, g)
		assertBits(t, fmt.Sprintf("n=%d in place", n), g, want)
	}
}

// TestBatchNormReluMaskCompact checks the fused BatchNormalization+Relu's gradients with
// the Relu's output given as its compact copy against those given the float32 output,
// bit for bit: the data gradient (which masks a channel at a time) and the scale and
// shift gradients' sums, and BatchNormActivationMask alone; planes of odd size (whose
// compact values start mid-slot), a plane smaller than a vector, outputs with zeros.
func TestBatchNormReluMaskCompact(t *testing.T) {
	rng := newRNG(85)
	relu := Activation{Kind: ReluActivation}
	for _, p := range []BatchNormParams{{N: 2, C: 3, HW: 49, Epsilon: 1e-5, Momentum: 0.9}, {N: 3, C: 5, HW: 7, Epsilon: 1e-5, Momentum: 0.9}, {N: 2, C: 4, HW: 3136, Epsilon: 1e-5, Momentum: 0.9}} {
		x, scale, bias := to32(randn(rng, p.XLen())), to32(randn(rng, p.C)), to32(randn(rng, p.C))
		y, mean, inv := make([]float32, p.XLen()), make([]float32, p.C), make([]float32, p.C)
		BatchNormTrainForwardAct(p, x, scale, bias, y, mean, inv, nil, nil, relu)
		compact := make([]float32, BF16Len(p.XLen()))
		ToBF16(y, compact)
		dy := to32(randn(rng, p.XLen()))
		name := fmt.Sprintf("%+v", p)
		type result struct {
			dyMasked, dx     []float32
			sumDy, sumDyXhat []float64
		}
		run := func(y []float32) result {
			r := result{append([]float32(nil), dy...), make([]float32, p.XLen()), make([]float64, p.C), make([]float64, p.C)}
			BatchNormTrainBackward(p, x, scale, bias, mean, inv, relu, y, r.dyMasked, r.dx, r.sumDy, r.sumDyXhat)
			return r
		}
		want, got := run(y), run(compact)
		assertBits(t, name+": masked dy", got.dyMasked, want.dyMasked)
		assertBits(t, name+": dx", got.dx, want.dx)
		for c := range want.sumDy {
			if got.sumDy[c] != want.sumDy[c] || got.sumDyXhat[c] != want.sumDyXhat[c] {
				t.Fatalf("%s: channel %d sums %v %v, want %v %v", name, c, got.sumDy[c], got.sumDyXhat[c], want.sumDy[c], want.sumDyXhat[c])
			}
		}
		zeros := 0
		for _, v := range want.dyMasked {
			if v == 0 {
				zeros++
			}
		}
		if zeros == 0 || zeros == len(dy) {
			t.Fatalf("%s: %d of %d gradients masked", name, zeros, len(dy))
		}
		alone := append([]float32(nil), dy...)
		BatchNormActivationMask(p, relu, x, scale, bias, mean, inv, compact, alone)
		assertBits(t, name+": BatchNormActivationMask", alone, want.dyMasked)
	}
}

// TestBatchNormInputCompact checks the normalization's training gradients with its
// input x given as its compact copy, on every implementation: the activation's mask
// (none, a Relu, its output float32 or compact too, a SiLU, whose input is recomputed
// from x) bit for bit as from the float32 x; the data gradient and the sums it leaves
// for the scale and shift gradients against float64 arithmetic on the values the copy
// holds, normalized about their own mean with the forward pass's inverse deviation;
// the sums and the data gradient apart (BatchNormTrainBackwardSums,
// BatchNormTrainBackwardDataSums) with the same bits, and a SiLU's
// BatchNormActivationMask alone; planes of odd size (a channel's values starting
// mid-slot), smaller than a vector, and of 56×56. That the float32 values read back
// differ from x (so the copy was read) is checked too; and that
// BatchNormTrainForwardCopy writes the copy ToBF16 makes, with the output and the
// statistics of BatchNormTrainForwardAct.
func TestBatchNormInputCompact(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		rng := newRNG(86)
		acts := []Activation{{}, {Kind: ReluActivation}, {Kind: SiLUActivation}}
		for _, p := range []BatchNormParams{{N: 2, C: 3, HW: 49, Epsilon: 1e-5, Momentum: 0.9}, {N: 3, C: 5, HW: 7, Epsilon: 1e-5, Momentum: 0.9}, {N: 2, C: 4, HW: 3136, Epsilon: 1e-5, Momentum: 0.9}} {
			for _, act := range acts {
				x, scale, bias := to32(randn(rng, p.XLen())), to32(randn(rng, p.C)), to32(randn(rng, p.C))
				y, mean, inv := make([]float32, p.XLen()), make([]float32, p.C), make([]float32, p.C)
				BatchNormTrainForwardAct(p, x, scale, bias, y, mean, inv, nil, nil, act)
				// The copy as the normalization writes it, with the same output.
				xc, yc, rounded := make([]float32, BF16Len(p.XLen())), make([]float32, BF16Len(p.XLen())), make([]float32, BF16Len(p.XLen()))
				y2, mean2, inv2 := make([]float32, p.XLen()), make([]float32, p.C), make([]float32, p.C)
				BatchNormTrainForwardCopy(p, x, scale, bias, y2, mean2, inv2, nil, nil, act, xc)
				ToBF16(x, rounded)
				assertBits(t, fmt.Sprintf("%+v %+v: BatchNormTrainForwardCopy's copy", p, act), xc, rounded)
				assertBits(t, fmt.Sprintf("%+v %+v: BatchNormTrainForwardCopy's output", p, act), y2, y)
				assertBits(t, fmt.Sprintf("%+v %+v: BatchNormTrainForwardCopy's statistics", p, act), append(mean2, inv2...), append(mean, inv...))
				ToBF16(y, yc)
				xr := make([]float32, p.XLen())
				FromBF16(xc, xr)
				if slices.Equal(xr, x) {
					t.Fatalf("%+v: x read back from its copy is x", p)
				}
				dy := to32(randn(rng, p.XLen()))
				name := fmt.Sprintf("%+v %+v", p, act)
				type result struct {
					dyMasked, dx     []float32
					sumDy, sumDyXhat []float64
				}
				run := func(x, y []float32) result {
					r := result{append([]float32(nil), dy...), make([]float32, p.XLen()), make([]float64, p.C), make([]float64, p.C)}
					BatchNormTrainBackward(p, x, scale, bias, mean, inv, act, y, r.dyMasked, r.dx, r.sumDy, r.sumDyXhat)
					return r
				}
				sameSums := func(what string, got, want result) {
					t.Helper()
					for c := range want.sumDy {
						if got.sumDy[c] != want.sumDy[c] || got.sumDyXhat[c] != want.sumDyXhat[c] {
							t.Fatalf("%s: %s: channel %d sums %v %v, want %v %v", name, what, c, got.sumDy[c], got.sumDyXhat[c], want.sumDy[c], want.sumDyXhat[c])
						}
					}
				}
				// The masks as from the float32 values; the sums and the data gradient
				// against float64 arithmetic on the values read back, centred on their own
				// mean (channelValues.centre).
				masks := run(xr, y)
				got := run(xc, y)
				assertBits(t, name+": masked dy", got.dyMasked, masks.dyMasked)
				m := float64(p.N * p.HW)
				want := make([]float64, p.XLen())
				for c := 0; c < p.C; c++ {
					var mu, sDy, sDyXhat float64
					for n := 0; n < p.N; n++ {
						for i := 0; i < p.HW; i++ {
							mu += float64(xr[(n*p.C+c)*p.HW+i])
						}
					}
					mu /= m
					xhat := func(j int) float64 { return (float64(xr[j]) - mu) * float64(inv[c]) }
					for n := 0; n < p.N; n++ {
						for i := 0; i < p.HW; i++ {
							j := (n*p.C+c)*p.HW + i
							sDy += float64(got.dyMasked[j])
							sDyXhat += float64(got.dyMasked[j]) * xhat(j)
						}
					}
					tol := 1e-5 * (math.Abs(sDy) + math.Abs(sDyXhat) + 1)
					if math.Abs(got.sumDy[c]-sDy) > tol || math.Abs(got.sumDyXhat[c]-sDyXhat) > tol {
						t.Fatalf("%s: channel %d sums %v %v, float64 %v %v", name, c, got.sumDy[c], got.sumDyXhat[c], sDy, sDyXhat)
					}
					k := float64(scale[c]) * float64(inv[c])
					for n := 0; n < p.N; n++ {
						for i := 0; i < p.HW; i++ {
							j := (n*p.C+c)*p.HW + i
							want[j] = k * (float64(got.dyMasked[j]) - sDy/m - xhat(j)*sDyXhat/m)
						}
					}
				}
				if e, _ := relErr(to64(got.dx), want); e > 1e-5 {
					t.Fatalf("%s: dx relative error %.3g against float64", name, e)
				}
				if act.Kind == ReluActivation { // the Relu's output from its copy too
					got2 := run(xc, yc)
					assertBits(t, name+": masked dy, y compact", got2.dyMasked, got.dyMasked)
					assertBits(t, name+": dx, y compact", got2.dx, got.dx)
					sameSums("y compact", got2, got)
				}
				// The sums, then the data gradient, of the masked gradient.
				apart := result{nil, make([]float32, p.XLen()), make([]float64, p.C), make([]float64, p.C)}
				BatchNormTrainBackwardSums(p, xc, mean, inv, got.dyMasked, apart.sumDy, apart.sumDyXhat)
				sameSums("BatchNormTrainBackwardSums", apart, got)
				BatchNormTrainBackwardDataSums(p, xc, scale, mean, inv, apart.sumDy, apart.sumDyXhat, got.dyMasked, apart.dx)
				assertBits(t, name+": BatchNormTrainBackwardDataSums", apart.dx, got.dx)
				if act.Kind == SiLUActivation {
					alone := append([]float32(nil), dy...)
					BatchNormActivationMask(p, act, xc, scale, bias, mean, inv, nil, alone)
					assertBits(t, name+": BatchNormActivationMask", alone, got.dyMasked)
				}
			}
		}
	})
}

// TestConvBackwardWeightCompact checks the weight gradient from the input's compact
// copy against the weight gradient from the values that copy holds, bit for bit, on
// every implementation and on the bfloat16 products (which read the copy a group of
// images at a time into their padded buffer): padded and unpadded, strided, dilated
// with asymmetric pads, one channel, images read back one at a time.
func TestConvBackwardWeightCompact(t *testing.T) {
	geoms := []Conv2DParams{
		{N: 3, C: 5, H: 9, W: 7, M: 6, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 8, H: 6, W: 5, M: 4, KH: 1, KW: 1},
		{N: 2, C: 3, H: 11, W: 11, M: 5, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 2, C: 6, H: 8, W: 8, M: 7, KH: 1, KW: 1, StrideH: 2, StrideW: 2},
		{N: 1, C: 1, H: 5, W: 5, M: 2, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		// Images read back in groups (1<<22 values' worth): padded, one at a time, and
		// unpadded, whose float32 form is one product over all: four, then one (groups
		// of whole k blocks).
		{N: 2, C: 64, H: 180, W: 180, M: 2, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{N: 5, C: 512, H: 56, W: 56, M: 2, KH: 1, KW: 1},
		{N: 2, C: 3, H: 10, W: 9, M: 3, KH: 3, KW: 2, DilH: 2, DilW: 2, PadTop: 2, PadLeft: 1, PadBottom: 0, PadRight: 3}, // dilated, asymmetric
	}
	check := func(t *testing.T) {
		rng := newRNG(82)
		for _, p := range geoms {
			p = p.WithOutSize()
			x, dy := to32(randn(rng, p.XLen())), to32(randn(rng, p.YLen()))
			c := make([]float32, BF16Len(len(x)))
			ToBF16(x, c)
			xr := make([]float32, len(x))
			FromBF16(c, xr)
			want, got := make([]float32, p.WLen()), make([]float32, p.WLen())
			Conv2DBackwardWeight(p, xr, dy, want)
			for i := range got {
				got[i] = float32(math.NaN()) // overwritten
			}
			Conv2DBackwardWeightCompact(p, c, dy, got)
			assertBits(t, fmt.Sprintf("%+v", p), got, want)
		}
	}
	forEachImplementation(t, check)
	t.Run("bf16", func(t *testing.T) { withBF16(t, check) })
}

// TestWeightGradReadsCompact checks which convolutions' weight gradients read their
// input's compact copy back in groups of their own: padded ones, unpadded ones whose
// groups of whole k blocks stay within 1<<22 values; not an unpadded one with an odd
// number of positions and a large batch, whose groups would be the whole batch.
func TestWeightGradReadsCompact(t *testing.T) {
	for _, c := range []struct {
		p    Conv2DParams
		want bool
	}{
		{Conv2DParams{N: 16, C: 64, H: 224, W: 224, M: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, true},
		{Conv2DParams{N: 16, C: 256, H: 56, W: 56, M: 64, KH: 1, KW: 1}, true},  // groups of 4
		{Conv2DParams{N: 16, C: 2048, H: 7, W: 7, M: 512, KH: 1, KW: 1}, true},  // 49 positions: all 16 at once, 1.6M values
		{Conv2DParams{N: 16, C: 256, H: 55, W: 55, M: 64, KH: 1, KW: 1}, false}, // 3025 positions: all 16, 12.4M values
		{Conv2DParams{N: 1, C: 4096, H: 33, W: 33, M: 8, KH: 1, KW: 1}, true},   // one image
	} {
		if got := c.p.WithOutSize().WeightGradReadsCompact(); got != c.want {
			t.Errorf("%+v: %v, want %v", c.p, got, c.want)
		}
	}
}

// TestPackPanelsBF16 checks the bfloat16 kernel's packers bit for bit against the
// portable ones (packCopyBF16 and packGatherBF16, whose rounding is toBF16's, checked
// against PyTorch's; packGatherHalfGo, which moves bfloat16 values as they are): both panel widths, odd and even depths, lanes cut short, k offsets
// at random, evenly spaced and in runs of consecutive offsets (which go through
// packTrans8Pairs) broken now and then; values with NaNs, infinities, ties, signed
// zeros and subnormals. The hardware's rounding (VCVTNE2PS2BF16, VCVTNEPS2BF16) reads a
// subnormal float32 as a zero of its sign, as oneDNN's bfloat16 products do; the
// portable packers are given the source with those zeros.
func TestPackPanelsBF16(t *testing.T) {
	withBF16(t, func(t *testing.T) {
		kern := blasImpl.(goBLAS).kern
		rng := newRNG(84)
		src := to32(randn(rng, 5000))
		special := []float32{float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc12345),
			float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 1 + 1.0/256, 1 + 3.0/256,
			-(1 + 5.0/256), math.MaxFloat32, 1e-38, -3e-41, 1e-45}
		flushed := make([]float32, len(src))
		for i := range src {
			if rng.IntN(7) == 0 {
				src[i] = special[rng.IntN(len(special))]
			}
			flushed[i] = src[i]
			if u := math.Float32bits(src[i]); u&0x7f800000 == 0 {
				flushed[i] = math.Float32frombits(u & 0x80000000)
			}
		}
		for _, w := range []int{kern.mr, kern.nr} {
			for _, kc := range []int{1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 100, 256, 257} {
				for _, n := range []int{w, w - 1, 1, w / 2} {
					koff, lane := make([]int32, kc), make([]int32, w)
					for l := range lane {
						lane[l] = int32(rng.IntN(2000))
					}
					for _, spacing := range []string{"random", "11", "consecutive", "runs of 13", "runs of 40"} {
						for p := range koff {
							switch spacing {
							case "random":
								koff[p] = int32(rng.IntN(2000))
							case "11":
								koff[p] = int32(11 * p)
							case "consecutive":
								koff[p] = int32(37 + p)
							case "runs of 13":
								koff[p] = int32(37 + p + p/13*50)
							case "runs of 40":
								koff[p] = int32(37 + p + p/40*50)
							}
						}
						slots := (kc + 1) / 2 * w
						got, want := make([]float32, slots), make([]float32, slots)
						name := fmt.Sprintf("w %d kc %d n %d %s", w, kc, n, spacing)
						for i := range got {
							got[i] = float32(math.NaN())
						}
						kern.packCopy(w, src, koff, n, got)
						packCopyBF16(w, flushed, koff, n, want)
						assertBits(t, "packCopy "+name, got, want)
						for i := range got {
							got[i] = float32(math.NaN())
						}
						kern.packGather(w, src, koff, lane, n, got)
						packGatherBF16(w, flushed, koff, lane, n, want)
						assertBits(t, "packGather "+name, got, want)
						// The same offsets into bfloat16 values, moved as they are.
						for i := range got {
							got[i] = float32(math.NaN())
						}
						kern.packGatherHalf(w, src, koff, lane, n, got)
						packGatherHalfGo(w, src, koff, lane, n, want)
						assertBits(t, "packGatherHalf "+name, got, want)
					}
				}
			}
		}
	})
}
