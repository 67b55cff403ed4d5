package kernels

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// transposedCases are products read and written through transposes: an attention
// layer's two (torch's MultiheadAttention as exported: q·kᵀ from [S, B·H, d] tensors, then
// the weights times v stored back as [S, B·H, d]), a column-major output, a rank-2 one
// with both factors transposed, rank 4, and one row.
var transposedCases = []transposedCase{
	{[]int{7, 6, 5}, []int{1, 0, 2}, []int{7, 6, 5}, []int{1, 2, 0}, nil, 0.25},
	{[]int{6, 7, 7}, nil, []int{7, 6, 5}, []int{1, 0, 2}, []int{1, 0, 2}, 1},
	{[]int{3, 4, 9}, []int{0, 2, 1}, []int{3, 4, 5}, nil, []int{0, 2, 1}, 1},
	{[]int{9, 4}, []int{1, 0}, []int{5, 9}, []int{1, 0}, []int{1, 0}, -2},
	{[]int{2, 5, 3, 6}, []int{0, 2, 1, 3}, []int{2, 3, 6, 4}, []int{0, 1, 2, 3}, []int{2, 0, 1, 3}, 0.5},
	{[]int{4, 1, 6}, []int{1, 0, 2}, []int{1, 3, 6}, []int{0, 2, 1}, nil, 1},
	{[]int{3, 1, 6}, nil, []int{3, 6, 4}, nil, []int{0, 2, 1}, 1},
	{[]int{4, 1, 5}, []int{1, 2, 0}, []int{4, 1, 6}, []int{1, 0, 2}, []int{0, 2, 1}, 1}, // K = 1
	{[]int{2, 5, 3}, []int{0, 2, 1}, []int{2, 5, 1}, nil, []int{0, 2, 1}, 1},            // N = 1, output column-major
	{[]int{2, 0, 3}, nil, []int{3, 2, 4}, []int{1, 0, 2}, nil, 1},                       // no rows
}

// transposedCase is a product through transposes: the factors' shapes and permutations,
// the output's permutation and the scale.
type transposedCase struct {
	a, permA, b, permB, permY []int
	alpha                     float64
}

// build returns the case's name and its TransposedMatMul, failing the test where it is
// refused.
func (c transposedCase) build(t *testing.T) (string, *TransposedMatMul) {
	t.Helper()
	what := fmt.Sprintf("TransposedMatMul %v%v · %v%v → %v", c.a, c.permA, c.b, c.permB, c.permY)
	tm, err := NewTransposedMatMul(c.a, c.permA, c.b, c.permB, c.permY, c.alpha)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return what, tm
}

func filled[T Float](n int, v T) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// transposedReference computes the case with explicit transposes around the float64
// MatMul by coordinates (naiveMatMul).
func transposedReference(tm *TransposedMatMul, permA, permB, permY []int, a, b []float64) []float64 {
	ta, tb := transposeOrCopy(tm.AShape, permA, a), transposeOrCopy(tm.BShape, permB, b)
	as, bs := tm.AShape, tm.BShape
	if permA != nil {
		as = TransposeShape(as, permA)
	}
	if permB != nil {
		bs = TransposeShape(bs, permB)
	}
	y := naiveMatMul(as, ta, bs, tb)
	for i := range y {
		y[i] *= tm.Alpha
	}
	ys, _ := MatMulShape(as, bs)
	return transposeOrCopy(ys, permY, y)
}

func transposeOrCopy(shape, perm []int, x []float64) []float64 {
	y := make([]float64, len(x))
	if perm == nil {
		copy(y, x)
		return y
	}
	Transpose(shape, perm, x, y)
	return y
}

