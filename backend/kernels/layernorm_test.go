package kernels

import (
	"fmt"
	"math"
	"testing"
)

// TestLayerNormFloat32 checks the layer normalisation's float32 passes, which run the
// normalisation's vector loops (lnApply, lnSums, lnBack, and the sums), on every
// implementation against the float64 passes of the same inputs: rows of 7 to 771
// columns (no whole vector, whole vectors only, and values past them), with and
// without a bias, the data gradient also written over dy; and each kernel's loops
// called directly against the formulas they compute, so that the test fails where a
// path the CPU runs did not.
func TestLayerNormFloat32(t *testing.T) {
	rng := newRNG(21)
	forEachImplementation(t, func(t *testing.T) {
		for _, cols := range []int{7, 16, 49, 96, 771} {
			for _, withBias := range []bool{true, false} {
				const rows = 5
				x, s, b, dy := randn(rng, rows*cols), randn(rng, cols), randn(rng, cols), randn(rng, rows*cols)
				for i := range x {
					x[i] += 3 // a mean away from zero
				}
				for i := range cols {
					x[i] = 100 + x[i]/10 // and a row whose mean is 1000 times its spread
				}
				var bias32 []float32
				if withBias {
					bias32 = to32(b)
				}
				x32, s32, dy32 := to32(x), to32(s), to32(dy)
				// The reference: float64 passes on the float32 inputs.
				xr, sr, dyr := to64(x32), to64(s32), to64(dy32)
				var br []float64
				if withBias {
					br = to64(bias32)
				}
				y, mean, inv := make([]float64, rows*cols), make([]float64, rows), make([]float64, rows)
				LayerNormForward(rows, cols, 1e-5, xr, sr, br, y, mean, inv)
				dx := make([]float64, rows*cols)
				LayerNormBackwardData(rows, cols, xr, sr, mean, inv, dyr, dx)

				y32, mean32, inv32 := make([]float32, rows*cols), make([]float32, rows), make([]float32, rows)
				LayerNormForward(rows, cols, 1e-5, x32, s32, bias32, y32, mean32, inv32)
				what := fmt.Sprintf("%d columns, bias %v", cols, withBias)
				// Row 0's mean is 1000 times its spread: its float32 mean alone (an ulp
				// of 100 against a spread of 0.1) costs up to about 4e-5 of y and 4e-4 of dx;
				// its lanes' sum without the correction, 1.2-1.6e-4 of y.
				rest := cols
				assertClose(t, what+": y of row 0", to64(y32[:rest]), y[:rest], 8e-5)
				assertClose(t, what+": y", to64(y32[rest:]), y[rest:], 1e-5)
				assertClose(t, what+": mean", to64(mean32), mean, 1e-6)
				assertClose(t, what+": invStd", to64(inv32), inv, 1e-5)
				dx32 := make([]float32, rows*cols)
				LayerNormBackwardData(rows, cols, x32, s32, mean32, inv32, dy32, dx32)
				assertClose(t, what+": dx of row 0", to64(dx32[:rest]), dx[:rest], 1e-3)
				assertClose(t, what+": dx", to64(dx32[rest:]), dx[rest:], 1e-4)
				over := append([]float32(nil), dy32...)
				LayerNormBackwardData(rows, cols, x32, s32, mean32, inv32, over, over)
				for i := range over {
					if math.Float32bits(over[i]) != math.Float32bits(dx32[i]) {
						t.Fatalf("%s: dx written over dy: %v at %d, apart %v", what, over[i], i, dx32[i])
					}
				}
			}
		}
	})
	for _, k := range allKernels() {
		l := k.norm
		if l == nil || l.lnApply == nil {
			continue
		}
		n := 5 * l.block // the four-vector body, then the one-vector one
		x, s, b, dy := to32(randn(rng, n)), to32(randn(rng, n)), to32(randn(rng, n)), to32(randn(rng, n))
		y, dx := make([]float32, n), make([]float32, n)
		const a, c, d, mean = 0.75, -0.5, 0.25, 0.125
		l.lnApply(n, mean, a, &x[0], &s[0], &b[0], &y[0])
		var out [2]float32
		l.lnSums(n, &x[0], &dy[0], &s[0], mean, &out)
		l.lnBack(n, a, c, d, mean, &x[0], &dy[0], &s[0], &dx[0])
		var s0, s1 float64
		for i := range x {
			if w := (float64(x[i])-mean)*a*float64(s[i]) + float64(b[i]); math.Abs(float64(y[i])-w) > 1e-5*(1+math.Abs(w)) {
				t.Fatalf("%s: lnApply gives %v at %d, want %v", k.name, y[i], i, w)
			}
			if w := float64(a)*float64(dy[i])*float64(s[i]) - (c*(float64(x[i])-mean) + d); math.Abs(float64(dx[i])-w) > 1e-5*(1+math.Abs(w)) {
				t.Fatalf("%s: lnBack gives %v at %d, want %v", k.name, dx[i], i, w)
			}
			g := float64(dy[i]) * float64(s[i])
			s0 += g
			s1 += (float64(x[i]) - mean) * g
		}
		if math.Abs(float64(out[0])-s0) > 1e-4*(1+math.Abs(s0)) || math.Abs(float64(out[1])-s1) > 1e-4*(1+math.Abs(s1)) {
			t.Fatalf("%s: lnSums gives %v, want %v, %v", k.name, out, s0, s1)
		}
	}
}

