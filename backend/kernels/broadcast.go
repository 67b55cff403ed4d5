package kernels

import "errors"

// Size returns the number of elements of a tensor of the given shape (1 for
// a scalar, shape []).
func Size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// BroadcastShape returns the shape of numpy's multidirectional broadcast of
// two shapes: right-aligned, each pair of dimensions equal or one of them 1.
func BroadcastShape(a, b []int) ([]int, error) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for i := 0; i < r; i++ {
		da, db := dimFromRight(a, r-1-i), dimFromRight(b, r-1-i)
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, errors.New("kernels: shapes " + shapeString(a) + " and " + shapeString(b) + " do not broadcast")
		}
	}
	return out, nil
}

// dimFromRight returns the dimension of shape k places from its last axis,
// or 1 beyond its rank.
func dimFromRight(shape []int, k int) int {
	if k < len(shape) {
		return shape[len(shape)-1-k]
	}
	return 1
}

func shapeString(s []int) string {
	b := []byte{'['}
	for i, d := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, itoa(d)...)
	}
	return string(append(b, ']'))
}

// bplan is a simplified iteration over the broadcast of operands a and b:
// unit output axes dropped and adjacent axes merged when both operands
// broadcast (or not) along both. Strides are 0 along broadcast axes.
type bplan struct {
	dims, sa, sb []int
	size         int
}

func makePlan(name string, aShape, bShape []int) bplan {
	out, err := BroadcastShape(aShape, bShape)
	if err != nil {
		panic(err.Error() + " (in " + name + ")")
	}
	r := len(out)
	var pl bplan
	pl.size = Size(out)
	// Per axis: dim and whether a, b are broadcast along it.
	type ax struct {
		d      int
		ba, bb bool
	}
	axes := make([]ax, 0, r)
	for i := 0; i < r; i++ {
		d := out[i]
		if d == 1 {
			continue
		}
		a := ax{d, dimFromRight(aShape, r-1-i) == 1, dimFromRight(bShape, r-1-i) == 1}
		if n := len(axes); n > 0 && axes[n-1].ba == a.ba && axes[n-1].bb == a.bb {
			axes[n-1].d *= d
			continue
		}
		axes = append(axes, a)
	}
	if len(axes) == 0 {
		axes = append(axes, ax{1, false, false})
	}
	n := len(axes)
	pl.dims, pl.sa, pl.sb = make([]int, n), make([]int, n), make([]int, n)
	strideA, strideB := 1, 1
	for i := n - 1; i >= 0; i-- {
		pl.dims[i] = axes[i].d
		if !axes[i].ba {
			pl.sa[i] = strideA
			strideA *= axes[i].d
		}
		if !axes[i].bb {
			pl.sb[i] = strideB
			strideB *= axes[i].d
		}
	}
	return pl
}

// each calls fn for every run along the innermost axis: output offset o,
// operand offsets ia and ib, run length n and operand strides sa, sb (each 0
// or 1).
func (pl *bplan) each(fn func(o, ia, ib, n, sa, sb int)) {
	if pl.size == 0 {
		return
	}
	pl.eachOf(0, pl.size/pl.dims[len(pl.dims)-1], fn)
}

// eachParallel is each with the runs split across the cores when there are values
// enough (cost: a value's work in additions), for element-wise work: fn must write
// only the outputs of the values it is given, each from its own inputs, so that a run
// may also be cut into pieces (fewer runs than cores: a tensor scaled by a scalar is
// one run). Each value is computed alone, so the results do not depend on the split.
func (pl *bplan) eachParallel(cost int, fn func(o, ia, ib, n, sa, sb int)) {
	if pl.size == 0 {
		return
	}
	inner := pl.dims[len(pl.dims)-1]
	runs := pl.size / inner
	w := workers(pl.size, cost)
	if runs >= w {
		pl.eachRunParallel(cost, fn)
		return
	}
	// Each run in w pieces.
	piece := (inner + w - 1) / w
	parallelFor(runs*w, w, func(_, lo, hi int) {
		for k := lo; k < hi; k++ {
			start := k % w * piece
			n := min(piece, inner-start)
			if n <= 0 {
				continue
			}
			pl.eachOf(k/w, k/w+1, func(o, ia, ib, _, sa, sb int) {
				fn(o+start, ia+start*sa, ib+start*sb, n, sa, sb)
			})
		}
	})
}

