package evaluate

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"toolkit/dataset"
	"toolkit/internal/multilabel"
)

// LabelMetrics are one label's scores on multi-label data at its threshold
// (scikit-learn's, 0 where a ratio has no denominator); AP is its average precision,
// NaN (null in JSON: absent) for a label without positives in the data.
type LabelMetrics struct {
	Label     string   `json:"label"`
	Threshold float64  `json:"threshold"`
	AP        *float64 `json:"ap,omitempty"`
	Precision float64  `json:"precision"`
	Recall    float64  `json:"recall"`
	F1        float64  `json:"f1"`
	Support   int      `json:"support"` // images with the label
}

// MultiScores are a multi-label evaluation's figures.
type MultiScores struct {
	Loss     float64 `json:"loss"`     // mean binary cross-entropy over images and labels
	Accuracy float64 `json:"accuracy"` // of every label's decision at its threshold
	// MAP is the mean average precision over the labels with positives; MicroF1 and
	// MacroF1 are at the thresholds (the macro mean over the labels with positives).
	MAP      float64        `json:"map"`
	MicroF1  float64        `json:"micro_f1"`
	MacroF1  float64        `json:"macro_f1"`
	PerLabel []LabelMetrics `json:"per_label"`
}

// MultiReport is the evaluation of a multi-label model.
type MultiReport struct {
	Model  string   `json:"model"`
	Data   string   `json:"data"`
	Labels []string `json:"labels"` // the model's, in output order
	Images int      `json:"images"`
	MultiScores
	// TTA, with Options.TTA, are the scores of the probabilities averaged over the
	// test-time views.
	TTA      *MultiScores   `json:"tta,omitempty"`
	TTAViews int            `json:"tta_views,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
	Skipped  []SkippedImage `json:"skipped,omitempty"`
}

// EvaluateCSV evaluates a multi-label classifier on a CSV of images and their labels
// (dataset.OpenCSV): the CSV's labels must be among the model's.
func EvaluateCSV(ctx context.Context, c *Classifier, path string, opts Options) (*MultiReport, error) {
	src, err := dataset.OpenCSV(path, dataset.CSVOptions{MultiLabel: true,
		Options: dataset.Options{Workers: opts.Workers, OnBadImage: opts.OnBadImage, Classes: c.Classes}})
	if err != nil {
		return nil, badImageAdvice(err)
	}
	r, err := EvaluateMultiLabel(ctx, c, src, src.Classes(), path, opts)
	if r != nil {
		r.Skipped = SkippedImages(src.Skipped())
	}
	return r, err
}

// EvaluateMultiLabel evaluates a multi-label classifier on examples whose label sets
// (dataset.LabelSet) index dataLabels, matched to the model's labels by name: the mean
// average precision, the micro and macro F1 and each label's precision, recall, F1
// and average precision at the model's thresholds, the loss and the accuracy of every
// decision. Options.TopLosses and MostConfused are for single-label models.
func EvaluateMultiLabel(ctx context.Context, c *Classifier, data dataset.Examples, dataLabels []string, name string, opts Options) (*MultiReport, error) {
	if !c.MultiLabel {
		return nil, fmt.Errorf("%s: a single-label model (no metadata toolkit.task: multilabel): evaluate it on an image folder", c.Path)
	}
	if opts.TopLosses > 0 || opts.MostConfused {
		return nil, fmt.Errorf("--top-losses and --most-confused are for single-label models; %s is multi-label", c.Path)
	}
	k := len(c.Classes)
	toModel := make([]int, len(dataLabels))
	for i, l := range dataLabels {
		if toModel[i] = slices.Index(c.Classes, l); toModel[i] < 0 {
			return nil, fmt.Errorf("%s: label %q is not the model's: the model (%s) has [%s]", name, l, c.Path, strings.Join(c.Classes, " "))
		}
	}
	n := data.Len()
	if n == 0 {
		return nil, fmt.Errorf("%s: no images", name)
	}
	hot := make([]float32, n*k)
	for i := range n {
		for _, l := range dataset.LabelSet(data, i) {
			hot[i*k+toModel[l]] = 1
		}
	}
	logits, tta, err := c.run(ctx, data, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r := &MultiReport{Model: c.Path, Data: name, Labels: slices.Clone(c.Classes), Images: n, Notes: slices.Clone(c.Notes)}
	probs := make([]float64, n*k)
	var loss float64
	for i, z := range logits {
		probs[i] = 1 / (1 + math.Exp(-float64(z)))
		// The binary cross-entropy of the logit, computed stably.
		x, y := float64(z), float64(hot[i])
		loss += max(x, 0) - x*y + math.Log1p(math.Exp(-math.Abs(x)))
	}
	r.MultiScores = c.multiScores(probs, hot, loss/float64(n*k))
	if opts.TTA {
		var ttaLoss float64
		for i, p := range tta {
			y := float64(hot[i])
			ttaLoss -= y*math.Log(max(p, 1e-300)) + (1-y)*math.Log(max(1-p, 1e-300))
		}
		s := c.multiScores(tta, hot, ttaLoss/float64(n*k))
		r.TTA, r.TTAViews = &s, 2*len(dataset.TTAViews(c.Preprocess))
	}
	return r, nil
}

// multiScores computes the figures from probabilities and multi-hot targets.
func (c *Classifier) multiScores(probs []float64, hot []float32, loss float64) MultiScores {
	k := len(c.Classes)
	s := multilabel.Score(probs, hot, k, c.Thresholds)
	out := MultiScores{Loss: loss, MAP: s.MAP, MicroF1: s.MicroF1, MacroF1: s.MacroF1}
	right := 0
	for i, p := range probs {
		if (p >= c.Thresholds[i%k]) == (hot[i] >= 0.5) {
			right++
		}
	}
	out.Accuracy = float64(right) / float64(len(probs))
	for j, l := range s.Labels {
		m := LabelMetrics{Label: c.Classes[j], Threshold: c.Thresholds[j], Precision: l.Precision, Recall: l.Recall, F1: l.F1, Support: l.Support}
		if !math.IsNaN(l.AP) {
			ap := l.AP
			m.AP = &ap
		}
		out.PerLabel = append(out.PerLabel, m)
	}
	return out
}

// WriteText prints the report: the overall figures, then a table by label.
func (r *MultiReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s: %d images, %d labels (multi-label)\n", r.Model, r.Data, r.Images, len(r.Labels))
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, sk := range r.Skipped {
		fmt.Fprintf(&b, "skipped %s: %s\n", sk.File, sk.Error)
	}
	line := func(label string, s *MultiScores) {
		fmt.Fprintf(&b, "%sloss %.4f  mAP %.4f  micro F1 %.4f  macro F1 %.4f  accuracy %.2f%% (of every label's decision)\n",
			label, s.Loss, s.MAP, s.MicroF1, s.MacroF1, 100*s.Accuracy)
	}
	if r.TTA == nil {
		line("", &r.MultiScores)
	} else {
		line(fmt.Sprintf("%-18s", "plain:"), &r.MultiScores)
		line(fmt.Sprintf("%-18s", fmt.Sprintf("TTA (%d views):", r.TTAViews)), r.TTA)
		b.WriteString("(the table below is the plain evaluation's)\n")
	}
	width := 5
	for _, l := range r.Labels {
		width = max(width, len(l))
	}
	fmt.Fprintf(&b, "\n%-*s  threshold      AP  precision  recall      f1  support\n", width, "label")
	for _, m := range r.PerLabel {
		ap := "     -"
		if m.AP != nil {
			ap = fmt.Sprintf("%6.4f", *m.AP)
		}
		fmt.Fprintf(&b, "%-*s  %9.4f  %s  %9.4f  %6.4f  %6.4f  %7d\n", width, m.Label, m.Threshold, ap, m.Precision, m.Recall, m.F1, m.Support)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
