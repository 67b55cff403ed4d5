package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// naiveTranspose indexes every output element from its coordinates.
func naiveTranspose(shape, perm []int, x []float64) []float64 {
	out := TransposeShape(shape, perm)
	y := make([]float64, len(x))
	r := len(shape)
	coord := make([]int, r)
	for o := range y {
		rem := o
		for i := r - 1; i >= 0; i-- {
			coord[i] = rem % out[i]
			rem /= out[i]
		}
		src := 0
		for a := 0; a < r; a++ {
			// input axis a is output axis i with perm[i] == a
			i := slices.Index(perm, a)
			src = src*shape[a] + coord[i]
		}
		y[o] = x[src]
	}
	return y
}

func TestTranspose(t *testing.T) {
	rng := newRNG(40)
	cases := []struct{ shape, perm []int }{
		{[]int{5}, []int{0}},
		{[]int{3, 4}, []int{1, 0}},
		{[]int{2, 3, 4}, []int{0, 2, 1}},
		{[]int{2, 3, 4}, []int{2, 0, 1}},
		{[]int{2, 1, 4, 3}, []int{3, 1, 0, 2}},
		{[]int{2, 3, 4, 5}, []int{0, 2, 3, 1}}, // NCHW -> NHWC
		{[]int{2, 3, 4, 5}, []int{0, 3, 1, 2}}, // NHWC -> NCHW
		{[]int{2, 3, 4, 5}, []int{1, 0, 2, 3}},
		{[]int{2, 3, 2, 3, 2}, []int{4, 2, 0, 3, 1}},
		{[]int{2, 2, 3, 1, 2, 3}, []int{5, 3, 1, 0, 4, 2}},
		{[]int{3, 2, 2, 3, 2, 2}, []int{0, 1, 2, 3, 4, 5}},
		{[]int{1, 1, 1}, []int{2, 1, 0}},
		{[]int{70, 33}, []int{1, 0}},
	}
	for i := 0; i < 10; i++ {
		r := 1 + rng.IntN(6)
		shape := make([]int, r)
		for j := range shape {
			shape[j] = 1 + rng.IntN(4)
		}
		cases = append(cases, struct{ shape, perm []int }{shape, rng.Perm(r)})
	}
	for _, c := range cases {
		x := randn(rng, Size(c.shape))
		y := make([]float64, len(x))
		Transpose(c.shape, c.perm, x, y)
		assertClose(t, fmt.Sprintf("Transpose %v %v", c.shape, c.perm), y, naiveTranspose(c.shape, c.perm, x), 0)
		dy := randn(rng, len(x))
		dx := make([]float64, len(x))
		TransposeBackward(c.shape, c.perm, dy, dx)
		checkGrad(t, fmt.Sprintf("Transpose %v %v dX", c.shape, c.perm), x, dy, dx, func() []float64 {
			Transpose(c.shape, c.perm, x, y)
			return y
		})
	}
	// Large enough to be split across the cores (a ViT's heads taken apart and put back,
	// a matrix): the same values as the naive transpose.
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	for _, c := range []struct{ shape, perm []int }{
		{[]int{4, 197, 12, 64}, []int{0, 2, 1, 3}},
		{[]int{4, 12, 197, 64}, []int{0, 2, 3, 1}},
		{[]int{300, 517}, []int{1, 0}},
	} {
		x := randn(rng, Size(c.shape))
		y := make([]float64, len(x))
		Transpose(c.shape, c.perm, x, y)
		assertClose(t, fmt.Sprintf("Transpose %v %v", c.shape, c.perm), y, naiveTranspose(c.shape, c.perm, x), 0)
	}
	// Works for any element type.
	yi := make([]int32, 6)
	Transpose([]int{2, 3}, []int{1, 0}, []int32{1, 2, 3, 4, 5, 6}, yi)
	if !slices.Equal(yi, []int32{1, 4, 2, 5, 3, 6}) {
		t.Errorf("int32 transpose: %v", yi)
	}
}

