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
	"toolkit/shard"
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

// topK is the top-k accuracy's k.
func (o Options) topK() int {
	if o.TopK <= 0 {
		return 5
	}
	return o.TopK
}

// batch is the batch size.
func (o Options) batch() int {
	if o.BatchSize <= 0 {
		return 32
	}
	return o.BatchSize
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
	// Preprocess is the model's preprocessing, which the top losses' inputs went through.
	Preprocess dataset.Preprocess `json:"-"`
}

// Labelled is labelled data to evaluate on.
type Labelled struct {
	Examples dataset.Examples
	// Classes are the data's class names, which its labels index.
	Classes []string
	// Name is what the report calls the data: its folder, or a recipe's data.test.
	Name string
	// Skipped are the files left out because they do not decode (OnBadImage skip).
	Skipped []dataset.BadImage
}

// OpenFolder opens an image folder (one subfolder per class) to evaluate on; every file
// is decoded once, to find those that do not decode (dataset.OpenImageFolder).
func OpenFolder(dir string, opts Options) (Labelled, error) {
	src, err := dataset.OpenImageFolder(dir, dataset.Options{Workers: opts.Workers, OnBadImage: opts.OnBadImage})
	if err != nil {
		return Labelled{}, badImageAdvice(err)
	}
	return Labelled{Examples: src, Classes: src.Classes(), Name: dir, Skipped: src.Skipped()}, nil
}

// EvaluateFolder evaluates the classifier on an image folder (one subfolder per class).
func EvaluateFolder(ctx context.Context, c *Classifier, dir string, opts Options) (*Report, error) {
	data, err := OpenFolder(dir, opts)
	if err != nil {
		return nil, err
	}
	return Evaluate(ctx, c, data, opts)
}

// Evaluate evaluates the classifier on labelled data. Classes are matched by name:
// every class of the data must be one of the model's (the data may hold fewer). A model
// without class names takes the data's classes in order, if there are as many.
func Evaluate(ctx context.Context, c *Classifier, data Labelled, opts Options) (*Report, error) {
	e, err := evaluateShard(ctx, c, data, opts, shard.Spec{})
	if err != nil {
		return nil, err
	}
	return e.report()
}

// evaluation is what an evaluation computes of the examples [lo, hi) of total: by
// example, the label (the model's class index), the logits and, with TTA, the averaged
// probabilities; and the inputs of the examples with the highest losses among them
// (the candidates for the top losses). report finishes it into the Report, for one
// process's evaluation and for the parts of a sharded one joined (MergeEvaluation).
type evaluation struct {
	job           evalJob
	shared        evalShared
	lo, hi, total int
	labels        []int
	logits        []float32
	tta           []float64
	cands         []candidate
}

// evalJob is an evaluation as it was asked for: every shard of it and its merge agree.
type evalJob struct {
	Model        string `json:"model"`
	Data         string `json:"data"`
	TopK         int    `json:"top_k"`
	BatchSize    int    `json:"batch_size"`
	TTA          bool   `json:"tta"`
	MostConfused bool   `json:"most_confused"`
	TopLosses    int    `json:"top_losses"`
	OnBadImage   string `json:"on_bad_image"`
}

func newEvalJob(model, data string, opts Options) evalJob {
	return evalJob{Model: model, Data: data, TopK: opts.topK(), BatchSize: opts.batch(), TTA: opts.TTA,
		MostConfused: opts.MostConfused, TopLosses: opts.TopLosses, OnBadImage: opts.OnBadImage}
}

// evalShared is what every shard of an evaluation finds of the whole data and model.
type evalShared struct {
	Classes    []string           `json:"classes"` // the report's
	Notes      []string           `json:"notes"`
	Skipped    []SkippedImage     `json:"skipped"`
	Preprocess dataset.Preprocess `json:"preprocess"`
	TTAViews   int                `json:"tta_views"`
}

// candidate is one of the examples with the highest losses of a shard, with its input.
type candidate struct {
	Index int       `json:"index"`
	File  string    `json:"file"`
	Input []float32 `json:"-"`
}

