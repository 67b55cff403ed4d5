package backend

import (
	"math"

	"toolkit/backend/kernels"
)

func init() {
	register("Softmax", newSoftmax[float32], newSoftmax[float64])
	register("LogSoftmax", newSoftmax[float32], newSoftmax[float64])
}

// softmax is Softmax or LogSoftmax. Before opset 13 the input is coerced to a matrix at
// axis (default 1): rows are the dimensions before it, columns the rest. From opset 13
// the function runs along the single axis (default -1).
type softmax[T float] struct {
	log bool
	// The input viewed as [outer, axis, inner]; before opset 13 inner is 1.
	outer, n, inner int
}

func newSoftmax[T float](c *opContext) (*opKernels[T], error) {
	shape := c.in[0]
	rank := len(shape)
	def := int64(-1)
	if c.opset < 13 {
		def = 1
	}
	axis := int(c.node.AttrInt("axis", def))
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, c.errorf("axis %d out of range for rank %d", c.node.AttrInt("axis", def), rank)
	}
	k := &softmax[T]{log: c.node.OpType == "LogSoftmax"}
	if c.opset < 13 {
		k.outer, k.n, k.inner = numElements(shape[:axis]), numElements(shape[axis:]), 1
	} else {
		k.outer, k.n, k.inner = numElements(shape[:axis]), shape[axis], numElements(shape[axis+1:])
	}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

// rows calls f for every softmax row as strided index lists.
func (k *softmax[T]) each(f func(idx func(j int) int)) {
	for o := 0; o < k.outer; o++ {
		for in := 0; in < k.inner; in++ {
			base := o*k.n*k.inner + in
			f(func(j int) int { return base + j*k.inner })
		}
	}
}

func (k *softmax[T]) forward(ins [][]T, out []T) error {
	x := ins[0]
	if k.inner == 1 { // rows along the last axis: the kernels' loops, split across the cores
		if k.log {
			kernels.LogSoftmaxForward(k.outer, k.n, x, out)
		} else {
			kernels.SoftmaxForward(k.outer, k.n, x, out)
		}
		return nil
	}
	row := make([]T, k.n)
	k.each(func(idx func(int) int) {
		for j := range row {
			row[j] = x[idx(j)]
		}
		lse := logSumExp(row)
		for j, v := range row {
			y := float64(v) - lse
			if !k.log {
				y = math.Exp(y)
			}
			out[idx(j)] = T(y)
		}
	})
	return nil
}

// backwardReads: both derivatives come from the output.
func (k *softmax[T]) backwardReads(int) reads { return reads{out: true} }

// overwritesGrad: every row's derivative is written whole.
func (k *softmax[T]) overwritesGrad() bool { return true }

func (k *softmax[T]) backward(_ int, ins [][]T, y, gy, gx []T) error {
	if k.inner == 1 {
		if k.log {
			kernels.LogSoftmaxBackward(k.outer, k.n, y, gy, gx)
		} else {
			kernels.SoftmaxBackward(k.outer, k.n, y, gy, gx)
		}
		return nil
	}
	k.each(func(idx func(int) int) {
		var s float64
		for j := 0; j < k.n; j++ {
			if k.log {
				s += float64(gy[idx(j)])
			} else {
				s += float64(gy[idx(j)]) * float64(y[idx(j)])
			}
		}
		for j := 0; j < k.n; j++ {
			i := idx(j)
			if k.log { // dx = dy - softmax(x) * sum(dy)
				gx[i] = T(float64(gy[i]) - math.Exp(float64(y[i]))*s)
			} else { // dx = y * (dy - sum(dy*y))
				gx[i] = T(float64(y[i]) * (float64(gy[i]) - s))
			}
		}
	})
	return nil
}

// logSumExp returns log(sum(exp(row))) in float64, computed stably.
func logSumExp[T float](row []T) float64 {
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}
