package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"

	"toolkit/dataset"
)

// Options tune an evaluation.
type Options struct {
	TopK      int // top-k accuracy; 0: 5; none when k is the number of classes or more (it is 100% by definition)
	BatchSize int // 0: 32
	Workers   int // image decoders; 0: the loader's default
	// TTA adds test-time augmentation: each image is also seen flipped left to right
	// and, with the crop resize, cropped at the corners (dataset.TTAViews), and the
	// probabilities averaged; the report then holds both evaluations.
	TTA bool
	// MostConfused lists the pairs of classes most often confused.
	MostConfused bool
	// TopLosses keeps the images with the highest loss, this many (0: none).
	TopLosses int
	// OnBadImage is what a file that does not decode does: fail (the default, naming it)
	// or skip (it is left out and listed in Report.Skipped). With a recipe, "" keeps the
	// recipe's data.on_bad_image.
	OnBadImage string
}

// SkippedImage is a file an evaluation or prediction left out because it does not decode.
type SkippedImage struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// SkippedImages lists the files a data set left out, as a Report does.
func SkippedImages(bad []dataset.BadImage) []SkippedImage {
	var out []SkippedImage
	for _, b := range bad {
		out = append(out, SkippedImage{File: b.Path, Error: b.Err.Error()})
	}
	return out
}

// badImageAdvice adds how to go on to an error about files that do not decode.
func badImageAdvice(err error) error {
	var bad *dataset.BadImagesError
	if errors.As(err, &bad) {
		return fmt.Errorf("%w; --on-bad-image skip leaves such files out (and lists them)", err)
	}
	return err
}

// ClassMetrics are one class's scores (scikit-learn's classification_report, with 0
// where a ratio has no denominator).
type ClassMetrics struct {
	Class     string  `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"` // images of the class in the data
}

// Report is an evaluation's result.
type Report struct {
	Model   string   `json:"model"`
	Data    string   `json:"data"`
	Classes []string `json:"classes"` // the model's, in logit order
	Images  int      `json:"images"`
	// Scores are the plain evaluation's (the model's evaluation transform).
	Scores
	// TTA, with Options.TTA, are the scores of the probabilities averaged over TTAViews
	// views (test-time augmentation).
	TTA      *Scores `json:"tta,omitempty"`
	TTAViews int     `json:"tta_views,omitempty"`
	// MostConfused lists, with Options.MostConfused, the pairs of classes most often
	// mistaken for each other, most often first (fastai's most_confused).
	MostConfused []ConfusedPair `json:"most_confused,omitempty"`
	// TopLosses lists, with Options.TopLosses, the images with the highest loss.
	TopLosses []TopLoss `json:"top_losses,omitempty"`
	Notes     []string  `json:"notes,omitempty"`
	// Skipped lists the files left out because they do not decode (OnBadImage skip).
	Skipped []SkippedImage `json:"skipped,omitempty"`
}

// EvaluateFolder evaluates the classifier on an image folder (one subfolder per class).
func EvaluateFolder(ctx context.Context, c *Classifier, dir string, opts Options) (*Report, error) {
	src, err := dataset.OpenImageFolder(dir, dataset.Options{Workers: opts.Workers, OnBadImage: opts.OnBadImage})
	if err != nil {
		return nil, badImageAdvice(err)
	}
	r, err := Evaluate(ctx, c, src, src.Classes(), dir, opts)
	if r != nil {
		r.Skipped = SkippedImages(src.Skipped())
	}
	return r, err
}