// evaluateShard evaluates the examples of shard s's batches (all of them for the zero
// Spec).
func evaluateShard(ctx context.Context, c *Classifier, data Labelled, opts Options, s shard.Spec) (*evaluation, error) {
	k := len(c.Classes)
	name := data.Name
	toModel := make([]int, len(data.Classes))
	sh := evalShared{Classes: slices.Clone(c.Classes), Notes: slices.Clone(c.Notes), Skipped: SkippedImages(data.Skipped), Preprocess: c.Preprocess}
	if c.HasNames {
		var unknown []string
		for i, dc := range data.Classes {
			toModel[i] = slices.Index(c.Classes, dc)
			if toModel[i] < 0 {
				unknown = append(unknown, dc)
			}
		}
		if len(unknown) > 0 {
			return nil, fmt.Errorf("%s: classes %v are not the model's: the data has classes [%s], the model (%s) [%s]",
				name, unknown, strings.Join(data.Classes, " "), c.Path, strings.Join(c.Classes, " "))
		}
		if len(data.Classes) < k {
			sh.Notes = append(sh.Notes, fmt.Sprintf("the data has %d of the model's %d classes", len(data.Classes), k))
		}
	} else {
		if len(data.Classes) != k {
			return nil, fmt.Errorf("%s: the model has no class names and %d outputs, the data %d classes [%s]: cannot tell which is which",
				name, k, len(data.Classes), strings.Join(data.Classes, " "))
		}
		for i := range toModel {
			toModel[i] = i
		}
		sh.Classes = slices.Clone(data.Classes)
		sh.Notes = append(sh.Notes, fmt.Sprintf("the model has no class names: the data's classes, in sorted order, are taken as outputs 0-%d", k-1))
	}
	if opts.TTA {
		sh.TTAViews = 2 * len(dataset.TTAViews(c.Preprocess))
	}
	n := data.Examples.Len()
	if n == 0 {
		return nil, fmt.Errorf("%s: no images", name)
	}
	lo, hi := s.Range(n, opts.batch())
	e := &evaluation{job: newEvalJob(c.Path, name, opts), shared: sh, lo: lo, hi: hi, total: n, labels: make([]int, hi-lo)}
	for i := range e.labels {
		e.labels[i] = toModel[data.Examples.Label(lo+i)]
	}
	view := dataset.NewView(data.Examples, span(lo, hi))
	var err error
	if e.logits, e.tta, err = c.run(ctx, view, opts); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if opts.TopLosses > 0 {
		if e.cands, err = c.candidates(ctx, view, lo, e.labels, e.logits, opts); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return e, nil
}

// span is the indices lo, lo+1, ..., hi-1.
func span(lo, hi int) []int {
	out := make([]int, hi-lo)
	for i := range out {
		out[i] = lo + i
	}
	return out
}

// losses are the cross-entropies of the examples with these labels and logits.
func losses(labels []int, logits []float32, k int) []float64 {
	out := make([]float64, len(labels))
	for i, y := range labels {
		row := logits[i*k : (i+1)*k]
		out[i] = logSumExp(row) - float64(row[y])
	}
	return out
}

// report finishes a whole evaluation (lo 0, hi total) into its Report.
func (e *evaluation) report() (*Report, error) {
	k := len(e.shared.Classes)
	if e.lo != 0 || e.hi != e.total || len(e.labels) != e.total || len(e.logits) != e.total*k {
		return nil, fmt.Errorf("evaluate: an evaluation of examples %d to %d of %d (%d labels, %d logits) is not whole", e.lo, e.hi, e.total, len(e.labels), len(e.logits))
	}
	r := &Report{Model: e.job.Model, Data: e.job.Data, Classes: e.shared.Classes, Images: e.total, Notes: e.shared.Notes,
		Skipped: e.shared.Skipped, Preprocess: e.shared.Preprocess}
	r.TopK = e.job.TopK
	if r.TopK >= k {
		// Every class is among the top k: the accuracy is 100% whatever the model.
		r.TopK = 0
	}
	losses := losses(e.labels, e.logits, k)
	r.Scores = score(k, r.TopK, r.Classes, e.labels, losses, func(i int) []int { return ranking(e.logits[i*k : (i+1)*k]) })
	if e.job.TTA {
		if len(e.tta) != e.total*k {
			return nil, fmt.Errorf("evaluate: %d averaged probabilities for %d examples of %d classes", len(e.tta), e.total, k)
		}
		ttaLosses := make([]float64, e.total)
		for i, y := range e.labels {
			ttaLosses[i] = -math.Log(max(e.tta[i*k+y], 1e-300))
		}
		s := score(k, r.TopK, r.Classes, e.labels, ttaLosses, func(i int) []int { return ranking(e.tta[i*k : (i+1)*k]) })
		r.TTA, r.TTAViews = &s, e.shared.TTAViews
	}
	if e.job.MostConfused {
		r.MostConfused = mostConfused(r.Classes, r.Confusion)
	}
	if e.job.TopLosses > 0 {
		var err error
		if r.TopLosses, err = e.topLosses(losses); err != nil {
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
