package finetune

import (
	"context"

	"toolkit/backend/kernels"
	"toolkit/dataset"
)

// evalScores are a model's figures on validation or test data.
type evalScores struct {
	// Loss is the mean plain cross-entropy (no label smoothing, class weights or focal
	// term), Acc the accuracy.
	Loss, Acc float64
	// MacroF1 is the mean F1 over the classes the data holds (as evaluate computes it).
	MacroF1 float64
}

// score runs the batches of l (evalBatches) through the evaluation program and
// returns their figures, over every rank's share.
func (t *Trainer) score(ctx context.Context, l *dataset.Loader) (evalScores, error) {
	batches, err := t.evalBatches(ctx, l)
	if err != nil {
		return evalScores{}, err
	}
	classes := t.cfg.Head.Classes
	var sum float64
	var right, seen int
	// counts holds, per class, its true positives, its predictions and its examples.
	counts := make([]float64, 3*classes)
	pred := make([]int, t.cfg.Data.BatchSize)
	for b, err := range batches {
		if err != nil {
			return evalScores{}, err
		}
		if b.N == 0 { // this rank's share of a short last batch
			continue
		}
		prog, err := t.programFrom(b.N, false, b.From)
		if err != nil {
			return evalScores{}, err
		}
		if err := prog.Run([][]float32{b.Images}, oneHot(b.Labels, classes, 0)); err != nil {
			return evalScores{}, err
		}
		sum += prog.Loss() * float64(b.N)
		logits := prog.Output(0)
		right += kernels.CorrectCount(b.N, classes, logits, b.Labels)
		seen += b.N
		pred = pred[:b.N]
		kernels.ArgmaxRows(b.N, classes, logits, pred)
		for i, y := range b.Labels {
			if pred[i] == y {
				counts[y]++
			}
			counts[classes+pred[i]]++
			counts[2*classes+y]++
		}
	}
	r, n := float64(right), float64(seen)
	totals := append([]*float64{&sum, &r, &n}, pointers(counts)...)
	if err := t.reduceSums(totals...); err != nil {
		return evalScores{}, err
	}
	if n == 0 {
		return evalScores{}, nil
	}
	return evalScores{Loss: sum / n, Acc: r / n, MacroF1: macroF1(counts[:classes], counts[classes:2*classes], counts[2*classes:])}, nil
}

// pointers returns a pointer to each element of x.
func pointers(x []float64) []*float64 {
	out := make([]*float64, len(x))
	for i := range x {
		out[i] = &x[i]
	}
	return out
}

// macroF1 is the mean F1 over the classes with examples, from each class's true
// positives, predictions and examples (F1 0 where precision and recall are 0), as
// package evaluate and scikit-learn's f1_score(average="macro", labels=the classes
// present) compute it.
func macroF1(tp, predicted, support []float64) float64 {
	var f1Sum float64
	present := 0
	for c := range tp {
		if support[c] == 0 {
			continue
		}
		present++
		var p, r float64
		if predicted[c] > 0 {
			p = tp[c] / predicted[c]
		}
		r = tp[c] / support[c]
		if p+r > 0 {
			f1Sum += 2 * p * r / (p + r)
		}
	}
	if present == 0 {
		return 0
	}
	return f1Sum / float64(present)
}
