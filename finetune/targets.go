package finetune

import "toolkit/dataset"

// lossTargets returns a training batch's loss targets, the labels its accuracy is
// counted against, and the loss's normaliser: the batch's share in a mean over
// several batches or ranks (the examples, or with class weights the sum of the
// examples' weights).
//
// The loss kernels take class-probability targets and divide by the batch's rows;
// class weights w scale the targets' columns, as PyTorch's CrossEntropyLoss(weight)
// weighs the log-probability of each class. For label targets (with label smoothing
// or not) PyTorch's weighted mean divides by sum_i w[y_i]: the targets are scaled by
// n / sum_i w[y_i] so that the kernel's mean is that. For blended targets (mixup,
// cutmix), which PyTorch takes as probabilities, its mean divides by n: no scale.
func (t *Trainer) lossTargets(labels []int, mix *dataset.Mix) (targets []float32, counted []int, norm float64) {
	classes, eps := t.cfg.Head.Classes, t.cfg.Loss.LabelSmoothing
	n := len(labels)
	if mix != nil {
		targets, counted = mixedTargets(labels, mix, classes, eps)
	} else {
		targets, counted = oneHot(labels, classes, eps), labels
	}
	w := t.classWeights
	if w == nil {
		return targets, counted, float64(n)
	}
	for i := range n {
		row := targets[i*classes : (i+1)*classes]
		for c := range row {
			row[c] *= float32(w[c])
		}
	}
	if mix != nil {
		return targets, counted, float64(n)
	}
	var sum float64
	for _, y := range labels {
		sum += w[y]
	}
	scale := float32(float64(n) / sum)
	for i := range targets {
		targets[i] *= scale
	}
	return targets, counted, sum
}
