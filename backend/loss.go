package backend

import "toolkit/backend/kernels"

// crossEntropy is the mean over rows of -sum(target * log_softmax(logits)), with the
// target given as class probabilities (a one-hot or smoothed one-hot row per example).
type crossEntropy[T float] struct{ rows, cols int }

func (k crossEntropy[T]) forward(ins [][]T, out []T) error {
	out[0] = kernels.SoftmaxCrossEntropyProbs(k.rows, k.cols, ins[0], ins[1])
	return nil
}

func (k crossEntropy[T]) backwardReads(int) reads { return readsIn(0, 1) }

func (k crossEntropy[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.SoftmaxCrossEntropyProbsBackward(k.rows, k.cols, ins[0], ins[1], gout[0], gin)
	return nil
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

func (weightedSum[T]) backwardReads(int) reads { return readsIn(1) }

func (weightedSum[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	for j, w := range ins[1] {
		gin[j] = gout[0] * w
	}
	return nil
}