// eachRunParallel is each with whole runs split across the cores when there are
// values enough: fn may sum a run (its writes are its run's alone).
func (pl *bplan) eachRunParallel(cost int, fn func(o, ia, ib, n, sa, sb int)) {
	if pl.size == 0 {
		return
	}
	inner := pl.dims[len(pl.dims)-1]
	runs := pl.size / inner
	parallelFor(runs, workers(runs, inner*cost), func(_, lo, hi int) { pl.eachOf(lo, hi, fn) })
}

// eachSumming is each for runs that add into a of t elements (a gradient summed over
// the broadcast axes): split across the cores where each run sums into its own element
// (a broadcast along the runs and no other axis: a squeeze-excitation gate's gradient),
// else one run after another.
func (pl *bplan) eachSumming(t int, fn func(o, ia, ib, n, sa, sb int)) {
	if r := len(pl.dims); pl.size > 0 && pl.sa[r-1] == 0 && pl.size/pl.dims[r-1] == t {
		pl.eachRunParallel(2, fn)
		return
	}
	pl.each(fn)
}

// eachOf calls fn for runs [r0, r1) of each.
func (pl *bplan) eachOf(r0, r1 int, fn func(o, ia, ib, n, sa, sb int)) {
	r := len(pl.dims)
	inner := pl.dims[r-1]
	sa, sb := pl.sa[r-1], pl.sb[r-1]
	var idxBuf [8]int
	var idx []int
	if r-1 > len(idxBuf) {
		idx = make([]int, r-1)
	} else {
		idx = idxBuf[:r-1]
	}
	// The index of run r0 along the outer axes, and its operand offsets.
	ia, ib := 0, 0
	for a, q := r-2, r0; a >= 0; a-- {
		idx[a] = q % pl.dims[a]
		q /= pl.dims[a]
		ia += idx[a] * pl.sa[a]
		ib += idx[a] * pl.sb[a]
	}
	for o := r0 * inner; o < r1*inner; o += inner {
		fn(o, ia, ib, inner, sa, sb)
		for a := r - 2; a >= 0; a-- {
			idx[a]++
			ia += pl.sa[a]
			ib += pl.sb[a]
			if idx[a] < pl.dims[a] {
				break
			}
			ia -= pl.sa[a] * pl.dims[a]
			ib -= pl.sb[a] * pl.dims[a]
			idx[a] = 0
		}
	}
}

type binop int

const (
	opAdd binop = iota
	opSub
	opMul
	opDiv
)

var opNames = [...]string{"Add", "Sub", "Mul", "Div"}

func binary[T Float](op binop, aShape []int, a []T, bShape []int, b []T, y []T) {
	name := opNames[op]
	pl := makePlan(name, aShape, bShape)
	need(name, "a", a, Size(aShape))
	need(name, "b", b, Size(bShape))
	need(name, "y", y, pl.size)
	if n := pl.size; Size(aShape) == n && Size(bShape) == n {
		// Operands of one shape (a residual connection's Add): element by element,
		// split across the cores.
		parallelFor(n, workers(n, 1), func(_, lo, hi int) {
			binaryRun(op, y[lo:hi], a[lo:hi], b[lo:hi], 1, 1)
		})
		return
	}
	pl.eachParallel(1, func(o, ia, ib, n, sa, sb int) {
		binaryRun(op, y[o:o+n], a[ia:], b[ib:], sa, sb)
	})
}

// scaleT sets y[i] = a·x[i] (a channel's squeeze-excitation scale over its plane), in
// the vector loop of the kernel in use for float32 (the same products).
func scaleT[T Float](a T, x, y []T) {
	x = x[:len(y)]
	l := normLoopsFor[T]()
	h := 0
	if l != nil && l.scale != nil {
		if h = l.vecHead(len(y)); h > 0 {
			l.scale(h, float32(a), &as32(x)[0], &as32(y)[0])
		}
	}
	for i := h; i < len(y); i++ {
		y[i] = a * x[i]
	}
}

