package finetune

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"toolkit/dataset"
	"toolkit/finetune/diagnose"
)

// Multi-label training (head.task: multilabel): each image has any number of the
// labels (a CSV's, dataset.LabelSet), the head gives one logit per label, its sigmoid
// the label's probability, and the loss is the binary cross-entropy (PyTorch's
// BCEWithLogitsLoss, with loss.pos_weight and loss.focal_gamma). A label is predicted
// where its probability reaches its threshold: 0.5 while training; each validated
// epoch tunes one per label on the validation data (the threshold of the best F1) and
// the exported model carries them (package modelmeta).

// splitTargets are the multi-hot targets (examples x labels) of each split, by example
// index.
type splitTargets struct {
	train, val, test []float32
}

func newSplitTargets(d *Data) splitTargets {
	k := len(d.Classes)
	return splitTargets{train: multiHot(d.Train, k), val: multiHot(d.Val, k), test: multiHot(d.Test, k)}
}

// multiHot is ex's label sets as rows of 0 and 1 (nil for no collection).
func multiHot(ex dataset.Examples, k int) []float32 {
	if ex == nil {
		return nil
	}
	out := make([]float32, ex.Len()*k)
	for i := range ex.Len() {
		for _, l := range dataset.LabelSet(ex, i) {
			out[i*k+l] = 1
		}
	}
	return out
}

// multiTargets returns the targets of a multi-label batch: each example's row of hot,
// blended with its partner's (the example before it in the batch) by mixup or cutmix.
// The loss's normaliser is the batch's examples (the binary cross-entropy is a mean
// over examples and labels, and every batch has the same labels).
func multiTargets(indices []int, mix *dataset.Mix, hot []float32, k int) ([]float32, float64) {
	n := len(indices)
	out := make([]float32, n*k)
	for i, ix := range indices {
		copy(out[i*k:(i+1)*k], hot[ix*k:(ix+1)*k])
	}
	if mix != nil {
		l, r := float32(mix.Lambda), float32(1-mix.Lambda)
		own := slices.Clone(out)
		for i := range n {
			p := (i + n - 1) % n
			for j := range k {
				out[i*k+j] = l*own[i*k+j] + r*own[p*k+j]
			}
		}
	}
	return out, float64(n)
}

// multiCounts counts a multi-label batch's right decisions (a logit >= 0, probability
// >= 0.5, against a target >= 0.5: fastai's accuracy_multi, Keras' binary_accuracy) and
// its positive predictions per label into predicted.
func multiCounts(logits, targets []float32, k int, predicted []int) (correct int) {
	for i, z := range logits {
		yes := z >= 0
		if yes == (targets[i] >= 0.5) {
			correct++
		}
		if yes {
			predicted[i%k]++
		}
	}
	return correct
}

// posWeights returns loss.pos_weight's weights (nil when unset): balanced ones are each
// label's negatives over its positives in the training split (what PyTorch's
// BCEWithLogitsLoss documentation suggests).
func posWeights(c WeightsConfig, data DataSummary) ([]float64, error) {
	switch {
	case c.Balanced:
		for _, sp := range data.Splits {
			if sp.Split != "train" {
				continue
			}
			var none []string
			out := make([]float64, len(sp.PerClass))
			for i, pos := range sp.PerClass {
				if pos == 0 {
					none = append(none, data.Classes[i])
					continue
				}
				out[i] = float64(sp.Images-pos) / float64(pos)
			}
			if len(none) > 0 {
				return nil, fmt.Errorf("no training image has label %s: no weight to balance it by", strings.Join(none, ", "))
			}
			return out, nil
		}
		return nil, fmt.Errorf("no training data to count")
	case c.Weights != nil:
		if len(c.Weights) != len(data.Classes) {
			return nil, fmt.Errorf("%d weights for %d labels", len(c.Weights), len(data.Classes))
		}
		return c.Weights, nil
	}
	return nil, nil
}

// multiChance is chance for the diagnostics of a multi-label run: a model that ignores
// its input predicts each label's frequency pi in the training data; its accuracy is
// the mean over the labels of max(pi, 1-pi), its training loss the mean of the loss of
// predicting pi (with the positive weights and the focal term).
func multiChance(data DataSummary, posWeight []float64, gamma float64) diagnose.ChanceLevel {
	var train SplitSummary
	for _, sp := range data.Splits {
		if sp.Split == "train" {
			train = sp
		}
	}
	k := len(train.PerClass)
	var acc, loss float64
	for c, pos := range train.PerClass {
		pi := float64(pos) / float64(max(train.Images, 1))
		acc += max(pi, 1-pi)
		w := 1.0
		if posWeight != nil {
			w = posWeight[c]
		}
		if pi > 0 {
			loss -= pi * w * math.Pow(1-pi, gamma) * math.Log(pi)
		}
		if pi < 1 {
			loss -= (1 - pi) * math.Pow(pi, gamma) * math.Log1p(-pi)
		}
	}
	acc /= float64(k)
	loss /= float64(k)
	return diagnose.ChanceLevel{Acc: acc, Loss: loss, NoCollapse: true,
		LossText: fmt.Sprintf("%.3f, the loss of predicting each label's frequency in the training data", loss)}
}
