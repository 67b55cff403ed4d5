package finetune

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"toolkit/dataset"
	"toolkit/finetune/schedule"
	"toolkit/internal/photogen"
)

// The augmentation keys in their YAML forms: what each decodes to, as package dataset
// takes it, and the same recipe after a trip through MarshalYAML.
func TestAugmentKeys(t *testing.T) {
	def := dataset.DefaultRandomResizedCrop
	for _, tc := range []struct {
		yaml string
		want dataset.Augment
	}{
		{`{hflip: true}`, dataset.Augment{HFlip: true}},
		{`{random_resized_crop: true}`, dataset.Augment{RandomResizedCrop: &def}},
		{`{random_resized_crop: false, vflip: true}`, dataset.Augment{VFlip: true}},
		{`{random_resized_crop: {scale: [0.3, 1]}}`, dataset.Augment{RandomResizedCrop: &dataset.RandomResizedCrop{Scale: [2]float64{0.3, 1}, Ratio: def.Ratio}}},
		{`{random_resized_crop: {scale: [0.3, 0.9], ratio: [1, 2]}, rotate: 15}`,
			dataset.Augment{RandomResizedCrop: &dataset.RandomResizedCrop{Scale: [2]float64{0.3, 0.9}, Ratio: [2]float64{1, 2}}, Rotate: 15}},
		{`{color_jitter: {brightness: 0.4, hue: 0.1}, trivial_augment: true, random_erasing: 0.25, mixup: 0.2, cutmix: 1}`,
			dataset.Augment{ColorJitter: &dataset.ColorJitter{Brightness: 0.4, Hue: 0.1}, TrivialAugment: true, RandomErasing: 0.25, Mixup: 0.2, Cutmix: 1}},
	} {
		recipe := "model: {onnx: m.onnx}\nhead: {classes: 2}\nstages: [{epochs: 1, train: all, lr: 1e-3}]\ndata:\n  train: d\n  augment: " + tc.yaml + "\n"
		cfg, err := ParseConfig([]byte(recipe), "r.yaml")
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if got := cfg.Data.Augment.dataset(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.yaml, got, tc.want)
		}
		raw, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(raw, "back.yaml")
		if err != nil {
			t.Fatalf("%s: the marshalled recipe does not parse: %v\n%s", tc.yaml, err, raw)
		}
		if !reflect.DeepEqual(back.Data, cfg.Data) {
			t.Errorf("%s: after a round trip %+v, want %+v", tc.yaml, back.Data, cfg.Data)
		}
	}
}

// Mistakes in the photo keys are reported before any compute at their line, naming the key.
func TestPhotoKeyMistakes(t *testing.T) {
	head := "model: {onnx: m.onnx}\nhead: {classes: 2}\nstages: [{epochs: 1, train: all, lr: 1e-3}]\ndata:\n  train: d\n"
	for _, tc := range []struct{ data, want string }{
		{"  augment:\n    random_resized_crop: {scale: [0.5, 0.1]}\n", "r.yaml:7: data.augment.random_resized_crop.scale: [0.5, 0.1]; want [lo, hi] with 0 < lo <= hi <= 1"},
		{"  augment:\n    random_resized_crop: {scale: [0, 1]}\n", "r.yaml:7: data.augment.random_resized_crop.scale"},
		{"  augment:\n    random_resized_crop: {ratio: [2, 1]}\n", "r.yaml:7: data.augment.random_resized_crop.ratio: [2, 1]"},
		{"  augment:\n    random_resized_crop: {scale: [0.1]}\n", "r.yaml:7: data.augment.random_resized_crop.scale: a list; want a list of 2 numbers"},
		{"  augment:\n    random_resized_crop: yes please\n", "r.yaml:7: data.augment.random_resized_crop: \"yes please\"; want false, true"},
		{"  augment:\n    random_resize_crop: true\n", "r.yaml:7: unknown key \"data.augment.random_resize_crop\"; did you mean \"random_resized_crop\"?"},
		{"  augment:\n    hflip: true\n    color_jitter: {hue: 0.7}\n", "r.yaml:8: data.augment.color_jitter.hue: 0.7; want a value in [0, 0.5]"},
		{"  augment:\n    rotate: -5\n", "r.yaml:7: data.augment.rotate: -5; want degrees in [0, 180]"},
		{"  augment:\n    random_erasing: 1.5\n", "r.yaml:7: data.augment.random_erasing: 1.5; want a probability"},
		{"  augment:\n    mixup: -1\n", "r.yaml:7: data.augment.mixup: -1"},
		{"  batch_size: 1\n  augment:\n    cutmix: 1.0\n", "r.yaml:8: data.augment.cutmix: needs batches of at least 2 images"},
		{"  preprocess: {resize: crop, crop_pct: 1.2}\n", "r.yaml:6: data.preprocess.crop_pct: 1.2; want a fraction in (0, 1]"},
		{"  preprocess: {resize: stretch}\n", "r.yaml:6: data.preprocess.resize: unknown \"stretch\"; valid: squish, crop, pad"},
		{"  preprocess: {interpolation: lanczos}\n", "r.yaml:6: data.preprocess.interpolation: unknown \"lanczos\"; valid: bilinear, bicubic"},
	} {
		_, err := ParseConfig([]byte(head+tc.data), "r.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.data, err, tc.want)
		}
	}
}

