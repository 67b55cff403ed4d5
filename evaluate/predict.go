package evaluate

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Score is one class's probability for an image.
type Score struct {
	Class       string  `json:"class"`
	Index       int     `json:"index"`
	Probability float64 `json:"probability"`
}

// Prediction is an image's top classes, most probable first.
type Prediction struct {
	File string  `json:"file"`
	Top  []Score `json:"top"`
}

// ImageFiles expands paths: a file stays as given, a folder gives its PNG and JPEG
// files (and those of its subfolders), sorted.
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
			if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".png", ".jpg", ".jpeg":
				if !d.IsDir() {
					found = append(found, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no PNG or JPEG files", p)
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	return files, nil
}

// Predict classifies image files (folders are expanded by ImageFiles) and returns each
// one's k most probable classes.
func Predict(c *Classifier, paths []string, k int) ([]Prediction, error) {
	files, err := ImageFiles(paths)
	if err != nil {
		return nil, err
	}
	if k <= 0 {
		k = 1
	}
	k = min(k, len(c.Classes))
	out := make([]Prediction, 0, len(files))
	for _, f := range files {
		img, err := decodeImage(f)
		if err != nil {
			return nil, err
		}
		x, err := c.Preprocess.Apply(img)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		logits, err := c.Logits(x, 1)
		if err != nil {
			return nil, err
		}
		probs := Probabilities(logits)
		p := Prediction{File: f}
		for _, i := range ranking(logits)[:k] {
			p.Top = append(p.Top, Score{Class: c.Classes[i], Index: i, Probability: probs[i]})
		}
		out = append(out, p)
	}
	return out, nil
}

// WritePredictions prints one line per image: the file, then class (probability) pairs.
func WritePredictions(w io.Writer, preds []Prediction) error {
	var b strings.Builder
	for _, p := range preds {
		b.WriteString(p.File)
		for _, s := range p.Top {
			fmt.Fprintf(&b, "  %s %.4f", s.Class, s.Probability)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
