package kernels

import "math"

// SoftmaxForward computes y = softmax(x) over each row of the [rows, cols]
// matrix x, subtracting the row maximum first so that exp never overflows.
// The caller flattens the tensor around the ONNX axis (opset >= 13: one
// axis; older opsets: the product of the axes from axis on). y may alias x.
func SoftmaxForward[T Float](rows, cols int, x, y []T) {
	const name = "SoftmaxForward"
	need(name, "x", x, rows*cols)
	need(name, "y", y, rows*cols)
	var expShift func(n int, x *float32, shift float32, y *float32)
	if kern := packedKernel[T](); kern != nil && cols > 0 {
		expShift = kern.expShift
	}
	forRows(rows, cols, func(r int) {
		xs, ys := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
		mx := rowMax(xs)
		var s float64
		if expShift != nil {
			// float32: the exponentials in the kernel's vector loop, summed here in
			// float64 in the same order on every instruction set.
			expShift(cols, &as32(xs)[0], float32(mx), &as32(ys)[0])
			s = sum(ys)
		} else {
			for i, v := range xs {
				e := math.Exp(float64(v - mx))
				ys[i] = T(e)
				s += e
			}
		}
		scaleT(T(1/s), ys, ys)
	})
}

// forRows runs row(r) for every row of a [rows, cols] matrix, the rows split across
// the cores when there are enough values (an attention layer's softmax: a ViT-B/16's
// 16 x 12 x 197 rows of 197 at batch 16). Each row is computed alone, as in one loop:
// the result does not depend on the split.
func forRows(rows, cols int, row func(r int)) {
	const expCost = 16 // an exp costs about this many additions
	parallelFor(rows, workers(rows, cols*expCost), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			row(r)
		}
	})
}

// SoftmaxBackward computes dx = y*(dy - sum(dy*y)) per row, from the
// softmax output y and its gradient dy. dx may alias dy.
func SoftmaxBackward[T Float](rows, cols int, y, dy, dx []T) {
	const name = "SoftmaxBackward"
	need(name, "y", y, rows*cols)
	need(name, "dy", dy, rows*cols)
	need(name, "dx", dx, rows*cols)
	forRows(rows, cols, func(r int) {
		ys, gs, ds := y[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
		d := T(dot64(ys, gs))
		for i, v := range ys {
			ds[i] = v * (gs[i] - d)
		}
	})
}

// LogSoftmaxForward computes y = x - max - log(sum(exp(x - max))) over each
// row of the [rows, cols] matrix x. y may alias x.
func LogSoftmaxForward[T Float](rows, cols int, x, y []T) {
	const name = "LogSoftmaxForward"
	need(name, "x", x, rows*cols)
	need(name, "y", y, rows*cols)
	forRows(rows, cols, func(r int) {
		xs, ys := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
		lse := T(logSumExp(xs))
		for i, v := range xs {
			ys[i] = v - lse
		}
	})
}

// LogSoftmaxBackward computes dx = dy - exp(y)*sum(dy) per row, from the
// log-softmax output y and its gradient dy. dx may alias dy.
func LogSoftmaxBackward[T Float](rows, cols int, y, dy, dx []T) {
	const name = "LogSoftmaxBackward"
	need(name, "y", y, rows*cols)
	need(name, "dy", dy, rows*cols)
	need(name, "dx", dx, rows*cols)
	forRows(rows, cols, func(r int) {
		ys, gs, ds := y[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
		s := sum(gs)
		for i, v := range ys {
			ds[i] = T(float64(gs[i]) - math.Exp(float64(v))*s)
		}
	})
}

// rowMax returns the largest value of xs (0 where there is none, or where all are
// -Inf; NaN where one is NaN), in four interleaved maxima: without branches, which
// mispredicted on most values.
func rowMax[T Float](xs []T) T {
	inf := negInf[T]()
	m0, m1, m2, m3 := inf, inf, inf, inf
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		m0, m1, m2, m3 = max(m0, xs[i]), max(m1, xs[i+1]), max(m2, xs[i+2]), max(m3, xs[i+3])
	}
	for ; i < len(xs); i++ {
		m0 = max(m0, xs[i])
	}
	mx := max(max(m0, m1), max(m2, m3))
	if math.IsInf(float64(mx), -1) {
		return 0 // all -inf (or empty): keep x - max finite
	}
	return mx
}

// logSumExp returns log(sum(exp(xs))) in float64, computed stably.
func logSumExp[T Float](xs []T) float64 {
	mx := float64(rowMax(xs))
	var s float64
	for _, v := range xs {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

// Label is the integer type of class labels.
type Label interface {
	~int | ~int32 | ~int64 | ~uint8
}

// SoftmaxCrossEntropy returns the mean over the n rows of the cross-entropy
// between softmax(logits[i]) and the smoothed one-hot target of labels[i],
// with PyTorch's label smoothing (nn.CrossEntropyLoss(label_smoothing=eps)):
//
//	target = (1-eps)*onehot(label) + eps/k
//	loss_i = -sum_j target_j * log_softmax(logits_i)_j
//
// logits is [n, k]. Labels outside [0, k) panic. It is computed in float64.
func SoftmaxCrossEntropy[T Float, L Label](n, k int, logits []T, labels []L, eps float64) T {
	const name = "SoftmaxCrossEntropy"
	need(name, "logits", logits, n*k)
	need(name, "labels", labels, n)
	if n == 0 {
		return 0
	}
	var total float64
	for i := 0; i < n; i++ {
		row := logits[i*k : (i+1)*k]
		y := checkLabel(name, labels[i], k)
		lse := logSumExp(row)
		// -sum_j target_j*(x_j - lse) = lse - (1-eps)*x_y - eps/k*sum_j x_j
		l := lse - (1-eps)*float64(row[y])
		if eps != 0 {
			l -= eps / float64(k) * sum(row)
		}
		total += l
	}
	return T(total / float64(n))
}

// SoftmaxCrossEntropyBackward computes dlogits = dloss * (softmax(logits) -
// target) / n, the gradient of [SoftmaxCrossEntropy] scaled by the upstream
// gradient dloss of the loss (1 when the loss is the objective). dlogits is
// overwritten.
func SoftmaxCrossEntropyBackward[T Float, L Label](n, k int, logits []T, labels []L, eps float64, dloss T, dlogits []T) {
	const name = "SoftmaxCrossEntropyBackward"
	need(name, "logits", logits, n*k)
	need(name, "labels", labels, n)
	need(name, "dlogits", dlogits, n*k)
	if n == 0 {
		return
	}
	scale := float64(dloss) / float64(n)
	off := eps / float64(k)
	for i := 0; i < n; i++ {
		row, ds := logits[i*k:(i+1)*k], dlogits[i*k:(i+1)*k]
		y := checkLabel(name, labels[i], k)
		mx := float64(rowMax(row))
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		inv := 1 / s
		for j, v := range row {
			t := off
			if j == y {
				t += 1 - eps
			}
			ds[j] = T((math.Exp(float64(v)-mx)*inv - t) * scale)
		}
	}
}

// SoftmaxCrossEntropyProbs returns the mean over the n rows of the cross-entropy
// between softmax(logits[i]) and the class probabilities target[i], as PyTorch's
// nn.CrossEntropyLoss computes it for probability targets:
//
//	loss_i = -sum_j target_ij * log_softmax(logits_i)_j
//
// A smoothed one-hot target, (1-eps)*onehot(label) + eps/k, gives the loss of
// [SoftmaxCrossEntropy] with label smoothing eps. logits and target are [n, k].
// It is computed in float64.
func SoftmaxCrossEntropyProbs[T Float](n, k int, logits, target []T) T {
	const name = "SoftmaxCrossEntropyProbs"
	need(name, "logits", logits, n*k)
	need(name, "target", target, n*k)
	if n == 0 {
		return 0
	}
	var total float64
	for i := 0; i < n; i++ {
		row, ts := logits[i*k:(i+1)*k], target[i*k:(i+1)*k]
		lse := logSumExp(row)
		for j, v := range row {
			if t := float64(ts[j]); t != 0 {
				total -= t * (float64(v) - lse)
			}
		}
	}
	return T(total / float64(n))
}

// SoftmaxCrossEntropyProbsBackward computes dlogits = dloss * (softmax(logits) *
// sum_j target_ij - target) / n, the gradient of [SoftmaxCrossEntropyProbs] scaled by
// the upstream gradient dloss (the target rows need not sum to 1). dlogits is
// overwritten.
func SoftmaxCrossEntropyProbsBackward[T Float](n, k int, logits, target []T, dloss T, dlogits []T) {
	const name = "SoftmaxCrossEntropyProbsBackward"
	need(name, "logits", logits, n*k)
	need(name, "target", target, n*k)
	need(name, "dlogits", dlogits, n*k)
	if n == 0 {
		return
	}
	scale := float64(dloss) / float64(n)
	for i := 0; i < n; i++ {
		row, ts, ds := logits[i*k:(i+1)*k], target[i*k:(i+1)*k], dlogits[i*k:(i+1)*k]
		lse := logSumExp(row)
		var tsum float64
		for _, t := range ts {
			tsum += float64(t)
		}
		for j, v := range row {
			ds[j] = T((math.Exp(float64(v)-lse)*tsum - float64(ts[j])) * scale)
		}
	}
}

func checkLabel[L Label](name string, l L, k int) int {
	y := int(l)
	if y < 0 || y >= k {
		panic("kernels: " + name + ": label " + itoa(y) + " outside [0, " + itoa(k) + ")")
	}
	return y
}

// ArgmaxRows writes into out[i] the column of the largest value of row i of
// the [rows, cols] matrix x, the lowest such column on ties. NaN is ignored
// unless a row is all NaN (then 0).
func ArgmaxRows[T Float](rows, cols int, x []T, out []int) {
	const name = "ArgmaxRows"
	need(name, "x", x, rows*cols)
	need(name, "out", out, rows)
	for r := 0; r < rows; r++ {
		out[r] = argmax(x[r*cols : (r+1)*cols])
	}
}

func argmax[T Float](xs []T) int {
	best := -1
	var bv T
	for j, v := range xs {
		if v != v {
			continue
		}
		if best < 0 || v > bv {
			best, bv = j, v
		}
	}
	return max(best, 0)
}

// CorrectCount returns how many of the n rows of logits [n, k] have their
// argmax (lowest index on ties) equal to the label.
func CorrectCount[T Float, L Label](n, k int, logits []T, labels []L) int {
	const name = "CorrectCount"
	need(name, "logits", logits, n*k)
	need(name, "labels", labels, n)
	c := 0
	for i := 0; i < n; i++ {
		if argmax(logits[i*k:(i+1)*k]) == int(labels[i]) {
			c++
		}
	}
	return c
}

// Accuracy returns [CorrectCount] divided by n (0 when n is 0).
func Accuracy[T Float, L Label](n, k int, logits []T, labels []L) float64 {
	if n == 0 {
		return 0
	}
	return float64(CorrectCount(n, k, logits, labels)) / float64(n)
}