// binaryRun sets y[i] = a[i*sa] op b[i*sb] for sa, sb in {0, 1}.
func binaryRun[T Float](op binop, y, a, b []T, sa, sb int) {
	n := len(y)
	switch {
	case sa == 1 && sb == 1:
		a, b = a[:n], b[:n]
		switch op {
		case opAdd:
			for i := range y {
				y[i] = a[i] + b[i]
			}
		case opSub:
			for i := range y {
				y[i] = a[i] - b[i]
			}
		case opMul:
			for i := range y {
				y[i] = a[i] * b[i]
			}
		case opDiv:
			for i := range y {
				y[i] = a[i] / b[i]
			}
		}
	case sa == 1:
		a, bv := a[:n], b[0]
		switch op {
		case opAdd:
			for i := range y {
				y[i] = a[i] + bv
			}
		case opSub:
			for i := range y {
				y[i] = a[i] - bv
			}
		case opMul:
			scaleT(bv, a, y)
		case opDiv:
			for i := range y {
				y[i] = a[i] / bv
			}
		}
	case sb == 1:
		av, b := a[0], b[:n]
		switch op {
		case opAdd:
			for i := range y {
				y[i] = av + b[i]
			}
		case opSub:
			for i := range y {
				y[i] = av - b[i]
			}
		case opMul:
			scaleT(av, b, y)
		case opDiv:
			for i := range y {
				y[i] = av / b[i]
			}
		}
	default:
		var v T
		switch op {
		case opAdd:
			v = a[0] + b[0]
		case opSub:
			v = a[0] - b[0]
		case opMul:
			v = a[0] * b[0]
		case opDiv:
			v = a[0] / b[0]
		}
		for i := range y {
			y[i] = v
		}
	}
}

// Add sets y = a + b with numpy broadcasting; y has the shape
// [BroadcastShape](aShape, bShape). y may alias a or b when that operand
// already has the output's shape.
func Add[T Float](aShape []int, a []T, bShape []int, b []T, y []T) {
	binary(opAdd, aShape, a, bShape, b, y)
}

// Sub sets y = a - b with numpy broadcasting (see [Add]).
func Sub[T Float](aShape []int, a []T, bShape []int, b []T, y []T) {
	binary(opSub, aShape, a, bShape, b, y)
}

// Mul sets y = a * b with numpy broadcasting (see [Add]).
func Mul[T Float](aShape []int, a []T, bShape []int, b []T, y []T) {
	binary(opMul, aShape, a, bShape, b, y)
}

// Div sets y = a / b with numpy broadcasting (see [Add]).
func Div[T Float](aShape []int, a []T, bShape []int, b []T, y []T) {
	binary(opDiv, aShape, a, bShape, b, y)
}

// AddInto sets dst[i] += src[i] (the same sums as dst[i] + src[i]), in the vector loop
// for float32 and split across goroutines: the sum of two gradients of one tensor.
func AddInto[T Float](dst, src []T) {
	need("AddInto", "dst", dst, len(src))
	parallelFor(len(src), workers(len(src), 1), func(_, lo, hi int) {
		axpyT(1, src[lo:hi], dst[lo:hi])
	})
}

// AddTo sets dst = a + b (dst, a and b of one length; dst may be a), split across the
// cores: the same bits as copying a and adding b with AddInto, a chunk at a time (each
// chunk copied, then added while it is in cache, in the vector loop).
func AddTo[T Float](dst, a, b []T) {
	need("AddTo", "a", a, len(dst))
	need("AddTo", "b", b, len(dst))
	parallelFor(len(dst), workers(len(dst), 1), func(_, lo, hi int) {
		copy(dst[lo:hi], a[lo:hi])
		axpyT(1, b[lo:hi], dst[lo:hi])
	})
}

// BroadcastTo copies x, of shape xShape, into y of shape toShape, which
// xShape must broadcast to (ONNX Expand when toShape is the broadcast of
// both). Its adjoint is [ReduceToShape].
func BroadcastTo[T any](xShape []int, x []T, toShape []int, y []T) {
	const name = "BroadcastTo"
	pl := makePlan(name, toShape, xShape)
	if pl.size != Size(toShape) {
		panic("kernels: BroadcastTo: " + shapeString(xShape) + " does not broadcast to " + shapeString(toShape))
	}
	need(name, "x", x, Size(xShape))
	need(name, "y", y, pl.size)
	pl.each(func(o, _, ix, n, _, sx int) {
		if sx == 1 {
			copy(y[o:o+n], x[ix:ix+n])
			return
		}
		v := x[ix]
		for i := range y[o : o+n] {
			y[o+i] = v
		}
	})
}