// TestTransposedMatMul checks the products through transposes in float64 against the
// explicit transposes around a MatMul by coordinates, and the gradients of both factors
// by finite differences.
func TestTransposedMatMul(t *testing.T) {
	rng := newRNG(71)
	for _, c := range transposedCases {
		what, tm := c.build(t)
		a, b := randn(rng, Size(c.a)), randn(rng, Size(c.b))
		y := filled(Size(tm.YShape), math.NaN())
		TransposedMatMulForward(tm, a, b, y)
		assertClose(t, what, y, transposedReference(tm, c.permA, c.permB, c.permY, a, b), 1e-14)
		dy := randn(rng, len(y))
		fwd := func() []float64 { TransposedMatMulForward(tm, a, b, y); return y }
		da, db := filled(len(a), math.NaN()), filled(len(b), math.NaN()) // overwritten
		TransposedMatMulBackwardA(tm, b, dy, da)
		checkGrad(t, what+" dA", a, dy, da, fwd)
		TransposedMatMulBackwardB(tm, a, dy, db)
		checkGrad(t, what+" dB", b, dy, db, fwd)
	}
}

// TestTransposedMatMulFloat32 runs the cases on every float32 implementation (the
// products split one per core where there are enough of them) and on the bfloat16
// products where the CPU has them: against the float64 passes on the operands as the
// products read them (rounded to bfloat16 on that kernel), within float32 accumulation.
func TestTransposedMatMulFloat32(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	check := func(t *testing.T, round func([]float64) []float64) {
		rng := newRNG(72)
		for _, c := range transposedCases {
			what, tm := c.build(t)
			a, b, dy := to32(randn(rng, Size(c.a))), to32(randn(rng, Size(c.b))), to32(randn(rng, Size(tm.YShape)))
			nan := float32(math.NaN())
			y, da, db := filled(len(dy), nan), filled(len(a), nan), filled(len(b), nan) // overwritten
			TransposedMatMulForward(tm, a, b, y)
			TransposedMatMulBackwardA(tm, b, dy, da)
			TransposedMatMulBackwardB(tm, a, dy, db)
			a64, b64, dy64 := round(to64(a)), round(to64(b)), round(to64(dy))
			wy, wda, wdb := make([]float64, len(y)), make([]float64, len(a)), make([]float64, len(b))
			TransposedMatMulForward(tm, a64, b64, wy)
			TransposedMatMulBackwardA(tm, b64, dy64, wda)
			TransposedMatMulBackwardB(tm, a64, dy64, wdb)
			assertClose(t, what+" y", to64(y), wy, 1e-5)
			assertClose(t, what+" dA", to64(da), wda, 1e-5)
			assertClose(t, what+" dB", to64(db), wdb, 1e-5)
		}
	}
	forEachImplementation(t, func(t *testing.T) { check(t, func(x []float64) []float64 { return x }) })
	t.Run("bf16", func(t *testing.T) { withBF16(t, func(t *testing.T) { check(t, roundAll) }) })
}

// TestTransposedMatMulRefuses checks the plans that cannot be read in place or do not
// multiply.
func TestTransposedMatMulRefuses(t *testing.T) {
	for _, c := range []struct {
		a, permA, b, permB []int
	}{
		{[]int{2, 3, 4}, []int{2, 0, 1}, []int{2, 3, 4}, []int{2, 1, 0}},               // a's matrices: strides 12 and 4
		{[]int{2, 3, 4}, nil, []int{3, 4, 5}, nil},                                     // batch axes 2 and 3
		{[]int{3, 4}, nil, []int{5, 4}, nil},                                           // inner 4 and 5
		{[]int{3, 4}, []int{0, 0}, []int{4, 5}, nil},                                   // no permutation
		{[]int{1, 1, 1, 1, 1, 1, 1, 2, 3}, nil, []int{1, 1, 1, 1, 1, 1, 1, 3, 2}, nil}, // rank 9
	} {
		if _, err := NewTransposedMatMul(c.a, c.permA, c.b, c.permB, nil, 1); err == nil {
			t.Errorf("%v%v · %v%v accepted", c.a, c.permA, c.b, c.permB)
		}
	}
}
