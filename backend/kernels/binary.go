package kernels

import "math"

// Broadcasting binary ops beyond the four of broadcast.go: Pow and PRelu, with the same
// conventions (numpy broadcasting, one backward function per operand, the gradient of
// an operand's shape overwritten).

// PowForward sets y = a^b with numpy broadcasting.
func PowForward[T Float](aShape []int, a []T, bShape []int, b []T, y []T) {
	const name = "Pow"
	pl := makePlan(name, aShape, bShape)
	need(name, "a", a, Size(aShape))
	need(name, "b", b, Size(bShape))
	need(name, "y", y, pl.size)
	pl.each(func(o, ia, ib, n, sa, sb int) {
		for i := 0; i < n; i++ {
			y[o+i] = T(pow(float64(a[ia+i*sa]), float64(b[ib+i*sb])))
		}
	})
}

// pow is math.Pow with squares computed as products (as PyTorch does for exponent 2),
// so that x^2 rounds like x*x.
func pow(x, e float64) float64 {
	if e == 2 {
		return x * x
	}
	return math.Pow(x, e)
}

// PowBackwardA computes da = ReduceToShape(dy · b · a^(b-1)) for y = a^b, taking the
// term as 0 where b is 0 (PyTorch's convention, which avoids 0 · ∞ at a = 0).
func PowBackwardA[T Float](aShape []int, a []T, bShape []int, b []T, dy, da []T) {
	const name = "PowBackwardA"
	pl := makePlan(name, aShape, bShape)
	need(name, "a", a, Size(aShape))
	need(name, "b", b, Size(bShape))
	need(name, "dy", dy, pl.size)
	need(name, "da", da, Size(aShape))
	da = da[:Size(aShape)]
	clear(da)
	pl.each(func(o, ia, ib, n, sa, sb int) {
		for i := 0; i < n; i++ {
			e := float64(b[ib+i*sb])
			if e == 0 {
				continue
			}
			x := float64(a[ia+i*sa])
			da[ia+i*sa] += T(float64(dy[o+i]) * e * pow(x, e-1))
		}
	})
}

// PowBackwardB computes db = ReduceToShape(dy · a^b · ln a) for y = a^b, taking the
// term as 0 where a is 0 and b is non-negative (PyTorch's convention).
func PowBackwardB[T Float](aShape []int, a []T, bShape []int, b []T, dy, db []T) {
	const name = "PowBackwardB"
	pl := makePlan(name, aShape, bShape)
	need(name, "a", a, Size(aShape))
	need(name, "b", b, Size(bShape))
	need(name, "dy", dy, pl.size)
	need(name, "db", db, Size(bShape))
	db = db[:Size(bShape)]
	clear(db)
	pl.each(func(o, ia, ib, n, sa, sb int) {
		for i := 0; i < n; i++ {
			x, e := float64(a[ia+i*sa]), float64(b[ib+i*sb])
			if x == 0 && e >= 0 {
				continue
			}
			db[ib+i*sb] += T(float64(dy[o+i]) * pow(x, e) * math.Log(x))
		}
	})
}

// PReluForward sets y = x where x > 0 and slope·x elsewhere, slope broadcast to x's
// shape (xShape is the output's shape).
func PReluForward[T Float](xShape []int, x []T, sShape []int, slope []T, y []T) {
	const name = "PRelu"
	pl := makePlan(name, xShape, sShape)
	if pl.size != Size(xShape) {
		panic("kernels: PRelu: slope " + shapeString(sShape) + " does not broadcast to " + shapeString(xShape))
	}
	need(name, "x", x, Size(xShape))
	need(name, "slope", slope, Size(sShape))
	need(name, "y", y, pl.size)
	pl.each(func(o, ix, is, n, sx, ss int) {
		for i := 0; i < n; i++ {
			v := x[ix+i*sx]
			if v < 0 {
				v *= slope[is+i*ss]
			}
			y[o+i] = v
		}
	})
}

// PReluBackwardX computes dx = dy where x > 0 and dy·slope elsewhere.
func PReluBackwardX[T Float](xShape []int, x []T, sShape []int, slope []T, dy, dx []T) {
	const name = "PReluBackwardX"
	pl := makePlan(name, xShape, sShape)
	need(name, "x", x, Size(xShape))
	need(name, "dy", dy, pl.size)
	need(name, "dx", dx, pl.size)
	pl.each(func(o, ix, is, n, sx, ss int) {
		for i := 0; i < n; i++ {
			g := dy[o+i]
			if x[ix+i*sx] < 0 {
				g *= slope[is+i*ss]
			}
			dx[o+i] = g
		}
	})
}

// PReluBackwardSlope computes dslope = ReduceToShape(dy·x where x < 0, 0 elsewhere).
func PReluBackwardSlope[T Float](xShape []int, x []T, sShape []int, slope []T, dy, ds []T) {
	const name = "PReluBackwardSlope"
	pl := makePlan(name, xShape, sShape)
	need(name, "x", x, Size(xShape))
	need(name, "dy", dy, pl.size)
	need(name, "dslope", ds, Size(sShape))
	ds = ds[:Size(sShape)]
	clear(ds)
	pl.each(func(o, ix, is, n, sx, ss int) {
		for i := 0; i < n; i++ {
			if v := x[ix+i*sx]; v < 0 {
				ds[is+i*ss] += dy[o+i] * v
			}
		}
	})
}
