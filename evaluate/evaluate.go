package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"toolkit/backend/kernels"
	"toolkit/dataset"
)

// Options tune an evaluation.
type Options struct {
	TopK      int // top-k accuracy; 0: 5; none when k is the number of classes or more (it is 100% by definition)
	BatchSize int // 0: 32
	Workers   int // image decoders; 0: the loader's default
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
	Model        string         `json:"model"`
	Data         string         `json:"data"`
	Classes      []string       `json:"classes"` // the model's, in logit order
	Images       int            `json:"images"`
	Loss         float64        `json:"loss"` // mean cross-entropy
	Accuracy     float64        `json:"accuracy"`
	TopK         int            `json:"top_k,omitempty"` // 0: not measured (k would cover every class)
	TopKAccuracy float64        `json:"top_k_accuracy,omitempty"`
	PerClass     []ClassMetrics `json:"per_class"`
	MacroF1      float64        `json:"macro_f1"`
	// Confusion[i][j] counts the images of class i predicted as class j.
	Confusion [][]int  `json:"confusion"`
	Notes     []string `json:"notes,omitempty"`
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
	batch := opts.BatchSize
	if batch <= 0 {
		batch = 32
	}
	loader, err := dataset.NewLoader(data, dataset.LoaderOptions{BatchSize: batch, Workers: opts.Workers, Preprocess: c.Preprocess})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r.Confusion = make([][]int, k)
	for i := range r.Confusion {
		r.Confusion[i] = make([]int, k)
	}
	var lossSum float64
	var topk int
	labels := make([]int, 0, batch)
	for b, err := range loader.Epoch(ctx, 0) {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		logits, err := c.Logits(b.Images, b.N)
		if err != nil {
			return nil, err
		}
		labels = labels[:0]
		for _, l := range b.Labels[:b.N] {
			labels = append(labels, toModel[l])
		}
		lossSum += float64(kernels.SoftmaxCrossEntropy(b.N, k, logits, labels, 0)) * float64(b.N)
		for i, want := range labels {
			row := logits[i*k : (i+1)*k]
			order := ranking(row)
			r.Confusion[want][order[0]]++
			if r.TopK > 0 && slices.Contains(order[:r.TopK], want) {
				topk++
			}
		}
		r.Images += b.N
	}
	if r.Images == 0 {
		return nil, fmt.Errorf("%s: no images", name)
	}
	r.Loss = lossSum / float64(r.Images)
	if r.TopK > 0 {
		r.TopKAccuracy = float64(topk) / float64(r.Images)
	}
	correct := 0
	for i := 0; i < k; i++ {
		correct += r.Confusion[i][i]
	}
	r.Accuracy = float64(correct) / float64(r.Images)
	var f1Sum float64
	classesWithSupport := 0
	for i, cl := range r.Classes {
		var predicted, support int
		for j := 0; j < k; j++ {
			predicted += r.Confusion[j][i]
			support += r.Confusion[i][j]
		}
		m := ClassMetrics{Class: cl, Support: support}
		tp := float64(r.Confusion[i][i])
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
			classesWithSupport++
		}
		r.PerClass = append(r.PerClass, m)
	}
	if classesWithSupport > 0 {
		r.MacroF1 = f1Sum / float64(classesWithSupport)
	}
	return r, nil
}

// ranking returns the class indices by decreasing logit (ties: the lower index first).
func ranking(row []float32) []int {
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
	fmt.Fprintf(&b, "loss %.4f  accuracy %.2f%%", r.Loss, 100*r.Accuracy)
	if r.TopK > 0 {
		fmt.Fprintf(&b, "  top-%d accuracy %.2f%%", r.TopK, 100*r.TopKAccuracy)
	}
	fmt.Fprintf(&b, "  macro F1 %.4f\n\n", r.MacroF1)
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
	_, err := io.WriteString(w, b.String())
	return err
}