// naiveBroadcast evaluates f over the broadcast of a and b by coordinates.
func naiveBroadcast(aShape []int, a []float64, bShape []int, b []float64, f func(x, y float64) float64) ([]int, []float64) {
	out, err := BroadcastShape(aShape, bShape)
	if err != nil {
		panic(err)
	}
	r := len(out)
	y := make([]float64, Size(out))
	coord := make([]int, r)
	index := func(shape []int) int {
		off := r - len(shape)
		idx := 0
		for i, d := range shape {
			c := coord[off+i]
			if d == 1 {
				c = 0
			}
			idx = idx*d + c
		}
		return idx
	}
	for o := range y {
		rem := o
		for i := r - 1; i >= 0; i-- {
			coord[i] = rem % out[i]
			rem /= out[i]
		}
		y[o] = f(a[index(aShape)], b[index(bShape)])
	}
	return out, y
}

var broadcastCases = [][2][]int{
	{{2, 3, 4, 5}, {3, 1, 5}},
	{{2, 3, 4, 5}, {5}},
	{{2, 3, 4, 5}, {}},
	{{}, {2, 3}},
	{{}, {}},
	{{3, 1, 5}, {2, 3, 4, 5}},
	{{4, 1}, {1, 3}},
	{{2, 1, 3}, {2, 4, 1}},
	{{1, 1}, {2, 3}},
	{{5}, {5}},
	{{2, 3}, {2, 3}},
	{{1, 3, 1, 1}, {2, 1, 4, 1}},
}

