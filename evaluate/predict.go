package evaluate

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"toolkit/dataset"
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

// ImageFiles expands paths: a file stays as given, a folder gives its image files (those
// of an image folder: JPEG, PNG, GIF, BMP, TIFF, WebP; its subfolders' too, hidden ones
// left out), sorted.
func ImageFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && dataset.IsImageFile(path) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no image files (%s)", p, strings.Join(dataset.ImageExtensions(), ", "))
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	return files, nil
}

// Predictions are the results of Predict: one per image that decoded, in the order of
// the files, and the files left out.
type Predictions struct {
	Predictions []Prediction   `json:"predictions"`
	Skipped     []SkippedImage `json:"skipped,omitempty"`
}

// Predict classifies image files (folders are expanded by ImageFiles) and returns each
// one's k most probable classes (of a multi-label model, every label at or above its
// threshold, k ignored). The files are checked first: with opts.OnBadImage fail
// (the default) a file that does not decode is an error naming it, before anything is
// predicted; with skip it is left out and listed. Images are decoded in parallel and run
// in batches of opts.BatchSize, with the model's evaluation transform; with opts.TTA the
// probabilities are those averaged over the test-time views (dataset.TTAViews and their
// flips).
func Predict(ctx context.Context, c *Classifier, paths []string, k int, opts Options) (*Predictions, error) {
	files, err := ImageFiles(paths)
	if err != nil {
		return nil, err
	}
	src, err := dataset.OpenFiles(files, dataset.Options{OnBadImage: opts.OnBadImage, Workers: opts.Workers})
	if err != nil {
		return nil, badImageAdvice(err)
	}
	out := &Predictions{Skipped: SkippedImages(src.Skipped())}
	if src.Len() == 0 {
		return out, nil
	}
	k = min(max(k, 1), len(c.Classes))
	logits, tta, err := c.run(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	n := len(c.Classes)
	for i := range src.Len() {
		var probs []float64
		if opts.TTA {
			probs = tta[i*n : (i+1)*n]
		} else {
			probs = c.Probabilities(logits[i*n : (i+1)*n])
		}
		p := Prediction{File: src.Name(i)}
		for _, j := range ranking(probs) {
			if c.MultiLabel && probs[j] < c.Thresholds[j] || !c.MultiLabel && len(p.Top) == k {
				continue
			}
			p.Top = append(p.Top, Score{Class: c.Classes[j], Index: j, Probability: probs[j]})
		}
		out.Predictions = append(out.Predictions, p)
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
