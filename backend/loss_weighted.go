package backend

import (
	"fmt"
	"math"

	"toolkit/backend/kernels"
)

// LossParams are the options of the losses beyond plain cross-entropy (Options.Loss):
// the focal loss's gamma, for CrossEntropy and BinaryCrossEntropy, and the positive
// weights of BinaryCrossEntropy. Class weights need no option: they scale the target's
// columns (see kernels.FocalCrossEntropyProbs).
type LossParams struct {
	// FocalGamma is the focal loss's exponent (Lin et al. 2017): each term of the loss
	// is multiplied by (1 - p)^gamma, p the probability of the target; 0 is the plain
	// loss.
	FocalGamma float64
	// PosWeight holds, for BinaryCrossEntropy, one weight per output column for its
	// positive targets (PyTorch's BCEWithLogitsLoss pos_weight); nil: 1.
	PosWeight []float64
}

// check checks the parameters against the loss and its logits' columns.
func (p LossParams) check(loss Loss, cols int) error {
	if !(p.FocalGamma >= 0) || math.IsInf(p.FocalGamma, 0) {
		return fmt.Errorf("focal gamma %v: want a finite value >= 0", p.FocalGamma)
	}
	if p.PosWeight != nil {
		if loss != BinaryCrossEntropy {
			return fmt.Errorf("positive weights are for the binary cross-entropy")
		}
		if len(p.PosWeight) != cols {
			return fmt.Errorf("%d positive weights for %d outputs", len(p.PosWeight), cols)
		}
	}
	return nil
}

// lossKernel returns the kernel of a cross-entropy loss (CrossEntropy with a focal
// gamma, or BinaryCrossEntropy) of logits of the given shape.
func lossKernel[T float](loss Loss, p LossParams, shape []int, output string) (kernel[T], error) {
	if len(shape) != 2 {
		return nil, fmt.Errorf("the loss needs logits of shape [batch classes], the output %q is %v", output, shape)
	}
	if err := p.check(loss, shape[1]); err != nil {
		return nil, err
	}
	if loss == BinaryCrossEntropy {
		return binaryCrossEntropy[T]{rows: shape[0], cols: shape[1], p: p}, nil
	}
	if p.FocalGamma == 0 {
		return crossEntropy[T]{rows: shape[0], cols: shape[1]}, nil
	}
	return focalCrossEntropy[T]{rows: shape[0], cols: shape[1], gamma: p.FocalGamma}, nil
}

// focalCrossEntropy is the mean over rows of -sum(target * (1-p)^gamma * log p),
// p = softmax(logits), with the target given as (weighted) class probabilities.
type focalCrossEntropy[T float] struct {
	rows, cols int
	gamma      float64
}

func (k focalCrossEntropy[T]) forward(ins [][]T, out []T) error {
	out[0] = kernels.FocalCrossEntropyProbs(k.rows, k.cols, ins[0], ins[1], k.gamma)
	return nil
}

func (k focalCrossEntropy[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.FocalCrossEntropyProbsBackward(k.rows, k.cols, ins[0], ins[1], k.gamma, gout[0], gin)
	return nil
}

// binaryCrossEntropy is the mean over every element of the binary cross-entropy of
// sigmoid(logits) against targets in [0, 1], with positive weights and the focal
// modulation of LossParams (PyTorch's BCEWithLogitsLoss, torchvision's
// sigmoid_focal_loss).
type binaryCrossEntropy[T float] struct {
	rows, cols int
	p          LossParams
}

func (k binaryCrossEntropy[T]) forward(ins [][]T, out []T) error {
	out[0] = kernels.BCEWithLogits(k.rows, k.cols, ins[0], ins[1], k.p.PosWeight, k.p.FocalGamma)
	return nil
}

func (k binaryCrossEntropy[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	kernels.BCEWithLogitsBackward(k.rows, k.cols, ins[0], ins[1], k.p.PosWeight, k.p.FocalGamma, gout[0], gin)
	return nil
}
