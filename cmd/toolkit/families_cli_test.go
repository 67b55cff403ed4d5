package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/finetune"
	"toolkit/internal/familyfixtures"
	"toolkit/npy"
)

// TestFamiliesFinetuneEndToEnd runs the CLI the way a user fine-tunes a torchvision
// network, at reduced size: `toolkit import --headless --write-config` on resnet18 (the
// default export, BatchNorm folded, opset 13) and mobilenet_v2 (BatchNormalization kept,
// opset 17), the starter recipe edited as its comments ask, `toolkit finetune` on a few
// demo images at 32x32, then `toolkit run` on the model it writes. The layer groups
// are the families' stages.
func TestFamiliesFinetuneEndToEnd(t *testing.T) {
	fx := familyfixtures.Load(t)
	for _, c := range []struct {
		family, file string
		groups       []string
	}{
		{"resnet18", "model_fused_opset13.onnx", []string{"stem", "layer1", "layer2", "layer3", "layer4", "head"}},
		{"mobilenet_v2", "model_opset17.onnx", []string{"stem", "stage1", "stage2", "stage3", "stage4", "head"}},
	} {
		t.Run(c.family, func(t *testing.T) {
			f := fx.Families[c.family]
			dir := t.TempDir()
			testData(t, dir)
			base, starter := filepath.Join(dir, "base.onnx"), filepath.Join(dir, "starter.yaml")
			out, err := runCLI(t, "import", f.Path(c.file), "--headless", "-o", base, "--write-config", starter)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, want := range []string{"Groups:      " + c.groups[0] + " (", "Presets:     ", "Headless:    yes"} {
				if !strings.Contains(out, want) {
					t.Errorf("import output lacks %q:\n%s", want, out)
				}
			}
			raw, err := os.ReadFile(starter)
			if err != nil {
				t.Fatal(err)
			}
			recipe := string(raw)
			for _, want := range []string{"input: {channels: 3, height: 32, width: 32}", "pool: avg", strings.Join(c.groups, ", ")} {
				if !strings.Contains(recipe, want) {
					t.Errorf("starter config lacks %q:\n%s", want, recipe)
				}
			}
			run := filepath.Join(dir, "run")
			cfg := writeFile(t, filepath.Join(dir, "config.yaml"), reduce(t, recipe, dir, run, 1))
			out, err = runCLI(t, "finetune", "-c", cfg)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, g := range c.groups {
				if !strings.Contains(out, "group "+g) {
					t.Errorf("finetune output lacks group %s:\n%s", g, out)
				}
			}
			for _, want := range []string{"epoch  1  head", "epoch  2  all", "test: loss", "wrote " + filepath.Join(run, finetune.RunModel)} {
				if !strings.Contains(out, want) {
					t.Errorf("finetune output lacks %q:\n%s", want, out)
				}
			}
			x := filepath.Join(dir, "x.npy")
			writeNPYFile(t, x, []int{2, 3, 32, 32})
			if out, err := runCLI(t, "run", filepath.Join(run, finetune.RunModel), "-i", x, "-o", filepath.Join(dir, "y.npy")); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// writeNPYFile writes a float32 .npy of the shape, filled with a fixed pattern.
func writeNPYFile(t *testing.T, path string, shape []int) {
	t.Helper()
	n := 1
	for _, d := range shape {
		n *= d
	}
	a := &npy.Array{Shape: shape, Data: make([]float32, n)}
	for i := range a.Data {
		a.Data[i] = float32(math.Sin(float64(i)))
	}
	if err := npy.WriteFile(path, a); err != nil {
		t.Fatal(err)
	}
}
