package evaluate

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"image/png"
	"os"
	"slices"
	"strconv"

	"toolkit/dataset"
	"toolkit/internal/atomicfile"
)

// TopLoss is one of the images the model got most wrong.
type TopLoss struct {
	File        string  `json:"file"`
	True        string  `json:"true"`
	Predicted   string  `json:"predicted"`
	Probability float64 `json:"probability"`      // of the predicted class
	TrueProb    float64 `json:"true_probability"` // of the true class
	Loss        float64 `json:"loss"`
	// Input is the image as the model received it (Channels x Height x Width, for
	// PlotTopLosses).
	Input []float32 `json:"-"`
}

// candidates are the opts.TopLosses examples of data (examples lo to lo+len(labels) of
// the evaluation) with the highest losses (ties: the earlier example first), with their
// inputs read again through the loader. The evaluation's top losses are among its
// shards' candidates: an example among them ranks below fewer than TopLosses examples of
// the whole data, so below fewer of its own shard's.
func (c *Classifier) candidates(ctx context.Context, data dataset.Examples, lo int, labels []int, logits []float32, opts Options) ([]candidate, error) {
	losses := losses(labels, logits, len(c.Classes))
	order := byLoss(losses, opts.TopLosses)
	if len(order) == 0 {
		return nil, nil
	}
	out := make([]candidate, len(order))
	sub := dataset.NewView(data, order)
	loader, err := dataset.NewLoader(sub, dataset.LoaderOptions{BatchSize: len(order), Workers: opts.Workers, Preprocess: c.Preprocess})
	if err != nil {
		return nil, err
	}
	size := c.Preprocess.Size()
	for b, err := range loader.Epoch(ctx, 0) {
		if err != nil {
			return nil, err
		}
		for i, vi := range b.Indices[:b.N] {
			out[vi] = candidate{Index: lo + order[vi], File: data.Name(order[vi]), Input: slices.Clone(b.Images[i*size : (i+1)*size])}
		}
	}
	return out, nil
}

// byLoss returns the indices of the n highest losses, highest first (ties: the lower
// index first).
func byLoss(losses []float64, n int) []int {
	order := make([]int, len(losses))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(losses[b], losses[a]) })
	return order[:min(n, len(order))]
}

// topLosses are the job's TopLosses examples with the highest losses of the whole
// evaluation, their inputs the candidates'.
func (e *evaluation) topLosses(losses []float64) ([]TopLoss, error) {
	k := len(e.shared.Classes)
	inputs := map[int]candidate{}
	for _, c := range e.cands {
		inputs[c.Index] = c
	}
	var out []TopLoss
	for _, ix := range byLoss(losses, e.job.TopLosses) {
		c, ok := inputs[ix]
		if !ok {
			return nil, fmt.Errorf("evaluate: example %d, among the top losses, is not among the candidates of its shard", ix)
		}
		row := e.logits[ix*k : (ix+1)*k]
		probs := Probabilities(row)
		pred, y := ranking(row)[0], e.labels[ix]
		out = append(out, TopLoss{
			File: c.File, True: e.shared.Classes[y], Predicted: e.shared.Classes[pred],
			Probability: probs[pred], TrueProb: probs[y], Loss: losses[ix], Input: c.Input,
		})
	}
	return out, nil
}

// TopLossTiles are the top losses as grid tiles (dataset.DrawGrid), each captioned
// "true/predicted probability loss" as fastai's plot_top_losses.
func (r *Report) TopLossTiles() ([]dataset.GridTile, error) {
	var tiles []dataset.GridTile
	for _, t := range r.TopLosses {
		img, err := r.Preprocess.Denormalise(t.Input)
		if err != nil {
			return nil, err
		}
		tiles = append(tiles, dataset.GridTile{Image: img, Caption: fmt.Sprintf("%s/%s %.2f %.2f", t.True, t.Predicted, t.Probability, t.Loss)})
	}
	return tiles, nil
}

// WriteTopLosses draws the top losses as a labelled grid (PNG, fastai's plot_top_losses:
// each image as the model received it, captioned true/predicted, the predicted class's
// probability and the loss) and lists them in a CSV (file, true, predicted, probability,
// true_probability, loss). Either path may be empty.
func (r *Report) WriteTopLosses(pngPath, csvPath string) error {
	if pngPath != "" {
		tiles, err := r.TopLossTiles()
		if err != nil {
			return err
		}
		grid := dataset.DrawGrid(tiles, 4, 128)
		if err := atomicfile.Write(pngPath, func(f *os.File) error { return png.Encode(f, grid) }); err != nil {
			return err
		}
	}
	if csvPath == "" {
		return nil
	}
	return atomicfile.Write(csvPath, func(f *os.File) error {
		w := csv.NewWriter(f)
		w.Write([]string{"file", "true", "predicted", "probability", "true_probability", "loss"})
		for _, t := range r.TopLosses {
			w.Write([]string{t.File, t.True, t.Predicted, ftoa(t.Probability), ftoa(t.TrueProb), ftoa(t.Loss)})
		}
		w.Flush()
		return w.Error()
	})
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }
