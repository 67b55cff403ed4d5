package backend

import "math"

// crossEntropy is the mean over rows of -sum(target * log_softmax(logits)).
type crossEntropy[T float] struct{ rows, cols int }

func (k crossEntropy[T]) forward(ins [][]T, out []T) error {
	z, t := ins[0], ins[1]
	var total float64
	for r := 0; r < k.rows; r++ {
		row, tr := z[r*k.cols:(r+1)*k.cols], t[r*k.cols:(r+1)*k.cols]
		lse := logSumExp(row)
		for j, v := range row {
			total -= float64(tr[j]) * (float64(v) - lse)
		}
	}
	out[0] = T(total / float64(k.rows))
	return nil
}

func (k crossEntropy[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	z, t := ins[0], ins[1]
	scale := float64(gout[0]) / float64(k.rows)
	for r := 0; r < k.rows; r++ {
		row := z[r*k.cols : (r+1)*k.cols]
		lse := logSumExp(row)
		// d/dz of -sum(t log softmax z) is softmax(z)*sum(t) - t.
		var tsum float64
		for _, tv := range t[r*k.cols : (r+1)*k.cols] {
			tsum += float64(tv)
		}
		for j, v := range row {
			p := math.Exp(float64(v) - lse)
			gin[r*k.cols+j] = T(scale * (p*tsum - float64(t[r*k.cols+j])))
		}
	}
	return nil
}

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

// weightedSum is sum(output * target).
type weightedSum[T float] struct{}

func (weightedSum[T]) forward(ins [][]T, out []T) error {
	var s float64
	for i, v := range ins[0] {
		s += float64(v) * float64(ins[1][i])
	}
	out[0] = T(s)
	return nil
}

func (weightedSum[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	for j, w := range ins[1] {
		gin[j] = gout[0] * w
	}
	return nil
}
