package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// randn returns n values uniform in [-1, 1).
func randn(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = 2*rng.Float64() - 1
	}
	return s
}

// distinct returns a random permutation of n well-separated values (spacing
// 1/n in [-1, 1)), so that no two are tied and a perturbation of 1e-6 never
// changes an ordering.
func distinct(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i, j := range rng.Perm(n) {
		s[i] = -1 + 2*float64(j)/float64(n)
	}
	return s
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// numGrad returns the central-difference gradient (h = 1e-6) of
// L = <f(), g> with respect to x, perturbing x in place.
func numGrad(x []float64, g []float64, f func() []float64) []float64 {
	const h = 1e-6
	out := make([]float64, len(x))
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		lp := dot(f(), g)
		x[i] = orig - h
		lm := dot(f(), g)
		x[i] = orig
		out[i] = (lp - lm) / (2 * h)
	}
	return out
}

// relErr is max_i |a-b| / max(1, |a|, |b|).
func relErr(a, b []float64) (float64, int) {
	worst, at := 0.0, -1
	for i := range a {
		d := math.Abs(a[i]-b[i]) / math.Max(1, math.Max(math.Abs(a[i]), math.Abs(b[i])))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at
}

func assertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d, want %d", what, len(got), len(want))
	}
	if e, i := relErr(got, want); e > tol || math.IsNaN(e) {
		t.Errorf("%s: relative error %.3g at %d (got %.12g, want %.12g), tolerance %g", what, e, i, got[i], want[i], tol)
	}
}

// gradTol is the tolerance of the finite-difference checks.
const gradTol = 1e-6

// checkGrad compares an analytic gradient with the central-difference
// gradient of <f(), g> with respect to x.
func checkGrad(t *testing.T, what string, x, g, analytic []float64, f func() []float64) {
	t.Helper()
	assertClose(t, what, analytic, numGrad(x, g, f), gradTol)
}
