package finetune

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/onnx"
)

// TestStarterModelPathFromTheRecipe writes a starter recipe into a folder other than the
// working one, with the model given relative to the working folder (as a user types it
// on the command line), and checks that LoadConfig, which reads a recipe's paths
// relative to its own folder, finds the same model file.
func TestStarterModelPathFromTheRecipe(t *testing.T) {
	model := "../models/fmnist-vgg/base.onnx" // relative to this package's folder, the test's working folder
	m, err := onnx.Read(model)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "a", "b"), "../models"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		recipe := filepath.Join(dir, "starter-test.yaml")
		if err := WriteStarterConfig(recipe, model, m, "", false); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(recipe)
		os.Remove(recipe)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Stat(model)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.Stat(cfg.Model.ONNX)
		if err != nil {
			t.Fatalf("recipe in %s: model.onnx resolves to %s: %v", dir, cfg.Model.ONNX, err)
		}
		if !os.SameFile(got, want) {
			t.Errorf("recipe in %s: model.onnx resolves to %s, not %s", dir, cfg.Model.ONNX, model)
		}
	}
}

// TestStarterNeverReplacesARecipe checks that a starter recipe is not written over an
// existing file (an edited recipe) unless asked to, and that the file is left as it was.
func TestStarterNeverReplacesARecipe(t *testing.T) {
	m, err := onnx.Read("../models/fmnist-vgg/base.onnx")
	if err != nil {
		t.Fatal(err)
	}
	recipe := filepath.Join(t.TempDir(), "config.yaml")
	const edited = "# my edited recipe\n"
	if err := os.WriteFile(recipe, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	err = WriteStarterConfig(recipe, "base.onnx", m, "", false)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), recipe) {
		t.Errorf("a starter over an existing recipe: %v; want an error naming it, wrapping fs.ErrExist", err)
	}
	if raw, _ := os.ReadFile(recipe); string(raw) != edited {
		t.Errorf("the existing recipe was changed:\n%s", raw)
	}
	entries, _ := os.ReadDir(filepath.Dir(recipe))
	if len(entries) != 1 {
		t.Errorf("the folder holds %d files after the refused write, want the recipe alone", len(entries))
	}
	if err := WriteStarterConfig(recipe, "base.onnx", m, "", true); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(recipe); !strings.Contains(string(raw), "toolkit import") {
		t.Errorf("overwrite did not replace the recipe:\n%s", raw)
	}
}

// TestStarterPool checks the head's pooling a starter recipe chooses. The demo base is
// the convolutional part of a VGG-style network whose classifier flattened its last
// max-pool's 4x4 map (models/fmnist-vgg/train_base.py: nn.Flatten, then
// nn.Linear(128*4*4, ...)), so its starter flattens; a base that ends elsewhere (in a
// ReLU, as a ResNet's does, or an average pool) gets global average pooling; either way
// the recipe says that this is a guess. A base whose classifier was found (pool given)
// keeps that pooling and says so.
func TestStarterPool(t *testing.T) {
	for _, c := range []struct {
		model, cut, pool string
		want, note       string
	}{
		{"../models/fmnist-vgg/base.onnx", "", "", "flatten", "a guess: the base ends in a max-pool over a 4x4 map"},
		{"../models/fmnist-vgg/base.onnx", "/8/Relu_output_0", "", "avg", "a guess"},
		{"../testdata/parity/vgg_features_opset13/model.onnx", "", "", "avg", "a guess"},
		{"../models/fmnist-vgg/base.onnx", "", "avg", "avg", "as the original classifier"},
		{"../models/fmnist-vgg/base.onnx", "", "token", "flatten", "class token"},
	} {
		m, err := onnx.Read(c.model)
		if err != nil {
			t.Fatal(err)
		}
		if c.cut != "" {
			if m, err = onnx.Cut(m, c.cut); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := StarterConfig("base.onnx", m, c.pool)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := ParseConfig(raw, "starter")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Head.Pool != c.want {
			t.Errorf("%s %s (pool %q): the starter pools with %s, want %s", c.model, c.cut, c.pool, cfg.Head.Pool, c.want)
		}
		if !strings.Contains(string(raw), c.note) {
			t.Errorf("%s %s (pool %q): the starter does not say why it pools so (want %q in a comment):\n%s", c.model, c.cut, c.pool, c.note, raw)
		}
	}
}

// A starter for a model that takes photos (224 px here) resizes them as ImageNet
// backbones expect and augments them with random resized crops; one for a 32-px model
// keeps the plain stretch and flip.
func TestStarterForPhotos(t *testing.T) {
	for _, size := range []int64{32, 224} {
		m, err := onnx.Read("../models/fmnist-vgg/base.onnx")
		if err != nil {
			t.Fatal(err)
		}
		in := m.Graph.Inputs[0]
		in.Shape[2], in.Shape[3] = onnx.Dim{Value: size}, onnx.Dim{Value: size}
		raw, err := StarterConfig("base.onnx", m, "")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := ParseConfig(raw, "starter")
		if err != nil {
			t.Fatal(err)
		}
		photo := cfg.Data.Preprocess.Resize == "crop" && cfg.Data.Preprocess.CropPct == 0.875 && cfg.Data.Augment.RandomResizedCrop.On && cfg.Data.Augment.HFlip
		if photo != (size == 224) || (size == 32 && cfg.Data.Preprocess.Resize != "") {
			t.Errorf("input %d: preprocess %+v, augment %+v", size, cfg.Data.Preprocess, cfg.Data.Augment)
		}
	}
}
