package finetune

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"toolkit/finetune/schedule"
	"toolkit/onnx"
)

// testBase writes the convolutional base of a small PyTorch VGG (the parity fixture
// vgg_classifier_opset13 cut before its classifier: two conv blocks, 3x16x16 input).
func testBase(t testing.TB) string {
	t.Helper()
	return testBaseAt(t, 13)
}

// testBaseAt is testBase from the fixture exported at the given opset.
func testBaseAt(t testing.TB, opset int) string {
	t.Helper()
	m, err := onnx.Read(fmt.Sprintf("../testdata/parity/vgg_classifier_opset%d/model.onnx", opset))
	if err != nil {
		t.Fatal(err)
	}
	cut, err := onnx.HeadlessCut(m)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = onnx.Cut(m, cut); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "base.onnx")
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

var testClasses = []string{"checker", "horizontal", "vertical"}

// writeImages writes perClass 16x16 RGB images of each pattern class into dir/<class>/.
func writeImages(t testing.TB, dir string, perClass int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	for c, class := range testClasses {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perClass; i++ {
			img := image.NewRGBA(image.Rect(0, 0, 16, 16))
			period := 2 + rng.IntN(3)
			phase := rng.IntN(period)
			tint := color.RGBA{R: uint8(100 + rng.IntN(155)), G: uint8(100 + rng.IntN(155)), B: uint8(100 + rng.IntN(155)), A: 255}
			for y := 0; y < 16; y++ {
				for x := 0; x < 16; x++ {
					var on bool
					switch c {
					case 0:
						on = ((x+phase)/period+(y+phase)/period)%2 == 0
					case 1:
						on = ((y+phase)/period)%2 == 0
					case 2:
						on = ((x+phase)/period)%2 == 0
					}
					noise := uint8(rng.IntN(40))
					px := color.RGBA{R: noise, G: noise, B: noise, A: 255}
					if on {
						px = color.RGBA{R: tint.R - noise/2, G: tint.G - noise/2, B: tint.B - noise/2, A: 255}
					}
					img.Set(x, y, px)
				}
			}
			f, err := os.Create(filepath.Join(dir, class, fmt.Sprintf("%03d.png", i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}

// testConfig is a two-stage recipe over the test base and freshly written images.
func testConfig(t testing.TB) Config {
	t.Helper()
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "train"), 40, 1)
	writeImages(t, filepath.Join(dir, "val"), 10, 2)
	cfg := Default()
	cfg.Seed = 3
	cfg.Model = ModelConfig{ONNX: testBase(t), Input: InputConfig{Channels: 3, Height: 16, Width: 16}}
	cfg.Head = HeadConfig{Pool: "flatten", Dense: []int{16}, Activation: "relu", Dropout: 0.25, Classes: 3, Init: "he", Task: TaskClassification}
	cfg.Stages = []StageConfig{
		{Name: "head", Epochs: 2, Train: Train("head"), LR: schedule.Rates{Rate: 3e-3}, Schedule: schedule.Spec{Name: "onecycle"}},
		{Name: "all", Epochs: 2, Train: TrainAll(), LR: schedule.Rates{Max: 1e-3, Factor: 2.6}, Schedule: schedule.Spec{Name: "stlr"}},
	}
	cfg.Data.Train = filepath.Join(dir, "train")
	cfg.Data.Val = filepath.Join(dir, "val")
	cfg.Data.BatchSize = 16
	cfg.Data.Preprocess = PreprocessConfig{Mode: "torch"}
	cfg.Data.Augment = AugmentConfig{HFlip: true}
	cfg.Output.Dir = filepath.Join(dir, "run")
	return cfg
}
