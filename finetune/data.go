package finetune

import (
	"fmt"
	"strings"

	"toolkit/dataset"
)

// Data is the recipe's data: the training, validation and test collections with
// their class names, and the preprocessing that turns an image into the model's input.
type Data struct {
	Classes    []string
	Train      dataset.Examples
	Val        dataset.Examples // nil without validation data
	Test       dataset.Examples // nil without test data
	Preprocess dataset.Preprocess
	Augment    dataset.Augment
	// Skipped lists the images left out because they failed to decode
	// (data.on_bad_image: skip).
	Skipped []dataset.BadImage
}

// OpenData opens the collections a DataConfig names, for a model input of the given
// size. The validation and test folders must have the training folder's classes.
func OpenData(c DataConfig, input InputConfig, seed uint64) (*Data, error) {
	opts := dataset.Options{OnBadImage: c.OnBadImage, Workers: c.Workers}
	if c.Format == "idx" && len(c.Classes) > 0 {
		opts.Classes = c.Classes
	}
	open := func(field, path, labels string) (*dataset.Source, error) {
		var (
			src *dataset.Source
			err error
		)
		if c.Format == "idx" && labels != "" {
			src, err = dataset.OpenIDX(path, labels)
			if err == nil && len(c.Classes) > 0 {
				err = src.SetClasses(c.Classes)
			}
		} else {
			src, err = dataset.Open(c.Format, path, opts)
		}
		if err != nil {
			return nil, fmt.Errorf("data.%s: %w", field, err)
		}
		if src.Len() == 0 {
			return nil, fmt.Errorf("data.%s: %s holds no images", field, path)
		}
		return src, nil
	}
	if c.Train == "" {
		return nil, fmt.Errorf("data.train: missing (the training images)")
	}
	train, err := open("train", c.Train, c.Labels.Train)
	if err != nil {
		return nil, err
	}
	d := &Data{
		Classes: train.Classes(),
		Train:   train,
		Preprocess: dataset.Preprocess{
			Mode: c.Preprocess.Mode, Mean: nilIfEmpty(c.Preprocess.Mean), Std: nilIfEmpty(c.Preprocess.Std),
			Channels: input.Channels, Height: input.Height, Width: input.Width,
		},
		Augment: dataset.Augment{HFlip: c.Augment.HFlip, PadCrop: c.Augment.PadCrop},
		Skipped: train.Skipped(),
	}
	if err := d.Preprocess.Validate(); err != nil {
		return nil, fmt.Errorf("data.preprocess: %w", err)
	}
	if err := d.Augment.Validate(d.Preprocess); err != nil {
		return nil, fmt.Errorf("data.augment: %w", err)
	}
	opts.Classes = d.Classes
	switch {
	case c.Val != "" && c.ValSplit > 0:
		return nil, fmt.Errorf("data: set val or val_split, not both")
	case c.Val != "":
		val, err := open("val", c.Val, c.Labels.Val)
		if err != nil {
			return nil, err
		}
		if err := sameClasses("val", val.Classes(), d.Classes); err != nil {
			return nil, err
		}
		d.Val = val
		d.Skipped = append(d.Skipped, val.Skipped()...)
	case c.ValSplit > 0:
		if err := checkValSplit(c.ValSplit); err != nil {
			return nil, err
		}
		tr, val := dataset.Split(train, c.ValSplit, seed)
		if tr.Len() == 0 || val.Len() == 0 {
			return nil, fmt.Errorf("data.val_split: %v of %d images leaves an empty split", c.ValSplit, train.Len())
		}
		d.Train, d.Val = tr, val
	case c.ValSplit != 0:
		return nil, checkValSplit(c.ValSplit)
	}
	if c.Test != "" {
		test, err := open("test", c.Test, c.Labels.Test)
		if err != nil {
			return nil, err
		}
		if err := sameClasses("test", test.Classes(), d.Classes); err != nil {
			return nil, err
		}
		d.Test = test
		d.Skipped = append(d.Skipped, test.Skipped()...)
	}
	return d, nil
}

func sameClasses(field string, got, want []string) error {
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		return fmt.Errorf("data.%s: classes %v differ from the training classes %v", field, got, want)
	}
	return nil
}

// loader makes a loader over examples with the recipe's preprocessing.
func (d *Data) loader(examples dataset.Examples, c DataConfig, seed uint64, train bool) (*dataset.Loader, error) {
	opts := dataset.LoaderOptions{
		BatchSize:  c.BatchSize,
		Shuffle:    train,
		Seed:       seed,
		Workers:    c.Workers,
		Preprocess: d.Preprocess,
	}
	if train {
		opts.Augment = d.Augment
	}
	return dataset.NewLoader(examples, opts)
}

func nilIfEmpty(v []float64) []float64 {
	if len(v) == 0 {
		return nil
	}
	return v
}