// photoConfig is a short run on a photogen photo set (one truncated file in it) at 32 px.
func photoConfig(t *testing.T, onBad string) Config {
	t.Helper()
	dir := t.TempDir()
	if err := photogen.Write(filepath.Join(dir, "photos"), []photogen.Split{{Name: "train", PerClass: 4}, {Name: "val", PerClass: 2}}, 5); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Model.Input = InputConfig{Channels: 3, Height: 16, Width: 16}
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].Epochs = 1
	cfg.Data.Train, cfg.Data.Val = filepath.Join(dir, "photos", "train"), filepath.Join(dir, "photos", "val")
	cfg.Data.OnBadImage = onBad
	cfg.Data.BatchSize = 4
	cfg.Data.Preprocess = PreprocessConfig{Mode: "torch", Resize: "crop", CropPct: 0.875, Interpolation: "bicubic"}
	cfg.Data.Augment = AugmentConfig{RandomResizedCrop: RandomResizedCropConfig{On: true, Scale: [2]float64{0.2, 1}, Ratio: [2]float64{0.75, 4.0 / 3}},
		HFlip: true, TrivialAugment: true, ColorJitter: ColorJitterConfig{Brightness: 0.3, Hue: 0.05}, RandomErasing: 0.5, Mixup: 0.2, Cutmix: 1}
	cfg.Output.Dir = filepath.Join(dir, "run")
	return cfg
}

// A file that does not decode (truncated in its scan, its header whole): with fail the
// run refuses to start, naming the file, and writes nothing; with skip the file is left
// out before training, listed first thing in metrics.jsonl, and the run goes on with
// every augmentation on.
func TestBadImageBeforeTheRun(t *testing.T) {
	cfg := photoConfig(t, "fail")
	_, err := New(cfg)
	bad := filepath.Join(cfg.Data.Train, "checks", "bad.jpg")
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "data.on_bad_image: skip") {
		t.Fatalf("fail: %v; want an error naming %s and data.on_bad_image: skip", err, bad)
	}
	if _, err := os.Stat(cfg.Output.Dir); !os.IsNotExist(err) {
		t.Fatalf("the run folder exists after a refused run: %v", err)
	}

	cfg = photoConfig(t, "skip")
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sum := tr.DataSummary()
	if len(sum.Skipped) != 1 || sum.Skipped[0].File != filepath.Join(cfg.Data.Train, "checks", "bad.jpg") || !strings.Contains(sum.Skipped[0].Error, "truncated") {
		t.Fatalf("skipped %+v", sum.Skipped)
	}
	if len(sum.Splits) != 2 || sum.Splits[0].Images != 12 || !reflect.DeepEqual(sum.Splits[0].PerClass, []int{4, 4, 4}) || sum.Splits[0].Skipped != 1 {
		t.Fatalf("summary %+v", sum.Splits)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(cfg.Output.Dir, RunMetrics))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	var first struct {
		Data    []SplitSummary `json:"data"`
		Skipped []SkippedImage `json:"skipped"`
	}
	if err := json.Unmarshal(sc.Bytes(), &first); err != nil || len(first.Skipped) != 1 || len(first.Data) != 2 {
		t.Fatalf("metrics.jsonl's first line %s: %v", sc.Bytes(), err)
	}
}

// A run on photos with every augmentation (RandomResizedCrop with draft decoding,
// TrivialAugment, colour jitter, random erasing, mixup and cutmix), interrupted in the middle
// of an epoch and resumed, ends with the weights of the uninterrupted run, bit for bit: each
// draw depends on the seed, the epoch and the image (or the batch) alone.
func TestPhotoAugmentationsResumeExactly(t *testing.T) {
	cfg := photoConfig(t, "skip")
	cfg.Stages = []StageConfig{
		{Name: "head", Epochs: 1, Train: Train("head"), LR: schedule.Rates{Rate: 3e-3}},
		{Name: "all", Epochs: 2, Train: TrainAll(), LR: schedule.Rates{Max: 1e-3, Factor: 2.6}},
	}
	cfg.Data.Workers = 3
	straight, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.Output.Dir += "-interrupted"
	cfg.Data.Workers = 1 // the output must not depend on the number of decoders
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.hooks = append(tr.hooks, (&cancelAfter{steps: 5, cancel: cancel}).hook()) // 3 batches an epoch: mid-second
	_, err = tr.Run(ctx)
	cancel()
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v, want ErrInterrupted", err)
	}
	resumed, err := Resume(cfg.Output.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, got := weightsOf(straight), weightsOf(resumed)
	for name, w := range want {
		if !slices.Equal(w, got[name]) {
			t.Errorf("parameter %s differs between the uninterrupted and the resumed run", name)
		}
	}
}

// TestOpenTestData checks that the test data of a recipe opens without decoding the
// training images (toolkit evaluate -c, on every shard): a training folder holding a
// file that does not decode, which OpenData refuses, gives its classes all the same,
// and the validation folder is not opened.
func TestOpenTestData(t *testing.T) {
	cfg := photoConfig(t, "fail")
	if _, err := cfg.OpenTestData(); err == nil || !strings.Contains(err.Error(), "data.test") {
		t.Fatalf("without data.test: %v", err)
	}
	cfg.Data.Test = cfg.Data.Val
	cfg.Data.Val = filepath.Join(t.TempDir(), "nowhere")
	if _, err := cfg.OpenData(); err == nil {
		t.Fatal("OpenData decoded no training image: the check is weak")
	}
	d, err := cfg.OpenTestData()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Classes, photogen.Classes) || d.Val != nil || d.Test.Len() != 6 || len(d.Skipped) != 0 {
		t.Errorf("classes %v, val %v, %d test images, skipped %v", d.Classes, d.Val, d.Test.Len(), d.Skipped)
	}
}
