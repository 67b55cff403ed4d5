package finetune

import (
	"errors"
	"fmt"
	"io"
	"slices"
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
	// MultiLabel says that each example has a set of labels (dataset.LabelSet), for
	// head.task: multilabel; Classes are then the labels.
	MultiLabel bool

	trainSource, valSource, testSource *dataset.Source // as opened, for the summary
}

// OpenData opens the collections a DataConfig names, for a model input of the given
// size, as single-label data (Config.OpenData opens a recipe's data for its task). The
// validation and test folders must have the training folder's classes.
func OpenData(c DataConfig, input InputConfig, seed uint64) (*Data, error) {
	return openData(c, input, seed, false, false)
}

// OpenData opens the recipe's data: for head.task: multilabel, each example with its
// set of labels (dataset.LabelSet).
func (c Config) OpenData() (*Data, error) {
	return openData(c.Data, c.Model.Input, c.Seed, c.Head.Task == TaskMultilabel, false)
}

// OpenTestData opens the recipe's test data for a measure of a model (toolkit
// evaluate -c): the training data is listed for its classes only, its headers checked
// but its images not decoded, and the validation data is not opened. Under sharded
// evaluation every shard opens it: only the test images are decoded whole.
func (c Config) OpenTestData() (*Data, error) {
	if c.Data.Test == "" {
		return nil, fmt.Errorf("the recipe has no test data (data.test)")
	}
	return openData(c.Data, c.Model.Input, c.Seed, c.Head.Task == TaskMultilabel, true)
}