func TestBroadcastBinary(t *testing.T) {
	rng := newRNG(41)
	type op struct {
		name   string
		fwd    func([]int, []float64, []int, []float64, []float64)
		bwdA   func([]int, []float64, []int, []float64, []float64, []float64)
		bwdB   func([]int, []float64, []int, []float64, []float64, []float64)
		f      func(x, y float64) float64
		posDen bool
	}
	ops := []op{
		{"Add", Add[float64], AddBackwardA[float64], AddBackwardB[float64], func(x, y float64) float64 { return x + y }, false},
		{"Sub", Sub[float64], SubBackwardA[float64], SubBackwardB[float64], func(x, y float64) float64 { return x - y }, false},
		{"Mul", Mul[float64], MulBackwardA[float64], MulBackwardB[float64], func(x, y float64) float64 { return x * y }, false},
		{"Div", Div[float64], DivBackwardA[float64], DivBackwardB[float64], func(x, y float64) float64 { return x / y }, true},
	}
	for _, c := range broadcastCases {
		as, bs := c[0], c[1]
		for _, o := range ops {
			what := fmt.Sprintf("%s %v %v", o.name, as, bs)
			a, b := randn(rng, Size(as)), randn(rng, Size(bs))
			if o.posDen {
				for i := range b {
					b[i] = 1 + math.Abs(b[i]) // keep away from 0
				}
			}
			out, want := naiveBroadcast(as, a, bs, b, o.f)
			y := make([]float64, len(want))
			o.fwd(as, a, bs, b, y)
			assertClose(t, what+" forward", y, want, 1e-15)
			dy := randn(rng, len(y))
			fwd := func() []float64 { o.fwd(as, a, bs, b, y); return y }
			da, db := make([]float64, len(a)), make([]float64, len(b))
			o.bwdA(as, a, bs, b, dy, da)
			checkGrad(t, what+" dA", a, dy, da, fwd)
			o.bwdB(as, a, bs, b, dy, db)
			checkGrad(t, what+" dB", b, dy, db, fwd)
			// The gradient of an operand of the output's shape may be written over dy
			// (not DivBackwardB's).
			for i, g := range []struct {
				shape []int
				bwd   func([]int, []float64, []int, []float64, []float64, []float64)
				want  []float64
			}{{as, o.bwdA, da}, {bs, o.bwdB, db}} {
				if Size(g.shape) != len(dy) || o.name == "Div" && i == 1 {
					continue
				}
				over := append([]float64(nil), dy...)
				g.bwd(as, a, bs, b, over, over)
				assertClose(t, fmt.Sprintf("%s d%c over dy", what, 'A'+i), over, g.want, 0)
			}
			_ = out
		}
	}
	// Operands of one shape large enough to be split across the cores (a residual
	// Add): exactly the element-wise values.
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	big := []int{4, 64, 56, 56}
	if workers(Size(big), 1) < 2 {
		t.Fatal("the operands are not split: the check is weak")
	}
	a, b := randn(rng, Size(big)), randn(rng, Size(big))
	for i := range b {
		b[i] = 1 + math.Abs(b[i])
	}
	for _, o := range ops {
		_, want := naiveBroadcast(big, a, big, b, o.f)
		y := make([]float64, len(want))
		o.fwd(big, a, big, b, y)
		assertClose(t, o.name+" "+fmt.Sprint(big)+" split", y, want, 0)
	}
	// Broadcast operands large enough for the runs to be split across the cores: a
	// squeeze-excitation gate (whose product's gradient sums each run into one gate
	// value, split too) and an operand broadcast along the outer axis, as many values as runs (whose gradient
	// sums runs into the same values, not split): the element-wise values exactly, and
	// the products' gradients against their sums over the broadcast axes in the same
	// order (a run at a time), in both precisions.
	for _, c := range [][2][]int{{{4, 64, 30, 30}, {4, 64, 1, 1}}, {{512, 4, 512}, {1, 4, 512}}} {
		as, bs := c[0], c[1]
		if runs := Size(as) / as[len(as)-1]; workers(runs, as[len(as)-1]) < 2 {
			t.Fatalf("%v: the runs are not split: the check is weak", as)
		}
		a, b := randn(rng, Size(as)), randn(rng, Size(bs))
		for i := range b {
			b[i] = 1 + math.Abs(b[i])
		}
		for _, o := range ops {
			_, want := naiveBroadcast(as, a, bs, b, o.f)
			y := make([]float64, len(want))
			o.fwd(as, a, bs, b, y)
			assertClose(t, fmt.Sprintf("%s %v %v split", o.name, as, bs), y, want, 0)
		}
		dy := randn(rng, Size(as))
		da, db := make([]float64, len(a)), make([]float64, len(b))
		MulBackwardA(as, a, bs, b, dy, da)
		MulBackwardB(as, a, bs, b, dy, db)
		_, wantA := naiveBroadcast(as, dy, bs, b, func(g, v float64) float64 { return g * v })
		assertClose(t, fmt.Sprintf("Mul %v %v dA split", as, bs), da, wantA, 0)
		wantB := make([]float64, len(b))
		ReduceToShape(as, func() []float64 {
			_, p := naiveBroadcast(as, dy, as, a, func(g, v float64) float64 { return g * v })
			return p
		}(), bs, wantB)
		assertClose(t, fmt.Sprintf("Mul %v %v dB split", as, bs), db, wantB, 1e-12)
		// float32: the split runs against one core, bit for bit.
		g32, b32, a32 := to32(dy), to32(b), to32(a)
		da32, db32 := make([]float32, len(a)), make([]float32, len(b))
		MulBackwardA(as, a32, bs, b32, g32, da32)
		MulBackwardB(as, a32, bs, b32, g32, db32)
		procs := runtime.GOMAXPROCS(1)
		da1, db1 := make([]float32, len(a)), make([]float32, len(b))
		MulBackwardA(as, a32, bs, b32, g32, da1)
		MulBackwardB(as, a32, bs, b32, g32, db1)
		runtime.GOMAXPROCS(procs)
		assertClose(t, fmt.Sprintf("Mul %v %v float32 dA split and on one core", as, bs), to64(da32), to64(da1), 0)
		assertClose(t, fmt.Sprintf("Mul %v %v float32 dB split and on one core", as, bs), to64(db32), to64(db1), 0)
	}
	if _, err := BroadcastShape([]int{2, 3}, []int{4}); err == nil {
		t.Error("[2,3] and [4] broadcast")
	}
}

