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

// topLosses keeps the opts.TopLosses images with the highest loss (ties: the earlier
// image first), with their inputs read again through the loader.
func (r *Report) topLosses(ctx context.Context, c *Classifier, data dataset.Examples, opts Options, labels []int, losses []float64, logits []float32) error {
	k := len(c.Classes)
	order := make([]int, len(losses))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(losses[b], losses[a]) })
	order = order[:min(opts.TopLosses, len(order))]
	sub := dataset.NewView(data, order)
	loader, err := dataset.NewLoader(sub, dataset.LoaderOptions{BatchSize: max(len(order), 1), Workers: opts.Workers, Preprocess: c.Preprocess})
	if err != nil {
		return err
	}
	size := c.Preprocess.Size()
	for b, err := range loader.Epoch(ctx, 0) {
		if err != nil {
			return err
		}
		for i, vi := range b.Indices[:b.N] {
			ix := order[vi]
			probs := Probabilities(logits[ix*k : (ix+1)*k])
			pred := ranking(logits[ix*k : (ix+1)*k])[0]
			r.TopLosses = append(r.TopLosses, TopLoss{
				File: data.Name(ix), True: r.Classes[labels[ix]], Predicted: r.Classes[pred],
				Probability: probs[pred], TrueProb: probs[labels[ix]], Loss: losses[ix],
				Input: slices.Clone(b.Images[i*size : (i+1)*size]),
			})
		}
	}
	return nil
}

// TopLossTiles are the top losses as grid tiles (dataset.DrawGrid), each captioned
// "true/predicted probability loss" as fastai's plot_top_losses.
func (r *Report) TopLossTiles(pre dataset.Preprocess) ([]dataset.GridTile, error) {
	var tiles []dataset.GridTile
	for _, t := range r.TopLosses {
		img, err := pre.Denormalise(t.Input)
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
func (r *Report) WriteTopLosses(pngPath, csvPath string, pre dataset.Preprocess) error {
	if pngPath != "" {
		tiles, err := r.TopLossTiles(pre)
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