// openData opens the recipe's data; testOnly: the training data for its classes only
// (headers checked, nothing it skips listed), no validation data.
func openData(c DataConfig, input InputConfig, seed uint64, multi, testOnly bool) (*Data, error) {
	opts := dataset.Options{OnBadImage: c.OnBadImage, Workers: c.Workers}
	if c.Format == "idx" && len(c.Classes) > 0 {
		opts.Classes = c.Classes
	}
	open := func(field, path, labels string, opts dataset.Options) (*dataset.Source, error) {
		var (
			src *dataset.Source
			err error
		)
		switch {
		case c.Format == "idx" && labels != "":
			src, err = dataset.OpenIDX(path, labels)
			if err == nil && len(c.Classes) > 0 {
				err = src.SetClasses(c.Classes)
			}
		case c.Format == "csv":
			src, err = dataset.OpenCSV(path, dataset.CSVOptions{Options: opts, MultiLabel: multi})
		default:
			src, err = dataset.Open(c.Format, path, opts)
		}
		if err != nil {
			var bad *dataset.BadImagesError
			if errors.As(err, &bad) {
				return nil, fmt.Errorf("data.%s: %w; data.on_bad_image: skip leaves such files out (they are listed)", field, err)
			}
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
	trainOpts := opts
	trainOpts.Quick = testOnly // for its classes alone: headers checked, nothing decoded
	train, err := open("train", c.Train, c.Labels.Train, trainOpts)
	if err != nil {
		return nil, err
	}
	d := &Data{
		Classes:     train.Classes(),
		Train:       train,
		Preprocess:  c.Preprocess.dataset(input),
		Augment:     c.Augment.dataset(),
		Skipped:     train.Skipped(),
		MultiLabel:  multi,
		trainSource: train,
	}
	if err := d.Preprocess.Validate(); err != nil {
		return nil, fmt.Errorf("data.preprocess: %w", err)
	}
	if err := d.Augment.Validate(d.Preprocess); err != nil {
		return nil, augmentError(err)
	}
	opts.Classes = d.Classes
	if testOnly {
		d.Skipped, c.Val, c.ValSplit = nil, "", 0
	}
	switch {
	case c.Val != "" && c.ValSplit > 0:
		return nil, fmt.Errorf("data: set val or val_split, not both")
	case c.Val != "":
		val, err := open("val", c.Val, c.Labels.Val, opts)
		if err != nil {
			return nil, err
		}
		if err := sameClasses("val", val.Classes(), d.Classes); err != nil {
			return nil, err
		}
		d.Val, d.valSource = val, val
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
		test, err := open("test", c.Test, c.Labels.Test, opts)
		if err != nil {
			return nil, err
		}
		if err := sameClasses("test", test.Classes(), d.Classes); err != nil {
			return nil, err
		}
		d.Test, d.testSource = test, test
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

// loader makes a loader over examples with the recipe's preprocessing, whose batches
// hold shard's share of every batch (the whole batch for the zero Shard).
func (d *Data) loader(examples dataset.Examples, c DataConfig, seed uint64, train bool, shard dataset.Shard) (*dataset.Loader, error) {
	batch := c.BatchSize
	if train {
		batch = c.stepBatch() // the parts of data.accumulate are the step's
	}
	opts := dataset.LoaderOptions{
		BatchSize:  batch,
		Shuffle:    train,
		Seed:       seed,
		Workers:    c.Workers,
		Preprocess: d.Preprocess,
		Shard:      shard,
	}
	if train {
		opts.Augment = d.Augment
		opts.Draft = c.JPEGDraft
		opts.Balanced = c.Sampler == "balanced"
	} else {
		opts.CacheBytes = int64(c.EvalCacheMB) << 20
	}
	l, err := dataset.NewLoader(examples, opts)
	if err != nil {
		return nil, augmentError(err)
	}
	return l, nil
}

// augmentError names an augmentation mistake by its recipe key.
func augmentError(err error) error {
	var ae *dataset.AugmentError
	if errors.As(err, &ae) {
		return fmt.Errorf("data.augment.%s: %s", ae.Key, ae.Msg)
	}
	return fmt.Errorf("data.augment: %w", err)
}

// dataset is the preprocessing of an input of the given size.
func (p PreprocessConfig) dataset(input InputConfig) dataset.Preprocess {
	out := dataset.Preprocess{
		Mode: p.Mode, Mean: nilIfEmpty(p.Mean), Std: nilIfEmpty(p.Std),
		Channels: input.Channels, Height: input.Height, Width: input.Width,
		Resize: p.Resize,
	}
	if p.Resize != "" {
		// Without a resize key the float path runs, which has neither.
		out.CropPct, out.Interpolation = p.CropPct, p.Interpolation
		if p.Resize != dataset.ResizeCrop {
			out.CropPct = 0
		}
	}
	return out
}

// dataset is the augmentation as package dataset takes it.
func (a AugmentConfig) dataset() dataset.Augment {
	out := dataset.Augment{
		HFlip: a.HFlip, PadCrop: a.PadCrop, VFlip: a.VFlip, Rotate: a.Rotate,
		TrivialAugment: a.TrivialAugment, RandomErasing: a.RandomErasing, Mixup: a.Mixup, Cutmix: a.Cutmix,
	}
	if a.RandomResizedCrop.On {
		out.RandomResizedCrop = &dataset.RandomResizedCrop{Scale: a.RandomResizedCrop.Scale, Ratio: a.RandomResizedCrop.Ratio}
	}
	if a.ColorJitter != (ColorJitterConfig{}) {
		j := a.ColorJitter
		out.ColorJitter = &dataset.ColorJitter{Brightness: j.Brightness, Contrast: j.Contrast, Saturation: j.Saturation, Hue: j.Hue}
	}
	return out
}

func nilIfEmpty(v []float64) []float64 {
	if len(v) == 0 {
		return nil
	}
	return v
}

// active names the augmentations that are on, as the recipe writes them.
func (a AugmentConfig) active() []string {
	var on []string
	add := func(cond bool, format string, args ...any) {
		if cond {
			on = append(on, fmt.Sprintf(format, args...))
		}
	}
	add(a.RandomResizedCrop.On, "random_resized_crop")
	add(a.PadCrop > 0, "pad_crop: %d", a.PadCrop)
	add(a.HFlip, "hflip")
	add(a.VFlip, "vflip")
	add(a.Rotate != 0, "rotate: %v", a.Rotate)
	add(a.ColorJitter != (ColorJitterConfig{}), "color_jitter")
	add(a.TrivialAugment, "trivial_augment")
	add(a.RandomErasing > 0, "random_erasing: %v", a.RandomErasing)
	add(a.Mixup > 0, "mixup: %v", a.Mixup)
	add(a.Cutmix > 0, "cutmix: %v", a.Cutmix)
	return on
}

// SplitSummary is what a split holds: its images per class.
type SplitSummary struct {
	Split    string `json:"split"`
	Images   int    `json:"images"`
	PerClass []int  `json:"per_class"`
	Skipped  int    `json:"skipped,omitempty"`
}

// SkippedImage is a file left out because it does not decode.
type SkippedImage struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// DataSummary is what a run found in its data, the first line of metrics.jsonl
// ({"data": [...], "classes": [...], "skipped": [...]}).
type DataSummary struct {
	Splits  []SplitSummary `json:"data"`
	Classes []string       `json:"classes"`
	Skipped []SkippedImage `json:"skipped,omitempty"`
	// ClassWeights are the training loss's class weights (loss.class_weights), in the
	// classes' order; absent without.
	ClassWeights []float64 `json:"class_weights,omitempty"`
	// MultiLabel says that the classes are labels, any number per image (PerClass then
	// counts the images with each label); PosWeight are the binary cross-entropy's
	// positive weights (loss.pos_weight).
	MultiLabel bool      `json:"multilabel,omitempty"`
	PosWeight  []float64 `json:"pos_weight,omitempty"`
}

// Summary counts the images of each split by class and lists the skipped files.
func (d *Data) Summary() DataSummary {
	s := DataSummary{Classes: slices.Clone(d.Classes), MultiLabel: d.MultiLabel}
	skippedIn := map[string]int{}
	for _, b := range d.Skipped {
		s.Skipped = append(s.Skipped, SkippedImage{File: b.Path, Error: b.Err.Error()})
	}
	add := func(name string, ex dataset.Examples, skipped int) {
		if ex == nil {
			return
		}
		per := make([]int, len(d.Classes))
		for i := range ex.Len() {
			for _, l := range dataset.LabelSet(ex, i) {
				per[l]++
			}
		}
		s.Splits = append(s.Splits, SplitSummary{Split: name, Images: ex.Len(), PerClass: per, Skipped: skipped})
	}
	for _, src := range []struct {
		name string
		s    *dataset.Source
	}{{"train", d.trainSource}, {"val", d.valSource}, {"test", d.testSource}} {
		if src.s != nil {
			skippedIn[src.name] = len(src.s.Skipped())
		}
	}
	add("train", d.Train, skippedIn["train"])
	add("val", d.Val, skippedIn["val"])
	add("test", d.Test, skippedIn["test"])
	return s
}

// WriteText prints one line per split, as Keras' "Found 1,234 files belonging to 10
// classes": the images, the classes and how many per class (each, for up to 10 classes,
// else the range), and the files skipped.
func (s DataSummary) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, sp := range s.Splits {
		if s.MultiLabel {
			fmt.Fprintf(&b, "data: %-5s %s with %d labels", sp.Split, plural(sp.Images, "image"), len(sp.PerClass))
		} else {
			fmt.Fprintf(&b, "data: %-5s %s in %d classes", sp.Split, plural(sp.Images, "image"), len(sp.PerClass))
		}
		if len(sp.PerClass) <= 10 {
			parts := make([]string, len(sp.PerClass))
			for i, n := range sp.PerClass {
				parts[i] = fmt.Sprintf("%s %d", s.Classes[i], n)
			}
			fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
		} else {
			fmt.Fprintf(&b, " (%d-%d per class)", slices.Min(sp.PerClass), slices.Max(sp.PerClass))
		}
		if sp.Skipped > 0 {
			fmt.Fprintf(&b, "; %s skipped", plural(sp.Skipped, "file"))
		}
		b.WriteString("\n")
	}
	if s.ClassWeights != nil {
		parts := make([]string, len(s.ClassWeights))
		for i, w := range s.ClassWeights {
			parts[i] = fmt.Sprintf("%s %.3g", s.Classes[i], w)
		}
		fmt.Fprintf(&b, "loss: class weights %s\n", strings.Join(parts, ", "))
	}
	if s.PosWeight != nil {
		parts := make([]string, len(s.PosWeight))
		for i, w := range s.PosWeight {
			parts[i] = fmt.Sprintf("%s %.3g", s.Classes[i], w)
		}
		fmt.Fprintf(&b, "loss: positive weights %s\n", strings.Join(parts, ", "))
	}
	for i, sk := range s.Skipped {
		if i == 10 {
			fmt.Fprintf(&b, "  ... and %d more (metrics.jsonl lists them all)\n", len(s.Skipped)-10)
			break
		}
		fmt.Fprintf(&b, "  skipped %s: %s\n", sk.File, sk.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