func TestReduceToShape(t *testing.T) {
	x := make([]float64, 24)
	for i := range x {
		x[i] = float64(i)
	}
	out := make([]float64, 3)
	ReduceToShape([]int{2, 3, 4}, x, []int{3, 1}, out)
	// sum over axes 0 and 2
	want := []float64{0 + 1 + 2 + 3 + 12 + 13 + 14 + 15, 4 + 5 + 6 + 7 + 16 + 17 + 18 + 19, 8 + 9 + 10 + 11 + 20 + 21 + 22 + 23}
	assertClose(t, "ReduceToShape", out, want, 0)
	s := make([]float64, 1)
	ReduceToShape([]int{2, 3, 4}, x, nil, s)
	if s[0] != 276 {
		t.Errorf("to scalar: %g", s[0])
	}

	// Empty tensors: nothing to sum, and no division by their zero sizes.
	ReduceToShape([]int{3, 0}, []float64(nil), []int{0}, nil)
	ReduceToShape([]int{3, 0}, []float64(nil), []int{3, 1}, out)
	if out[0] != 0 || out[1] != 0 || out[2] != 0 {
		t.Errorf("ReduceToShape of [3 0] to [3 1]: %v, want zeros", out)
	}
	for _, grad := range []func([]int, []float64, []int, []float64, []float64, []float64){MulBackwardA[float64], DivBackwardA[float64]} {
		da := []float64{1, 1, 1}
		grad([]int{3, 1}, make([]float64, 3), []int{0}, nil, nil, da)
		if da[0] != 0 || da[1] != 0 || da[2] != 0 {
			t.Errorf("the gradient of [3 1] broadcast against [0]: %v, want zeros", da)
		}
	}

	// BroadcastTo is ReduceToShape's adjoint.
	rng := newRNG(47)
	for _, c := range [][2][]int{{{3, 1}, {2, 3, 4}}, {{}, {2, 2}}, {{4}, {3, 4}}, {{2, 1, 3}, {2, 5, 3}}, {{2, 3}, {2, 3}}} {
		from, to := c[0], c[1]
		x, g := randn(rng, Size(from)), randn(rng, Size(to))
		y, r := make([]float64, Size(to)), make([]float64, Size(from))
		BroadcastTo(from, x, to, y)
		ReduceToShape(to, g, from, r)
		if l, rr := dot(y, g), dot(x, r); math.Abs(l-rr) > 1e-12 {
			t.Errorf("BroadcastTo %v -> %v: <Bx, g> = %g, <x, Rg> = %g", from, to, l, rr)
		}
		_, want := naiveBroadcast(from, x, to, make([]float64, Size(to)), func(a, _ float64) float64 { return a })
		assertClose(t, fmt.Sprintf("BroadcastTo %v -> %v", from, to), y, want, 0)
	}
	defer func() {
		if recover() == nil {
			t.Error("BroadcastTo [2,3] -> [3] did not panic")
		}
	}()
	BroadcastTo([]int{2, 3}, make([]float64, 6), []int{3}, make([]float64, 6))
}

func TestActivations(t *testing.T) {
	rng := newRNG(42)
	x := randn(rng, 50)
	for i := range x {
		x[i] *= 4
		if math.Abs(x[i]) < 1e-3 {
			x[i] = 0.5 // keep away from the kinks
		}
	}
	dy := randn(rng, len(x))
	y, dx := make([]float64, len(x)), make([]float64, len(x))
	const alpha = 0.07
	cases := []struct {
		name string
		fwd  func(x, y []float64)
		bwd  func(x, y, dy, dx []float64)
		ref  func(v float64) float64
	}{
		{"Relu", ReluForward[float64], func(x, _, dy, dx []float64) { ReluBackward(x, dy, dx) }, func(v float64) float64 { return math.Max(v, 0) }},
		{"ReluFromY", ReluForward[float64], func(_, y, dy, dx []float64) { ReluBackward(y, dy, dx) }, func(v float64) float64 { return math.Max(v, 0) }},
		{"LeakyRelu", func(x, y []float64) { LeakyReluForward(alpha, x, y) }, func(x, _, dy, dx []float64) { LeakyReluBackward(alpha, x, dy, dx) },
			func(v float64) float64 {
				if v < 0 {
					return alpha * v
				}
				return v
			}},
		{"Sigmoid", SigmoidForward[float64], func(_, y, dy, dx []float64) { SigmoidBackward(y, dy, dx) }, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }},
		{"Tanh", TanhForward[float64], func(_, y, dy, dx []float64) { TanhBackward(y, dy, dx) }, math.Tanh},
	}
	for _, c := range cases {
		c.fwd(x, y)
		for i, v := range x {
			if math.Abs(y[i]-c.ref(v)) > 1e-15 {
				t.Fatalf("%s(%g) = %g, want %g", c.name, v, y[i], c.ref(v))
			}
		}
		c.bwd(x, y, dy, dx)
		checkGrad(t, c.name+" dX", x, dy, dx, func() []float64 { c.fwd(x, y); return y })
	}
	// Sigmoid saturates without NaN or overflow.
	big := []float32{-200, 200}
	SigmoidForward(big, big)
	if big[0] != 0 || big[1] != 1 {
		t.Errorf("sigmoid(±200) = %v", big)
	}
}

