package evaluate

import (
	"cmp"
	"context"
	"math"
	"slices"

	"toolkit/dataset"
)

// Scores are an evaluation's figures over its images.
type Scores struct {
	Loss         float64        `json:"loss"` // mean cross-entropy
	Accuracy     float64        `json:"accuracy"`
	TopK         int            `json:"top_k,omitempty"` // 0: not measured (k would cover every class)
	TopKAccuracy float64        `json:"top_k_accuracy,omitempty"`
	PerClass     []ClassMetrics `json:"per_class"`
	MacroF1      float64        `json:"macro_f1"`
	// Confusion[i][j] counts the images of class i predicted as class j.
	Confusion [][]int `json:"confusion"`
}

// score computes the figures of n images: labels[i] is image i's class, losses[i] its
// cross-entropy, rank(i) the classes by decreasing probability.
func score(k, topK int, classes []string, labels []int, losses []float64, rank func(i int) []int) Scores {
	s := Scores{TopK: topK, Confusion: make([][]int, k)}
	for i := range s.Confusion {
		s.Confusion[i] = make([]int, k)
	}
	var lossSum float64
	topk := 0
	for i, want := range labels {
		order := rank(i)
		s.Confusion[want][order[0]]++
		if topK > 0 && slices.Contains(order[:topK], want) {
			topk++
		}
		lossSum += losses[i]
	}
	n := float64(len(labels))
	s.Loss = lossSum / n
	if topK > 0 {
		s.TopKAccuracy = float64(topk) / n
	}
	correct := 0
	for i := range k {
		correct += s.Confusion[i][i]
	}
	s.Accuracy = float64(correct) / n
	var f1Sum float64
	withSupport := 0
	for i, cl := range classes {
		var predicted, support int
		for j := range k {
			predicted += s.Confusion[j][i]
			support += s.Confusion[i][j]
		}
		m := ClassMetrics{Class: cl, Support: support}
		tp := float64(s.Confusion[i][i])
		if predicted > 0 {
			m.Precision = tp / float64(predicted)
		}
		if support > 0 {
			m.Recall = tp / float64(support)
		}
		if m.Precision+m.Recall > 0 {
			m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
		}
		if support > 0 {
			f1Sum += m.F1
			withSupport++
		}
		s.PerClass = append(s.PerClass, m)
	}
	if withSupport > 0 {
		s.MacroF1 = f1Sum / float64(withSupport)
	}
	return s
}

// logSumExp is log(sum(exp(row))), computed in float64 from the largest value.
func logSumExp(row []float32) float64 {
	m := float64(slices.Max(row))
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// ConfusedPair is a pair of classes and how many images of the first were predicted as
// the second.
type ConfusedPair struct {
	True      string `json:"true"`
	Predicted string `json:"predicted"`
	Count     int    `json:"count"`
}

// mostConfused lists the off-diagonal cells of the confusion matrix that are not zero,
// largest first (ties: by true class, then predicted, in the model's order).
func mostConfused(classes []string, confusion [][]int) []ConfusedPair {
	type cell struct{ i, j, n int }
	var cells []cell
	for i, row := range confusion {
		for j, n := range row {
			if i != j && n > 0 {
				cells = append(cells, cell{i, j, n})
			}
		}
	}
	slices.SortStableFunc(cells, func(a, b cell) int { return cmp.Compare(b.n, a.n) })
	out := make([]ConfusedPair, len(cells))
	for x, c := range cells {
		out[x] = ConfusedPair{True: classes[c.i], Predicted: classes[c.j], Count: c.n}
	}
	return out
}

// run computes the logits of every image of data with the evaluation transform, by
// example index (n x classes), and with opts.TTA the probabilities averaged over the
// test-time views (dataset.TTAViews, each also flipped left to right).
func (c *Classifier) run(ctx context.Context, data dataset.Examples, opts Options) (logits []float32, tta []float64, err error) {
	batch := opts.batch()
	n, k := data.Len(), len(c.Classes)
	views := []dataset.Preprocess{c.Preprocess}
	if opts.TTA {
		views = dataset.TTAViews(c.Preprocess)
		tta = make([]float64, n*k)
	}
	logits = make([]float32, n*k)
	addProbs := func(b dataset.Batch, out []float32) {
		for i, ix := range b.Indices[:b.N] {
			for j, p := range c.Probabilities(out[i*k : (i+1)*k]) {
				tta[ix*k+j] += p
			}
		}
	}
	pre := c.Preprocess
	for vi, view := range views {
		loader, err := dataset.NewLoader(data, dataset.LoaderOptions{BatchSize: batch, Workers: opts.Workers, Preprocess: view})
		if err != nil {
			return nil, nil, err
		}
		for b, err := range loader.Epoch(ctx, 0) {
			if err != nil {
				return nil, nil, err
			}
			out, err := c.Logits(b.Images, b.N)
			if err != nil {
				return nil, nil, err
			}
			if vi == 0 {
				for i, ix := range b.Indices[:b.N] {
					copy(logits[ix*k:(ix+1)*k], out[i*k:(i+1)*k])
				}
			}
			if !opts.TTA {
				continue
			}
			addProbs(b, out)
			dataset.FlipInputs(b.Images, b.N, pre.Channels, pre.Height, pre.Width)
			if out, err = c.Logits(b.Images, b.N); err != nil {
				return nil, nil, err
			}
			addProbs(b, out)
		}
	}
	for i := range tta {
		tta[i] /= float64(2 * len(views))
	}
	return logits, tta, nil
}