// TestLayerNormParamGradsFloat32 checks the float32 scale and shift gradients, whose
// column sums over the rows run in the float64 vector loops (lnDScale, lnDBias), bit for
// bit against the sums written out in float64 in the rows' order, on every
// implementation, at widths with and without values past the last whole vector and
// split across the cores; and each kernel's loops called directly.
func TestLayerNormParamGradsFloat32(t *testing.T) {
	rng := newRNG(23)
	forEachImplementation(t, func(t *testing.T) {
		for _, cols := range []int{5, 8, 64, 771} {
			rows := 300
			x, dy := to32(randn(rng, rows*cols)), to32(randn(rng, rows*cols))
			mean, inv := to32(randn(rng, rows)), make([]float32, rows)
			for r := range inv {
				inv[r] = float32(0.5 + rng.Float64())
			}
			ds, db := make([]float32, cols), make([]float32, cols)
			LayerNormBackwardScale(rows, cols, x, mean, inv, dy, ds)
			LayerNormBackwardBias(rows, cols, dy, db)
			for j := 0; j < cols; j++ {
				var ws, wb float64
				for r := 0; r < rows; r++ {
					ws += float64(dy[r*cols+j]) * (float64(x[r*cols+j]) - float64(mean[r])) * float64(inv[r])
					wb += float64(dy[r*cols+j])
				}
				if math.Float32bits(ds[j]) != math.Float32bits(float32(ws)) || math.Float32bits(db[j]) != math.Float32bits(float32(wb)) {
					t.Fatalf("%d columns: column %d: dscale %v, dbias %v; the sums over the rows %v, %v", cols, j, ds[j], db[j], float32(ws), float32(wb))
				}
			}
		}
	})
	for _, k := range allKernels() {
		l := k.norm
		if l == nil || l.lnDScale == nil {
			continue
		}
		n := 3 * l.lnLanes() // two vectors, then one
		x, dy := to32(randn(rng, n)), to32(randn(rng, n))
		acc, bias := make([]float64, n), make([]float64, n)
		for i := range acc {
			acc[i], bias[i] = float64(i)/3, float64(i)/7
		}
		want, wantB := append([]float64(nil), acc...), append([]float64(nil), bias...)
		const m, inv = 0.3, 1.7
		l.lnDScale(n, m, inv, &x[0], &dy[0], &acc[0])
		l.lnDBias(n, &dy[0], &bias[0])
		for i := range x {
			want[i] += float64(dy[i]) * (float64(x[i]) - m) * inv
			wantB[i] += float64(dy[i])
			if math.Float64bits(acc[i]) != math.Float64bits(want[i]) || math.Float64bits(bias[i]) != math.Float64bits(wantB[i]) {
				t.Fatalf("%s: at %d: lnDScale %v (want %v), lnDBias %v (want %v)", k.name, i, acc[i], want[i], bias[i], wantB[i])
			}
		}
	}
}