func TestDropout(t *testing.T) {
	const n = 100000
	mask := make([]float32, n)
	DropoutMask(rand.New(rand.NewPCG(7, 8)), 0.3, mask)
	zeros := 0
	for _, m := range mask {
		switch m {
		case 0:
			zeros++
		case float32(1 / 0.7):
		default:
			t.Fatalf("mask value %g", m)
		}
	}
	if f := float64(zeros) / n; math.Abs(f-0.3) > 0.01 {
		t.Errorf("dropped fraction %g, want 0.3", f)
	}
	// Same seed, same mask.
	mask2 := make([]float32, n)
	DropoutMask(rand.New(rand.NewPCG(7, 8)), 0.3, mask2)
	if !slices.Equal(mask, mask2) {
		t.Error("same seed gave a different mask")
	}
	for _, r := range []float64{0, 1} {
		DropoutMask(rand.New(rand.NewPCG(1, 1)), r, mask[:10])
		for _, m := range mask[:10] {
			if m != float32(1-r) {
				t.Errorf("ratio %g: mask value %g", r, m)
			}
		}
	}
	rng := newRNG(43)
	x, dy := randn(rng, 40), randn(rng, 40)
	m := make([]float64, 40)
	DropoutMask(rng, 0.5, m)
	y, dx := make([]float64, 40), make([]float64, 40)
	DropoutForward(x, m, y)
	for i := range y {
		if y[i] != x[i]*m[i] {
			t.Fatal("dropout forward")
		}
	}
	DropoutBackward(dy, m, dx)
	checkGrad(t, "Dropout dX", x, dy, dx, func() []float64 { DropoutForward(x, m, y); return y })
}

// naiveMatMul multiplies by coordinates, with numpy's 1-D promotion rules.
func naiveMatMul(as []int, a []float64, bs []int, b []float64) []float64 {
	pa, pb := as, bs
	if len(pa) == 1 {
		pa = []int{1, pa[0]}
	}
	if len(pb) == 1 {
		pb = []int{pb[0], 1}
	}
	M, K, N := pa[len(pa)-2], pa[len(pa)-1], pb[len(pb)-1]
	batch, _ := BroadcastShape(pa[:len(pa)-2], pb[:len(pb)-2])
	nb := Size(batch)
	y := make([]float64, nb*M*N)
	r := len(batch)
	coord := make([]int, r)
	idx := func(shape []int) int {
		off := r - len(shape)
		i := 0
		for j, d := range shape {
			c := coord[off+j]
			if d == 1 {
				c = 0
			}
			i = i*d + c
		}
		return i
	}
	for o := 0; o < nb; o++ {
		rem := o
		for i := r - 1; i >= 0; i-- {
			coord[i] = rem % batch[i]
			rem /= batch[i]
		}
		ia, ib := idx(pa[:len(pa)-2]), idx(pb[:len(pb)-2])
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				s := 0.0
				for k := 0; k < K; k++ {
					s += a[ia*M*K+i*K+k] * b[ib*K*N+k*N+j]
				}
				y[o*M*N+i*N+j] = s
			}
		}
	}
	return y
}

