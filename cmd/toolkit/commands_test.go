package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The commands of the diagnose issue: evaluate, predict, lr-find. Their libraries
// (evaluate, finetune) have the full tests; these check the CLI's wiring and messages.

func TestPredictWithoutClassNames(t *testing.T) {
	// The parity fixture is a plain PyTorch export: no toolkit metadata.
	out, err := runCLI(t, "predict", filepath.Join(fixture, "model.onnx"), "../../data/fmnist-5to9/test/8_bag/00078.png", "--top-k", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"no class names", "indices", "00078.png"} {
		if !strings.Contains(out, want) {
			t.Errorf("predict output lacks %q:\n%s", want, out)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "readme.jpg")
	if err := os.WriteFile(text, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(fixture, "model.onnx")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"predict a text file", []string{"predict", model, text}, []string{"readme.jpg", "not an image"}},
		{"predict a missing file", []string{"predict", model, filepath.Join(dir, "none.png")}, []string{"none.png"}},
		{"evaluate without data", []string{"evaluate", model}, []string{"--data DIR or -c config.yaml"}},
		{"evaluate a folder of other classes", []string{"evaluate", model, "--data", "../../data/fmnist-5to9/test"}, []string{"no class names", "10 outputs", "5 classes"}},
		{"lr-find unknown stage", []string{"lr-find", "-c", "../../config.yaml", "--stage", "warmup"}, []string{`no stage "warmup"`, "head, all"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := runCLI(t, c.args...)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
