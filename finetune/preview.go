package finetune

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"toolkit/dataset"
)

// PreviewExample is one example as a run feeds it to the model.
type PreviewExample struct {
	// File names the example (its path, or "file[i]" for IDX data).
	File string
	// Label is its class index, Class the class's name.
	Label int
	Class string
	// Input is the model's input: Channels x Height x Width floats, preprocessed and,
	// for the training split, augmented (and blended, with mixup or cutmix).
	Input []float32
	// Caption says what the model is told the image is: the class (multi-label: the
	// labels, "cat;dog"), or with mixup or cutmix the blend ("cat 0.62 + dog 0.38").
	Caption string
}

// Splits a preview can show.
const (
	SplitTrain = "train"
	SplitVal   = "val"
	SplitTest  = "test"
)

// Preview returns the first n examples of a split as a run of cfg feeds them to the model
// (fastai's show_batch): the training split augmented with the run's seed at epoch 0, in
// the shuffled order of that epoch; the validation and test splits with the evaluation
// transform, in the loader's order (classes sorted, then files sorted). It also returns
// the preprocessing, to denormalise the inputs with.
func Preview(ctx context.Context, cfg Config, split string, n int) ([]PreviewExample, dataset.Preprocess, error) {
	if n < 1 {
		return nil, dataset.Preprocess{}, fmt.Errorf("preview: %d examples; want at least 1", n)
	}
	if err := cfg.validate(); err != nil {
		return nil, dataset.Preprocess{}, err
	}
	d, err := cfg.OpenData()
	if err != nil {
		return nil, dataset.Preprocess{}, err
	}
	var examples dataset.Examples
	switch split {
	case SplitTrain:
		examples = d.Train
	case SplitVal:
		examples = d.Val
	case SplitTest:
		examples = d.Test
	default:
		return nil, d.Preprocess, fmt.Errorf("preview: unknown split %q (valid: %s, %s, %s)", split, SplitTrain, SplitVal, SplitTest)
	}
	if examples == nil {
		key := map[string]string{SplitVal: "data.val or data.val_split", SplitTest: "data.test"}[split]
		return nil, d.Preprocess, fmt.Errorf("preview: the recipe has no %s split (%s)", split, key)
	}
	loader, err := d.loader(examples, cfg.Data, cfg.Seed, split == SplitTrain, dataset.Shard{})
	if err != nil {
		return nil, d.Preprocess, err
	}
	size := d.Preprocess.Size()
	var out []PreviewExample
	for b, err := range loader.Epoch(ctx, 0) {
		if err != nil {
			return nil, d.Preprocess, err
		}
		for i := range b.N {
			ex := PreviewExample{
				File: examples.Name(b.Indices[i]), Label: b.Labels[i], Class: d.Classes[b.Labels[i]],
				Input: slices.Clone(b.Images[i*size : (i+1)*size]),
			}
			ex.Caption = ex.Class
			if d.MultiLabel {
				var names []string
				for _, l := range dataset.LabelSet(examples, b.Indices[i]) {
					names = append(names, d.Classes[l])
				}
				ex.Caption = strings.Join(names, dataset.LabelDelimiter)
				if len(names) == 0 {
					ex.Caption = "(no label)"
				}
			}
			if m := b.Mix; m != nil {
				ex.Caption = fmt.Sprintf("%s %.2f + %s %.2f", ex.Class, m.Lambda, d.Classes[m.PartnerLabels[i]], 1-m.Lambda)
			}
			out = append(out, ex)
			if len(out) == n {
				return out, d.Preprocess, nil
			}
		}
	}
	return out, d.Preprocess, nil
}