func TestMatMul(t *testing.T) {
	rng := newRNG(44)
	cases := []struct{ a, b, out []int }{
		{[]int{3, 4}, []int{4, 5}, []int{3, 5}},
		{[]int{4}, []int{4, 5}, []int{5}},
		{[]int{3, 4}, []int{4}, []int{3}},
		{[]int{4}, []int{4}, []int{}},
		{[]int{2, 3, 4}, []int{4, 5}, []int{2, 3, 5}},
		{[]int{3, 4}, []int{2, 4, 5}, []int{2, 3, 5}},
		{[]int{2, 1, 3, 4}, []int{3, 4, 2}, []int{2, 3, 3, 2}},
		{[]int{2, 3, 4}, []int{4}, []int{2, 3}},
		{[]int{4}, []int{2, 4, 5}, []int{2, 5}},
		{[]int{2, 3, 4}, []int{2, 4, 5}, []int{2, 3, 5}},
		{[]int{1, 3, 4}, []int{2, 4, 5}, []int{2, 3, 5}},
	}
	for _, c := range cases {
		what := fmt.Sprintf("MatMul %v %v", c.a, c.b)
		out, err := MatMulShape(c.a, c.b)
		if err != nil || !slices.Equal(out, c.out) {
			t.Errorf("%s: shape %v, %v; want %v", what, out, err, c.out)
			continue
		}
		a, b := randn(rng, Size(c.a)), randn(rng, Size(c.b))
		y := make([]float64, Size(out))
		MatMul(c.a, a, c.b, b, y)
		assertClose(t, what, y, naiveMatMul(c.a, a, c.b, b), 1e-14)
		dy := randn(rng, len(y))
		fwd := func() []float64 { MatMul(c.a, a, c.b, b, y); return y }
		da, db := make([]float64, len(a)), make([]float64, len(b))
		MatMulBackwardA(c.a, nil, c.b, b, dy, da)
		checkGrad(t, what+" dA", a, dy, da, fwd)
		MatMulBackwardB(c.a, a, c.b, nil, dy, db)
		checkGrad(t, what+" dB", b, dy, db, fwd)
	}
	if _, err := MatMulShape([]int{3, 4}, []int{5, 2}); err == nil {
		t.Error("inner dimension mismatch accepted")
	}
}

func TestGemm(t *testing.T) {
	rng := newRNG(45)
	m, n, k := 5, 7, 3
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		a, b, c := randn(rng, m*k), randn(rng, k*n), randn(rng, m*n)
		lda, ldb := k, n
		if tr[0] {
			lda = m
		}
		if tr[1] {
			ldb = k
		}
		at := func(i, l int) float64 {
			if tr[0] {
				return a[l*lda+i]
			}
			return a[i*lda+l]
		}
		bt := func(l, j int) float64 {
			if tr[1] {
				return b[j*ldb+l]
			}
			return b[l*ldb+j]
		}
		prod := make([]float64, m*n)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				for l := 0; l < k; l++ {
					prod[i*n+j] += at(i, l) * bt(l, j)
				}
			}
		}
		want := make([]float64, m*n)
		for i := range want {
			want[i] = 2*prod[i] + 0.5*c[i]
		}
		Gemm(tr[0], tr[1], m, n, k, 2, a, lda, b, ldb, 0.5, c, n)
		assertClose(t, fmt.Sprintf("Gemm trans %v", tr), c, want, 1e-14)
		c32 := make([]float32, m*n)
		for i := range c32 {
			c32[i] = float32(math.NaN()) // beta 0 ignores C
		}
		Gemm(tr[0], tr[1], m, n, k, 1, to32(a), lda, to32(b), ldb, 0, c32, n)
		assertClose(t, fmt.Sprintf("Gemm float32 trans %v", tr), to64(c32), prod, 1e-6)
	}
	// k == 0 scales C by beta.
	c := []float64{1, 2}
	Gemm(false, false, 1, 2, 0, 1, nil, 1, nil, 2, 3, c, 2)
	if c[0] != 3 || c[1] != 6 {
		t.Errorf("k = 0: %v", c)
	}
	if CurrentBLAS().Name() == "" {
		t.Error("BLAS without a name")
	}
}

// myFloat checks that kernels accept named float types.
type myFloat float32

func TestNamedFloatType(t *testing.T) {
	p := Conv2DParams{N: 2, C: 2, H: 4, W: 4, M: 2, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}.WithOutSize()
	rng := newRNG(46)
	x, w := randn(rng, p.XLen()), randn(rng, p.WLen())
	xm, wm := make([]myFloat, len(x)), make([]myFloat, len(w))
	for i := range x {
		xm[i] = myFloat(x[i])
	}
	for i := range w {
		wm[i] = myFloat(w[i])
	}
	y := make([]myFloat, p.YLen())
	Conv2DForward(p, xm, wm, nil, y)
	assertClose(t, "named float conv", to64(y), naiveConv(p, x, w, nil), 1e-5)
}

