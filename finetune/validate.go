package finetune

import (
	"errors"
	"fmt"
	"math"

	"toolkit/dataset"
	"toolkit/headbuilder"
)

// validate checks what can be checked from the recipe alone; the rest (groups, stage
// rates, data) is checked by New against the model and the files.
func (c *Config) validate() error {
	if c.Model.ONNX == "" {
		return fmt.Errorf("model.onnx: missing (the base model's file)")
	}
	in := c.Model.Input
	if in.Channels != 1 && in.Channels != 3 {
		return fmt.Errorf("model.input.channels: %d; want 1 or 3", in.Channels)
	}
	if in.Height < 1 || in.Width < 1 {
		return fmt.Errorf("model.input: height %d and width %d must be positive", in.Height, in.Width)
	}
	spec := headbuilder.Spec{
		Pool: c.Head.Pool, Dense: c.Head.Dense, Activation: c.Head.Activation,
		Dropout: c.Head.Dropout, Classes: c.Head.Classes, Init: c.Head.Init, Seed: c.Seed,
	}
	if err := spec.Validate(); err != nil {
		return err
	}
	if c.Optimizer.ClipNorm < 0 || math.IsNaN(c.Optimizer.ClipNorm) {
		return fmt.Errorf("optimizer.clip_norm: %v; want 0 (off) or a positive norm", c.Optimizer.ClipNorm)
	}
	if ls := c.Loss.LabelSmoothing; !(ls >= 0 && ls < 1) {
		return fmt.Errorf("loss.label_smoothing: %v; want a value in [0, 1)", ls)
	}
	if w := c.Loss.ClassWeights.Weights; w != nil {
		if err := checkWeights(w); err != nil {
			return fmt.Errorf("loss.class_weights: %w", err)
		}
	}
	if w := c.Loss.PosWeight.Weights; w != nil {
		if err := checkWeights(w); err != nil {
			return fmt.Errorf("loss.pos_weight: %w", err)
		}
	}
	if c.Data.BatchSize < 1 {
		return fmt.Errorf("data.batch_size: %d; want at least 1", c.Data.BatchSize)
	}
	if c.Data.Accumulate < 0 {
		return fmt.Errorf("data.accumulate: %d; want at least 1 (the batches whose gradients each step adds up)", c.Data.Accumulate)
	}
	if err := checkValSplit(c.Data.ValSplit); err != nil {
		return err
	}
	switch c.Data.Format {
	case "imagefolder", "csv", "idx":
	default:
		return fmt.Errorf("data.format: unknown %q; valid: imagefolder, csv, idx", c.Data.Format)
	}
	if c.Head.Task == "" { // a config built in Go without the key
		c.Head.Task = TaskClassification
	}
	switch c.Head.Task {
	case TaskClassification, TaskMultilabel:
	default:
		return fmt.Errorf("head.task: unknown %q; valid: %s, %s", c.Head.Task, TaskClassification, TaskMultilabel)
	}
	if c.Data.Format != "idx" {
		classes, labels := "an image folder's classes are its subfolders' names", "an image folder's labels are its subfolders"
		if c.Data.Format == "csv" {
			classes, labels = "a CSV's classes are the labels it names", "a CSV's labels are in its label column(s)"
		}
		if len(c.Data.Classes) > 0 {
			return fmt.Errorf("data.classes: for IDX data only; %s", classes)
		}
		if c.Data.Labels != (LabelsConfig{}) {
			return fmt.Errorf("data.labels: for IDX data only; %s", labels)
		}
	}
	if c.Data.EvalCacheMB < 0 {
		return fmt.Errorf("data.eval_cache_mb: %d; want 0 (off) or a number of megabytes", c.Data.EvalCacheMB)
	}
	switch c.Data.Sampler {
	case "", "shuffle", "balanced":
	default:
		return fmt.Errorf("data.sampler: unknown %q; valid: shuffle, balanced", c.Data.Sampler)
	}
	switch c.Data.FeatureCache {
	case "auto", "off":
	default:
		return fmt.Errorf("data.feature_cache: unknown %q; valid: auto, off", c.Data.FeatureCache)
	}
	if key, err := c.crossError(); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	switch c.Data.OnBadImage {
	case "", "fail", "skip":
	default:
		return fmt.Errorf("data.on_bad_image: unknown %q; valid: fail, skip", c.Data.OnBadImage)
	}
	if ce := c.Output.CheckpointEvery; !(ce >= 0) || math.IsInf(ce, 0) {
		return fmt.Errorf("output.checkpoint_every: %v; want 0 (every epoch) or a number of seconds", ce)
	}
	if key, err := c.Output.Best.check(c.Head.Task); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if c.EarlyStopping.Patience < 0 {
		return fmt.Errorf("early_stopping.patience: %d; want 0 (off) or more", c.EarlyStopping.Patience)
	}
	if c.Diagnostics.Every < 0 {
		return fmt.Errorf("diagnostics.every: %d; want 0 (the default, 5) or more", c.Diagnostics.Every)
	}
	if c.Diagnostics.Off && c.Diagnostics.Repair {
		return fmt.Errorf("diagnostics: repair needs the detectors: remove off, or repair")
	}
	for i, st := range c.Stages {
		if st.Epochs < 1 {
			return fmt.Errorf("stages[%d] (%s): epochs: %d; want at least 1", i, st.Name, st.Epochs)
		}
		if st.Name == "" {
			c.Stages[i].Name = fmt.Sprintf("stage%d", i+1)
		}
	}
	return nil
}

// checkValSplit checks data.val_split: a fraction in [0, 1), 0 for none.
func checkValSplit(v float64) error {
	if !(v >= 0 && v < 1) {
		return fmt.Errorf("data.val_split: %v; want a fraction of the training images in [0, 1), such as 0.1", v)
	}
	return nil
}

// crossError checks the keys that depend on others (dataError, lossError), returning
// the key at fault and what is wrong.
func (c *Config) crossError() (string, error) {
	if key, err := c.dataError(); err != nil {
		return key, err
	}
	if key, err := c.Output.Best.check(c.Head.Task); err != nil {
		return key, err
	}
	if key, err := c.averagingError(); err != nil {
		return key, err
	}
	return c.lossError()
}

// dataError checks the data's preprocessing and augmentation against each other and the
// batch size, returning the key at fault (data.augment.mixup, ...) and what is wrong.
// ParseConfig reports it at the key's line.
func (c *Config) dataError() (string, error) {
	p := c.Data.Preprocess
	if p.Resize != "" {
		if !(p.CropPct >= 0 && p.CropPct <= 1) {
			return "data.preprocess.crop_pct", fmt.Errorf("%v; want a fraction in (0, 1], such as 0.875 (224 of 256)", p.CropPct)
		}
	}
	pre := p.dataset(c.Model.Input)
	a := c.Data.Augment.dataset()
	if err := a.Validate(pre); err != nil {
		var ae *dataset.AugmentError
		if errors.As(err, &ae) {
			return "data.augment." + ae.Key, errors.New(ae.Msg)
		}
		return "data.augment", err
	}
	if err := a.ValidateBatch(c.Data.stepBatch()); err != nil {
		var ae *dataset.AugmentError
		if errors.As(err, &ae) {
			return "data.augment." + ae.Key, errors.New(ae.Msg)
		}
		return "data.augment", err
	}
	return "", nil
}
