package evaluate

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"toolkit/dataset"
	"toolkit/shard"
)

// Score is one class's probability for an image.
type Score struct {
	Class       string  `json:"class"`
	Index       int     `json:"index"`
	Probability float64 `json:"probability"`
}

// Prediction is an image's top classes, most probable first; of a multi-label model,
// every label whose probability reaches its threshold, most probable first.
type Prediction struct {
	File string  `json:"file"`
	Top  []Score `json:"top"`
}

// Predictions are the results of Predict: one per image that decoded, in the order of
// the files, and the files left out; with the model's path and its notes (Classifier).
type Predictions struct {
	Model       string         `json:"model"`
	Notes       []string       `json:"notes"`
	Predictions []Prediction   `json:"predictions"`
	Skipped     []SkippedImage `json:"skipped,omitempty"`
}

// Predict classifies image files (folders are expanded by dataset.ImageFiles) and returns each
// one's k most probable classes (of a multi-label model, every label at or above its
// threshold, k ignored). The files are checked first: with opts.OnBadImage fail
// (the default) a file that does not decode is an error naming it, before anything is
// predicted; with skip it is left out and listed. Images are decoded in parallel and run
// in batches of opts.BatchSize, with the model's evaluation transform; with opts.TTA the
// probabilities are those averaged over the test-time views (dataset.TTAViews and their
// flips).
func Predict(ctx context.Context, c *Classifier, paths []string, k int, opts Options) (*Predictions, error) {
	p, err := predictShard(ctx, c, paths, k, opts, shard.Spec{})
	if err != nil {
		return nil, err
	}
	return p.predictions()
}

// prediction is what a prediction computes of the images [lo, hi) of total: their
// files, logits and, with TTA, averaged probabilities. predictions finishes it, for one
// process's prediction and for the parts of a sharded one joined (MergePredictions).
type prediction struct {
	job           predictJob
	shared        predictShared
	lo, hi, total int
	files         []string
	logits        []float32
	tta           []float64
}

// predictJob is a prediction as it was asked for: every shard of it and its merge agree.
type predictJob struct {
	Model      string   `json:"model"`
	Paths      []string `json:"paths"`
	TopK       int      `json:"top_k"`
	BatchSize  int      `json:"batch_size"`
	TTA        bool     `json:"tta"`
	OnBadImage string   `json:"on_bad_image"`
}

func newPredictJob(model string, paths []string, k int, opts Options) predictJob {
	return predictJob{Model: model, Paths: paths, TopK: k, BatchSize: opts.batch(), TTA: opts.TTA, OnBadImage: opts.OnBadImage}
}

// predictShared is what every shard of a prediction finds of the model and the files.
type predictShared struct {
	Classes []string       `json:"classes"`
	Notes   []string       `json:"notes"`
	Skipped []SkippedImage `json:"skipped"`
	// Thresholds are a multi-label model's, one per label (nil: single-label).
	Thresholds []float64 `json:"thresholds,omitempty"`
}

// predictShard runs the images of shard s's batches (all of them for the zero Spec).
func predictShard(ctx context.Context, c *Classifier, paths []string, k int, opts Options, s shard.Spec) (*prediction, error) {
	files, err := dataset.ImageFiles(paths)
	if err != nil {
		return nil, err
	}
	src, err := dataset.OpenFiles(files, dataset.Options{OnBadImage: opts.OnBadImage, Workers: opts.Workers})
	if err != nil {
		return nil, badImageAdvice(err)
	}
	n := src.Len()
	lo, hi := s.Range(n, opts.batch())
	p := &prediction{
		job:    newPredictJob(c.Path, paths, k, opts),
		shared: predictShared{Classes: slices.Clone(c.Classes), Notes: slices.Clone(c.Notes), Skipped: SkippedImages(src.Skipped())},
		lo:     lo, hi: hi, total: n,
	}
	if c.MultiLabel {
		p.shared.Thresholds = slices.Clone(c.Thresholds)
	}
	for i := lo; i < hi; i++ {
		p.files = append(p.files, src.Name(i))
	}
	if hi > lo {
		if p.logits, p.tta, err = c.run(ctx, dataset.NewView(src, span(lo, hi)), opts); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// predictions finishes a whole prediction (lo 0, hi total).
func (p *prediction) predictions() (*Predictions, error) {
	n := len(p.shared.Classes)
	if p.lo != 0 || p.hi != p.total || len(p.files) != p.total || len(p.logits) != p.total*n || p.job.TTA && len(p.tta) != p.total*n {
		return nil, fmt.Errorf("predict: a prediction of images %d to %d of %d (%d files, %d logits) is not whole", p.lo, p.hi, p.total, len(p.files), len(p.logits))
	}
	out := &Predictions{Model: p.job.Model, Notes: p.shared.Notes, Skipped: p.shared.Skipped}
	k := min(max(p.job.TopK, 1), n)
	multi := p.shared.Thresholds != nil
	for i, file := range p.files {
		var probs []float64
		if p.job.TTA {
			probs = p.tta[i*n : (i+1)*n]
		} else {
			probs = probabilities(p.logits[i*n:(i+1)*n], multi)
		}
		pr := Prediction{File: file}
		for _, j := range ranking(probs) {
			if multi && probs[j] < p.shared.Thresholds[j] || !multi && len(pr.Top) == k {
				continue
			}
			pr.Top = append(pr.Top, Score{Class: p.shared.Classes[j], Index: j, Probability: probs[j]})
		}
		out.Predictions = append(out.Predictions, pr)
	}
	return out, nil
}

// WritePredictions prints one line per image: the file, then class (probability) pairs
// ("(no label)" for a multi-label prediction without one).
func WritePredictions(w io.Writer, preds []Prediction) error {
	var b strings.Builder
	for _, p := range preds {
		b.WriteString(p.File)
		if len(p.Top) == 0 {
			b.WriteString("  (no label)")
		}
		for _, s := range p.Top {
			fmt.Fprintf(&b, "  %s %.4f", s.Class, s.Probability)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