// TestReluEdgeCases checks the branch-free Relu on signed zeros, infinities,
// subnormals and NaNs, in both precisions and at a size that goes parallel.
func TestReluEdgeCases(t *testing.T) {
	special := []float64{1, -1, 0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 5e-324, -5e-324, 1e-45, -1e-45,
		math.NaN(), -math.NaN(), math.MaxFloat32, -math.MaxFloat32}
	x := make([]float64, 1<<18)
	for i := range x {
		x[i] = special[i%len(special)] * float64(1+i%3)
	}
	dy := make([]float64, len(x))
	for i := range dy {
		dy[i] = float64(i%7) - 3
	}
	check := func(name string, x, y, dx []float64) {
		for i, v := range x {
			wantY := math.Max(v, 0)
			if v == 0 {
				wantY = 0
			}
			if !(y[i] == wantY || math.IsNaN(y[i]) && math.IsNaN(wantY)) || (!math.IsNaN(y[i]) && math.Signbit(y[i])) {
				t.Fatalf("%s: Relu(%g) = %g", name, v, y[i])
			}
			wantDx := 0.0
			if v > 0 {
				wantDx = dy[i]
			}
			if dx[i] != wantDx {
				t.Fatalf("%s: Relu'(%g)·%g = %g, want %g", name, v, dy[i], dx[i], wantDx)
			}
		}
	}
	y, dx := make([]float64, len(x)), make([]float64, len(x))
	ReluForward(x, y)
	ReluBackward(x, dy, dx)
	check("float64", x, y, dx)
	// float32 on every implementation (the vector loops of the assembly kernels), and
	// over its output as the executor runs it.
	forEachImplementation(t, func(t *testing.T) {
		x32, dy32 := to32(x), to32(dy)
		y32, dx32 := make([]float32, len(x)), make([]float32, len(x))
		ReluForward(x32, y32)
		ReluBackward(x32, dy32, dx32)
		check("float32", to64(x32), to64(y32), to64(dx32))
		ReluForward(x32, x32)
		ReluBackward(x32, dy32, dy32)
		check("float32 in place", to64(to32(x)), to64(x32), to64(dy32))
	})
}

// TestMulBackwardFloat32EveryImplementation checks the float32 gradients of a broadcast
// product (the vector scaling and dot products of mulGrad) on every implementation
// against float64, within float32 rounding: a squeeze-excitation gate [N C 1 1] times
// maps of runs longer than the vector widths, a per-channel scale, a scalar, and equal
// shapes; also written over dy.
func TestMulBackwardFloat32EveryImplementation(t *testing.T) {
	cases := [][2][]int{
		{{2, 3, 17, 9}, {2, 3, 1, 1}},
		{{2, 5, 70}, {1, 5, 1}},
		{{3, 40}, {}},
		{{4, 33}, {4, 33}},
		{{1, 1}, {2, 100}},
	}
	forEachImplementation(t, func(t *testing.T) {
		rng := newRNG(43)
		for _, c := range cases {
			as, bs := c[0], c[1]
			out, _ := BroadcastShape(as, bs)
			a, b, dy := randn(rng, Size(as)), randn(rng, Size(bs)), randn(rng, Size(out))
			da, db := make([]float64, len(a)), make([]float64, len(b))
			MulBackwardA(as, a, bs, b, dy, da)
			MulBackwardB(as, a, bs, b, dy, db)
			da32, db32 := make([]float32, len(a)), make([]float32, len(b))
			MulBackwardA(as, to32(a), bs, to32(b), to32(dy), da32)
			MulBackwardB(as, to32(a), bs, to32(b), to32(dy), db32)
			for _, g := range []struct {
				what      string
				got, want []float64
				terms     int // values summed into each
			}{{"da", to64(da32), da, len(dy) / len(da)}, {"db", to64(db32), db, len(dy) / len(db)}} {
				for i := range g.want {
					if math.Abs(g.got[i]-g.want[i]) > 1e-6*float64(g.terms)*4 {
						t.Fatalf("%v x %v: %s[%d] = %g, float64 %g", as, bs, g.what, i, g.got[i], g.want[i])
					}
				}
			}
			if Size(as) == Size(out) {
				over := to32(dy)
				MulBackwardA(as, to32(a), bs, to32(b), over, over)
				for i := range over {
					if over[i] != da32[i] {
						t.Fatalf("%v x %v: da over dy [%d] = %g, %g", as, bs, i, over[i], da32[i])
					}
				}
			}
		}
	})
}