// Evaluate evaluates the classifier on labelled examples whose labels index
// dataClasses. Classes are matched by name: every class of the data must be one of the
// model's (the data may hold fewer). A model without class names takes the data's
// classes in order, if there are as many.
func Evaluate(ctx context.Context, c *Classifier, data dataset.Examples, dataClasses []string, name string, opts Options) (*Report, error) {
	k := len(c.Classes)
	toModel := make([]int, len(dataClasses))
	r := &Report{Model: c.Path, Data: name, Classes: slices.Clone(c.Classes), Notes: slices.Clone(c.Notes)}
	if c.HasNames {
		var unknown []string
		for i, dc := range dataClasses {
			toModel[i] = slices.Index(c.Classes, dc)
			if toModel[i] < 0 {
				unknown = append(unknown, dc)
			}
		}
		if len(unknown) > 0 {
			return nil, fmt.Errorf("%s: classes %v are not the model's: the data has classes [%s], the model (%s) [%s]",
				name, unknown, strings.Join(dataClasses, " "), c.Path, strings.Join(c.Classes, " "))
		}
		if len(dataClasses) < k {
			r.Notes = append(r.Notes, fmt.Sprintf("the data has %d of the model's %d classes", len(dataClasses), k))
		}
	} else {
		if len(dataClasses) != k {
			return nil, fmt.Errorf("%s: the model has no class names and %d outputs, the data %d classes [%s]: cannot tell which is which",
				name, k, len(dataClasses), strings.Join(dataClasses, " "))
		}
		for i := range toModel {
			toModel[i] = i
		}
		r.Classes = slices.Clone(dataClasses)
		r.Notes = append(r.Notes, fmt.Sprintf("the model has no class names: the data's classes, in sorted order, are taken as outputs 0-%d", k-1))
	}
	r.TopK = opts.TopK
	if r.TopK <= 0 {
		r.TopK = 5
	}
	if r.TopK >= k {
		// Every class is among the top k: the accuracy is 100% whatever the model.
		r.TopK = 0
	}
	n := data.Len()
	if n == 0 {
		return nil, fmt.Errorf("%s: no images", name)
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = toModel[data.Label(i)]
	}
	logits, tta, err := c.run(ctx, data, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r.Images = n
	losses := make([]float64, n)
	for i, y := range labels {
		row := logits[i*k : (i+1)*k]
		losses[i] = logSumExp(row) - float64(row[y])
	}
	r.Scores = score(k, r.TopK, r.Classes, labels, losses, func(i int) []int { return ranking(logits[i*k : (i+1)*k]) })
	if opts.TTA {
		ttaLosses := make([]float64, n)
		for i, y := range labels {
			ttaLosses[i] = -math.Log(max(tta[i*k+y], 1e-300))
		}
		s := score(k, r.TopK, r.Classes, labels, ttaLosses, func(i int) []int { return ranking(tta[i*k : (i+1)*k]) })
		r.TTA, r.TTAViews = &s, 2*len(dataset.TTAViews(c.Preprocess))
	}
	if opts.MostConfused {
		r.MostConfused = mostConfused(r.Classes, r.Confusion)
	}
	if opts.TopLosses > 0 {
		if err := r.topLosses(ctx, c, data, opts, labels, losses, logits); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ranking returns the class indices by decreasing logit (ties: the lower index first).
func ranking[T float32 | float64](row []T) []int {
	order := make([]int, len(row))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
	return order
}

// WriteText prints the report as tables.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s: %d images\n", r.Model, r.Data, r.Images)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, sk := range r.Skipped {
		fmt.Fprintf(&b, "skipped %s: %s\n", sk.File, sk.Error)
	}
	line := func(label string, s *Scores) {
		fmt.Fprintf(&b, "%sloss %.4f  accuracy %.2f%%", label, s.Loss, 100*s.Accuracy)
		if s.TopK > 0 {
			fmt.Fprintf(&b, "  top-%d accuracy %.2f%%", s.TopK, 100*s.TopKAccuracy)
		}
		fmt.Fprintf(&b, "  macro F1 %.4f\n", s.MacroF1)
	}
	if r.TTA == nil {
		line("", &r.Scores)
	} else {
		line(fmt.Sprintf("%-18s", "plain:"), &r.Scores)
		line(fmt.Sprintf("%-18s", fmt.Sprintf("TTA (%d views):", r.TTAViews)), r.TTA)
		b.WriteString("(the tables below are the plain evaluation's)\n")
	}
	b.WriteString("\n")
	width := 5
	for i, c := range r.Classes {
		width = max(width, len(fmt.Sprintf("%d %s", i, c)))
	}
	fmt.Fprintf(&b, "%-*s  precision  recall      f1  support\n", width, "class")
	for _, m := range r.PerClass {
		fmt.Fprintf(&b, "%-*s  %9.4f  %6.4f  %6.4f  %7d\n", width, m.Class, m.Precision, m.Recall, m.F1, m.Support)
	}
	fmt.Fprintf(&b, "\nconfusion matrix (rows: true class, columns: predicted)\n%-*s", width, "")
	for j := range r.Classes {
		fmt.Fprintf(&b, " %6d", j)
	}
	b.WriteString("\n")
	for i, row := range r.Confusion {
		fmt.Fprintf(&b, "%-*s", width, fmt.Sprintf("%d %s", i, r.Classes[i]))
		for _, n := range row {
			fmt.Fprintf(&b, " %6d", n)
		}
		b.WriteString("\n")
	}
	if r.MostConfused != nil {
		b.WriteString("\nmost confused (true -> predicted: images)\n")
		for _, p := range r.MostConfused {
			fmt.Fprintf(&b, "  %s -> %s: %d\n", p.True, p.Predicted, p.Count)
		}
	}
	if len(r.TopLosses) > 0 {
		b.WriteString("\ntop losses (loss, true, predicted with its probability, file)\n")
		for _, t := range r.TopLosses {
			fmt.Fprintf(&b, "  %7.4f  %s  %s %.3f  %s\n", t.Loss, t.True, t.Predicted, t.Probability, t.File)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
