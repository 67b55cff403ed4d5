package kernels

// Reductions over a set of axes (ONNX ReduceSum, ReduceMean, ReduceMax). The input has
// shape shape; axes are distinct, in [0, len(shape)). The output holds Size(shape) /
// (product of the reduced dimensions) values, laid out as the input with the reduced
// axes of size 1 (keepdims or not is a matter of the shape, not of the layout).

// ReducedShape returns shape with the dimensions of axes set to 1.
func ReducedShape(shape, axes []int) []int {
	out := append([]int(nil), shape...)
	for _, a := range axes {
		if a < 0 || a >= len(shape) {
			panic("kernels: reduction axis " + itoa(a) + " out of range for " + shapeString(shape))
		}
		out[a] = 1
	}
	return out
}

// ReduceSum sets y to the sum of x over axes (accumulated in float64 runs).
func ReduceSum[T Float](shape, axes []int, x, y []T) {
	ReduceToShape(shape, x, ReducedShape(shape, axes), y)
}

// ReduceSumBackward sets dx to dy broadcast back over the reduced axes.
func ReduceSumBackward[T Float](shape, axes []int, dy, dx []T) {
	BroadcastTo(ReducedShape(shape, axes), dy, shape, dx)
}

// reducedCount is how many input values each output value of a reduction combines.
func reducedCount(shape, axes []int) int {
	n := 1
	for _, a := range axes {
		n *= shape[a]
	}
	return n
}

// ReduceMean sets y to the mean of x over axes.
func ReduceMean[T Float](shape, axes []int, x, y []T) {
	ReduceSum(shape, axes, x, y)
	if n := reducedCount(shape, axes); n > 0 {
		inv := 1 / T(n)
		for i := range y[:Size(ReducedShape(shape, axes))] {
			y[i] *= inv
		}
	}
}

// ReduceMeanBackward sets dx to dy / (the reduced count), broadcast back.
func ReduceMeanBackward[T Float](shape, axes []int, dy, dx []T) {
	ReduceSumBackward(shape, axes, dy, dx)
	if n := reducedCount(shape, axes); n > 0 {
		inv := 1 / T(n)
		for i := range dx[:Size(shape)] {
			dx[i] *= inv
		}
	}
}

// ReduceMax sets y to the maximum of x over axes (NaN if any value is NaN; -Inf over an
// empty set).
func ReduceMax[T Float](shape, axes []int, x, y []T) {
	const name = "ReduceMax"
	kept := ReducedShape(shape, axes)
	pl := makePlan(name, kept, shape)
	need(name, "x", x, Size(shape))
	need(name, "y", y, Size(kept))
	y = y[:Size(kept)]
	fill(y, negInf[T]())
	pl.each(func(o, it, _, n, st, _ int) {
		src := x[o : o+n]
		if st == 0 {
			m := y[it]
			for _, v := range src {
				m = max(m, v)
			}
			y[it] = m
			return
		}
		dst := y[it : it+n]
		for i, v := range src {
			dst[i] = max(dst[i], v)
		}
	})
}

// ReduceMaxBackward sets dx: each output's gradient is shared equally by the input
// values equal to the maximum (PyTorch's amax), 0 elsewhere.
func ReduceMaxBackward[T Float](shape, axes []int, x, y, dy, dx []T) {
	const name = "ReduceMaxBackward"
	kept := ReducedShape(shape, axes)
	pl := makePlan(name, kept, shape)
	need(name, "x", x, Size(shape))
	need(name, "y", y, Size(kept))
	need(name, "dy", dy, Size(kept))
	need(name, "dx", dx, Size(shape))
	count := getBuf[T](Size(kept))
	defer putBuf(count)
	clear(count)
	pl.each(func(o, it, _, n, st, _ int) {
		for i, v := range x[o : o+n] {
			if v == y[it+i*st] {
				count[it+i*st]++
			}
		}
	})
	pl.each(func(o, it, _, n, st, _ int) {
		for i, v := range x[o : o+n] {
			j := it + i*st
			if v == y[j] {
				dx[o+i] = dy[j] / count[j]
			} else {
				dx[o+i] = 0
			}
		}
	})
}
