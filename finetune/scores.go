package finetune

import (
	"context"
	"iter"
	"math"

	"toolkit/backend/kernels"
	"toolkit/dataset"
	"toolkit/internal/multilabel"
)

// evalScores are a model's figures on validation or test data.
type evalScores struct {
	// Loss is the mean plain cross-entropy (no label smoothing, class weights or focal
	// term; for a multi-label task the binary cross-entropy), Acc the accuracy (for a
	// multi-label task over every label's decision at 0.5).
	Loss, Acc float64
	// MacroF1 is the mean F1 over the classes the data holds (as evaluate computes it;
	// for a multi-label task over the labels with positives, at 0.5).
	MacroF1 float64
	// MAP and MicroF1 (at 0.5) are a multi-label task's, and Thresholds the threshold of
	// each label's best F1 on these data.
	MAP, MicroF1 float64
	Thresholds   []float64
}

// score runs the batches of l (evalBatches) through the evaluation program and
// returns their figures, over every rank's share.
func (t *Trainer) score(ctx context.Context, l *dataset.Loader) (evalScores, error) {
	if t.averaged() {
		t.swapEMA() // evaluated with the averaged weights
		defer t.swapEMA()
	}
	batches, err := t.evalBatches(ctx, l)
	if err != nil {
		return evalScores{}, err
	}
	if t.multi {
		hot := t.hot.test
		if l == t.valLoader {
			hot = t.hot.val
		}
		return t.scoreMulti(batches, hot)
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

// scoreMulti is score for a multi-label task: hot holds the data's multi-hot targets
// by example index. Every example's probabilities are gathered (over the ranks too) for
// the mean average precision and the thresholds.
func (t *Trainer) scoreMulti(batches iter.Seq2[trainBatch, error], hot []float32) (evalScores, error) {
	k := t.cfg.Head.Classes
	probs := make([]float64, len(hot))
	var sum float64
	var right, seen int
	for b, err := range batches {
		if err != nil {
			return evalScores{}, err
		}
		if b.N == 0 {
			continue
		}
		prog, err := t.programFrom(b.N, false, b.From)
		if err != nil {
			return evalScores{}, err
		}
		targets, _ := multiTargets(b.Indices, nil, hot, k)
		if err := prog.Run([][]float32{b.Images}, targets); err != nil {
			return evalScores{}, err
		}
		sum += prog.Loss() * float64(b.N)
		seen += b.N
		logits := prog.Output(0)[:b.N*k]
		right += multiCounts(logits, targets, k, make([]int, k))
		for i, ix := range b.Indices {
			for j := range k {
				probs[ix*k+j] = sigmoid(float64(logits[i*k+j]))
			}
		}
	}
	r, n := float64(right), float64(seen)
	if err := t.reduceSums(&sum, &r, &n); err != nil {
		return evalScores{}, err
	}
	if err := t.reduceBuffer(probs); err != nil {
		return evalScores{}, err
	}
	if n == 0 {
		return evalScores{}, nil
	}
	ms := multilabel.Score(probs, hot, k, multilabel.Halves(k))
	return evalScores{Loss: sum / n, Acc: r / (n * float64(k)), MacroF1: ms.MacroF1, MAP: ms.MAP, MicroF1: ms.MicroF1,
		Thresholds: multilabel.Tune(probs, hot, k)}, nil
}

// sigmoid is 1 / (1 + exp(-x)), without overflow.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