// ReduceToShape sums x, of shape fromShape, down to toShape, which must
// broadcast to fromShape: the adjoint of broadcasting, used by every
// broadcasting op's backward. out (of toShape) is overwritten.
func ReduceToShape[T Float](fromShape []int, x []T, toShape []int, out []T) {
	const name = "ReduceToShape"
	pl := makePlan(name, toShape, fromShape)
	if pl.size != Size(fromShape) {
		panic("kernels: ReduceToShape: " + shapeString(toShape) + " does not broadcast to " + shapeString(fromShape))
	}
	need(name, "x", x, pl.size)
	need(name, "out", out, Size(toShape))
	out = out[:Size(toShape)]
	clear(out)
	if pl.size == 0 {
		return
	}
	if r := len(pl.dims); pl.sa[r-1] == 1 {
		// out keeps the runs' axis (a bias's gradient, summed over the rows): the
		// runs' columns split across the cores, each summed over every run in order,
		// so the results do not depend on the split.
		inner := pl.dims[r-1]
		parallelFor(inner, workers(inner, pl.size/inner), func(_, c0, c1 int) {
			pl.each(func(o, it, _, _, _, _ int) {
				addTo(out[it+c0:it+c1], x[o+c0:o+c1])
			})
		})
		return
	}
	// Else out drops the runs' axis: each run sums into one element.
	pl.each(func(o, it, _, n, _, _ int) {
		out[it] += T(sum(x[o : o+n]))
	})
}

// Backward of the broadcasting binary ops. Each has the same signature so
// that op adapters can keep them in a table: the shapes and values of both
// operands, the output gradient dy (of the broadcast shape), and the
// gradient to compute (of that operand's shape, overwritten). Operand values
// a function does not need may be nil. The gradient of an operand that has
// the output's shape may alias dy in Add's, Sub's and Mul's backward
// functions and in DivBackwardA.

// AddBackwardA computes da = ReduceToShape(dy) for y = a + b.
func AddBackwardA[T Float](aShape []int, a []T, bShape []int, b []T, dy, da []T) {
	reduceGrad("AddBackwardA", aShape, bShape, dy, da, false)
}

// AddBackwardB computes db = ReduceToShape(dy) for y = a + b.
func AddBackwardB[T Float](aShape []int, a []T, bShape []int, b []T, dy, db []T) {
	reduceGrad("AddBackwardB", bShape, aShape, dy, db, false)
}

// SubBackwardA computes da = ReduceToShape(dy) for y = a - b.
func SubBackwardA[T Float](aShape []int, a []T, bShape []int, b []T, dy, da []T) {
	reduceGrad("SubBackwardA", aShape, bShape, dy, da, false)
}

// SubBackwardB computes db = ReduceToShape(-dy) for y = a - b.
func SubBackwardB[T Float](aShape []int, a []T, bShape []int, b []T, dy, db []T) {
	reduceGrad("SubBackwardB", bShape, aShape, dy, db, true)
}

// MulBackwardA computes da = ReduceToShape(dy * b) for y = a * b.
func MulBackwardA[T Float](aShape []int, a []T, bShape []int, b []T, dy, da []T) {
	mulGrad("MulBackwardA", aShape, bShape, b, dy, da)
}

// MulBackwardB computes db = ReduceToShape(dy * a) for y = a * b.
func MulBackwardB[T Float](aShape []int, a []T, bShape []int, b []T, dy, db []T) {
	mulGrad("MulBackwardB", bShape, aShape, a, dy, db)
}

// mulGrad is grad for the product, f(g, v) = g·v, with the runs in vector loops in
// float32 (a scaling where the other operand is broadcast along the run, a dot product
// where the gradient is summed over it: a squeeze-excitation block's gate and its
// gradient), in float32 lanes.
func mulGrad[T Float](name string, tShape, oShape []int, other []T, dy, d []T) {
	pl := makePlan(name, tShape, oShape)
	need(name, "dy", dy, pl.size)
	need(name, "other operand", other, Size(oShape))
	need(name, "gradient", d, Size(tShape))
	d = d[:Size(tShape)]
	l := normLoopsFor[T]()
	// scale sets dd = a·g (dd may be g).
	scale := func(a T, g, dd []T) {
		h := l.vecHead(len(g))
		if h > 0 {
			l.affine(h, float32(a), 0, &as32(g)[0], &as32(dd)[0])
		}
		for i, gv := range g[h:] {
			dd[h+i] = a * gv
		}
	}
	// dot returns Σ g·v.
	dot := func(g, v []T) T {
		if is32[T]() {
			return T(dot32(as32(g), as32(v)))
		}
		var s T
		for i, gv := range g {
			s += gv * v[i]
		}
		return s
	}
	if len(d) == pl.size {
		// Nothing to sum: each element of d is written once, after its dy is read, so
		// d may be dy itself.
		pl.eachParallel(1, func(o, it, io, n, st, so int) {
			dd, g := d[it:it+n], dy[o:o+n]
			if so == 1 {
				ov := other[io : io+n]
				for i, gv := range g {
					dd[i] = gv * ov[i]
				}
				return
			}
			scale(other[io], g, dd)
		})
		return
	}
	clear(d)
	pl.eachSumming(len(d), func(o, it, io, n, st, so int) {
		g := dy[o : o+n]
		switch {
		case st == 1 && so == 1:
			dd, ov := d[it:it+n], other[io:io+n]
			for i, gv := range g {
				dd[i] += gv * ov[i]
			}
		case st == 1:
			dd, ov := d[it:it+n], other[io]
			for i, gv := range g {
				dd[i] += gv * ov
			}
		case so == 1:
			d[it] += dot(g, other[io:io+n])
		default:
			var s T
			for _, gv := range g {
				s += gv
			}
			d[it] += s * other[io]
		}
	})
}

