// Package multilabel holds the figures of a multi-label classifier, as scikit-learn
// computes them: each label's average precision and their mean (mAP), precision,
// recall and F1 at a threshold per label, micro and macro F1, and the threshold of each
// label's best F1 (Tune), which finetune tunes on validation data and evaluate reads
// back from the model. Probabilities and targets are n x k row-major, a target a
// positive where it is at least 0.5.
package multilabel

import (
	"cmp"
	"math"
	"slices"
)

// byScore returns the examples' indices by decreasing score (ties in their order) and
// the number of positives.
func byScore(scores []float64, truth []bool) (order []int, positives int) {
	order = make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	for _, t := range truth {
		if t {
			positives++
		}
	}
	return order, positives
}

// AveragePrecision is scikit-learn's average_precision_score of one label: the sum over
// the distinct scores, highest first, of (recall gained) x precision, where every
// example scoring at least the score is predicted positive. It is NaN for a label
// without positives.
func AveragePrecision(scores []float64, truth []bool) float64 {
	order, positives := byScore(scores, truth)
	if positives == 0 {
		return math.NaN()
	}
	var ap float64
	tp, seen, lastRecall := 0, 0, 0.0
	for i := 0; i < len(order); {
		j := i
		for j < len(order) && scores[order[j]] == scores[order[i]] {
			if truth[order[j]] {
				tp++
			}
			seen++
			j++
		}
		recall := float64(tp) / float64(positives)
		ap += (recall - lastRecall) * float64(tp) / float64(seen)
		lastRecall = recall
		i = j
	}
	return ap
}

// BestThreshold returns the threshold of the best F1 for one label (scikit-learn's
// precision_recall_curve, the lowest of the thresholds that tie): an example is
// predicted positive where its score reaches the threshold. The threshold returned lies
// halfway between that score and the next lower one (the same predictions on these
// data, a margin on new ones); 0.5 for a label without positives.
func BestThreshold(scores []float64, truth []bool) (threshold, f1 float64) {
	order, positives := byScore(scores, truth)
	if positives == 0 {
		return 0.5, 0
	}
	threshold, best := 0.5, -1.0
	tp, seen := 0, 0
	for i := 0; i < len(order); {
		j := i
		for j < len(order) && scores[order[j]] == scores[order[i]] {
			if truth[order[j]] {
				tp++
			}
			seen++
			j++
		}
		f := 2 * float64(tp) / float64(seen+positives)
		if f >= best { // a tie goes to the lower threshold, as numpy's argmax over ascending thresholds
			best = f
			threshold = scores[order[i]]
			if j < len(order) {
				threshold = (threshold + scores[order[j]]) / 2
			} else {
				threshold /= 2
			}
		}
		i = j
	}
	return threshold, best
}

// Scores are a multi-label model's figures on data: the mean average precision
// over the labels with positives, the micro and macro F1 at the thresholds (macro over
// the labels with positives), and each label's. They are scikit-learn's
// average_precision_score(average="macro") and f1_score(average="micro" and "macro",
// zero_division=0), but that a label without positives is left out of the means.
type Scores struct {
	MAP, MicroF1, MacroF1 float64
	Labels                []Label
}

// Label are one label's figures.
type Label struct {
	AP, Precision, Recall, F1 float64
	Support                   int
}

// Score computes Scores from probabilities and multi-hot targets (n x k) at
// the given thresholds (one per label).
func Score(probs []float64, hot []float32, k int, thresholds []float64) Scores {
	n := len(probs) / k
	var s Scores
	var tpAll, fpAll, fnAll int
	var apSum, f1Sum float64
	present := 0
	scores, truth := make([]float64, n), make([]bool, n)
	for c := range k {
		var ls Label
		var tp, fp, fn int
		for i := range n {
			scores[i], truth[i] = probs[i*k+c], hot[i*k+c] >= 0.5
			yes := scores[i] >= thresholds[c]
			switch {
			case yes && truth[i]:
				tp++
			case yes:
				fp++
			case truth[i]:
				fn++
			}
		}
		ls.Support = tp + fn
		if tp+fp > 0 {
			ls.Precision = float64(tp) / float64(tp+fp)
		}
		if tp+fn > 0 {
			ls.Recall = float64(tp) / float64(tp+fn)
		}
		if tp > 0 {
			ls.F1 = 2 * float64(tp) / float64(2*tp+fp+fn)
		}
		ls.AP = AveragePrecision(scores, truth)
		if ls.Support > 0 {
			present++
			apSum += ls.AP
			f1Sum += ls.F1
		}
		tpAll, fpAll, fnAll = tpAll+tp, fpAll+fp, fnAll+fn
		s.Labels = append(s.Labels, ls)
	}
	if present > 0 {
		s.MAP, s.MacroF1 = apSum/float64(present), f1Sum/float64(present)
	}
	if tpAll > 0 {
		s.MicroF1 = 2 * float64(tpAll) / float64(2*tpAll+fpAll+fnAll)
	}
	return s
}

// Tune returns each label's BestThreshold on probabilities and multi-hot
// targets (n x k).
func Tune(probs []float64, hot []float32, k int) []float64 {
	n := len(probs) / k
	out := make([]float64, k)
	scores, truth := make([]float64, n), make([]bool, n)
	for c := range k {
		for i := range n {
			scores[i], truth[i] = probs[i*k+c], hot[i*k+c] >= 0.5
		}
		out[c], _ = BestThreshold(scores, truth)
	}
	return out
}

// Halves is k thresholds of 0.5.
func Halves(k int) []float64 {
	out := make([]float64, k)
	for i := range out {
		out[i] = 0.5
	}
	return out
}