// TestMatMulBatchesSplit checks the float32 batched products whose batches split across
// the cores (attention's: every batch its own matrices; a broadcast B, whose gradient
// sums over the batches and stays on one product at a time) on every implementation:
// against the float64 products within float32 rounding, and bit for bit against the
// same products on one core.
func TestMatMulBatchesSplit(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	rng := newRNG(46)
	cases := []struct{ a, b []int }{
		{[]int{3, 4, 13, 8}, []int{3, 4, 8, 11}},
		{[]int{2, 3, 13, 8}, []int{1, 3, 8, 11}}, // b broadcast along the first axis
	}
	forEachImplementation(t, func(t *testing.T) {
		for _, c := range cases {
			out, err := MatMulShape(c.a, c.b)
			if err != nil {
				t.Fatal(err)
			}
			if pl, _ := matmulPlan(c.a, c.b); pl.foldA() || len(pl.aIdx) < runtime.GOMAXPROCS(0) {
				t.Fatalf("MatMul %v %v is one product or too few for the cores: the check is weak", c.a, c.b)
			}
			a, b, dy := randn(rng, Size(c.a)), randn(rng, Size(c.b)), randn(rng, Size(out))
			run := func() (y, da, db []float32) {
				y, da, db = make([]float32, Size(out)), make([]float32, len(a)), make([]float32, len(b))
				MatMul(c.a, to32(a), c.b, to32(b), y)
				MatMulBackwardA(c.a, nil, c.b, to32(b), to32(dy), da)
				MatMulBackwardB(c.a, to32(a), c.b, nil, to32(dy), db)
				return y, da, db
			}
			y, da, db := run()
			procs := runtime.GOMAXPROCS(1)
			y1, da1, db1 := run()
			runtime.GOMAXPROCS(procs)
			for _, p := range [][2][]float32{{y, y1}, {da, da1}, {db, db1}} {
				for i := range p[0] {
					if math.Float32bits(p[0][i]) != math.Float32bits(p[1][i]) {
						t.Fatalf("MatMul %v %v: %g split across the cores, %g on one", c.a, c.b, p[0][i], p[1][i])
					}
				}
			}
			a64, b64, dy64 := to64(to32(a)), to64(to32(b)), to64(to32(dy))
			wy := make([]float64, len(y))
			MatMul(c.a, a64, c.b, b64, wy)
			wda, wdb := make([]float64, len(a)), make([]float64, len(b))
			MatMulBackwardA(c.a, nil, c.b, b64, dy64, wda)
			MatMulBackwardB(c.a, a64, c.b, nil, dy64, wdb)
			assertClose(t, fmt.Sprintf("MatMul %v %v", c.a, c.b), to64(y), wy, 1e-5)
			assertClose(t, fmt.Sprintf("MatMul %v %v dA", c.a, c.b), to64(da), wda, 1e-5)
			assertClose(t, fmt.Sprintf("MatMul %v %v dB", c.a, c.b), to64(db), wdb, 1e-5)
		}
	})
}

// TestReduceToShapeColumnsSplit checks a bias's gradient (a [rows, cols] gradient
// summed over its rows, and a [2, rows, cols] one over two axes) large enough for the
// columns to be split across the cores: against the float64 sums, and float32 split
// against one core bit for bit.
func TestReduceToShapeColumnsSplit(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	rng := newRNG(47)
	for _, c := range [][2][]int{{{3152, 768}, {768}}, {{2, 700, 300}, {1, 1, 300}}} {
		from, to := c[0], c[1]
		inner := from[len(from)-1]
		if workers(inner, Size(from)/inner) < 2 {
			t.Fatalf("%v: the columns are not split: the check is weak", from)
		}
		x := randn(rng, Size(from))
		want := make([]float64, inner)
		for i, v := range x {
			want[i%inner] += v
		}
		got := make([]float64, Size(to))
		ReduceToShape(from, x, to, got)
		assertClose(t, fmt.Sprintf("ReduceToShape %v to %v", from, to), got, want, 1e-12)
		x32 := to32(x)
		split, one := make([]float32, Size(to)), make([]float32, Size(to))
		ReduceToShape(from, x32, to, split)
		procs := runtime.GOMAXPROCS(1)
		ReduceToShape(from, x32, to, one)
		runtime.GOMAXPROCS(procs)
		assertClose(t, fmt.Sprintf("ReduceToShape %v float32 split and on one core", from), to64(split), to64(one), 0)
	}
}