// DivBackwardA computes da = ReduceToShape(dy / b) for y = a / b.
func DivBackwardA[T Float](aShape []int, a []T, bShape []int, b []T, dy, da []T) {
	grad("DivBackwardA", aShape, bShape, b, dy, da, func(g, v T) T { return g / v })
}

// DivBackwardB computes db = ReduceToShape(-dy * a / b²) for y = a / b.
func DivBackwardB[T Float](aShape []int, a []T, bShape []int, b []T, dy, db []T) {
	const name = "DivBackwardB"
	pl := makePlan(name, bShape, aShape)
	need(name, "a", a, Size(aShape))
	need(name, "b", b, Size(bShape))
	need(name, "dy", dy, pl.size)
	need(name, "db", db, Size(bShape))
	db = db[:Size(bShape)]
	clear(db)
	pl.each(func(o, it, ia, n, st, sa int) {
		for i := 0; i < n; i++ {
			bv := b[it+i*st]
			db[it+i*st] -= dy[o+i] * a[ia+i*sa] / (bv * bv)
		}
	})
}

// reduceGrad computes d (of shape tShape) = ±ReduceToShape(dy), where dy
// has the broadcast shape of tShape and oShape.
func reduceGrad[T Float](name string, tShape, oShape []int, dy, d []T, neg bool) {
	out, err := BroadcastShape(tShape, oShape)
	if err != nil {
		panic(err.Error() + " (in " + name + ")")
	}
	if n := Size(tShape); n == Size(out) {
		need(name, "dy", dy, n)
		need(name, "gradient", d, n)
		copy(d[:n], dy) // nothing to sum: d may be dy itself
	} else {
		ReduceToShape(out, dy, tShape, d)
	}
	if neg {
		for i := range d[:Size(tShape)] {
			d[i] = -d[i]
		}
	}
}

// grad computes d (of shape tShape) = ReduceToShape(f(dy, other)), where
// other (of oShape) is broadcast alongside. d is overwritten.
func grad[T Float](name string, tShape, oShape []int, other []T, dy, d []T, f func(g, v T) T) {
	pl := makePlan(name, tShape, oShape)
	need(name, "dy", dy, pl.size)
	need(name, "other operand", other, Size(oShape))
	need(name, "gradient", d, Size(tShape))
	d = d[:Size(tShape)]
	if len(d) == pl.size {
		// Nothing to sum: each element of d is written once, after its dy is read, so
		// d may be dy itself.
		pl.eachParallel(1, func(o, it, io, n, st, so int) {
			dd, g := d[it:it+n], dy[o:o+n]
			if so == 1 {
				ov := other[io : io+n]
				for i, gv := range g {
					dd[i] = f(gv, ov[i])
				}
				return
			}
			ov := other[io]
			for i, gv := range g {
				dd[i] = f(gv, ov)
			}
		})
		return
	}
	clear(d)
	pl.eachSumming(len(d), func(o, it, io, n, st, so int) {
		g := dy[o : o+n]
		switch {
		case st == 1 && so == 1:
			dd, ov := d[it:it+n], other[io:io+n]
			for i, gv := range g {
				dd[i] += f(gv, ov[i])
			}
		case st == 1:
			dd, ov := d[it:it+n], other[io]
			for i, gv := range g {
				dd[i] += f(gv, ov)
			}
		default:
			var s T
			for i, gv := range g {
				s += f(gv, other[io+i*so])
			}
			d[it] += s
		}
	})
}
