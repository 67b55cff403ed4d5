package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/finetune"
)

// The tests of what a new user trips over (issue 16), through the CLI.

// TestStarterFromAnotherFolder follows the README as a new user does: `toolkit import
// BASE --write-config OTHER/starter.yaml` with the model named relative to the working
// folder, then loads the recipe as `toolkit finetune -c OTHER/starter.yaml` does. The
// recipe's model path must lead to the same file from the recipe's folder. A second
// --write-config to the same file is refused, naming --overwrite, and leaves the
// (edited) recipe alone; --overwrite replaces it.
func TestStarterFromAnotherFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nc")
	recipe := filepath.Join(dir, "starter.yaml")
	model := "../../models/fmnist-vgg/base.onnx"
	if out, err := runCLI(t, "import", model, "--write-config", recipe); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cfg, err := finetune.LoadConfig(recipe)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Stat(model)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.Stat(cfg.Model.ONNX)
	if err != nil || !os.SameFile(got, want) {
		t.Errorf("the starter's model.onnx resolves to %s (%v), not to %s", cfg.Model.ONNX, err, model)
	}
	if cfg.Head.Pool != "flatten" {
		t.Errorf("the starter for the demo's VGG-style base pools with %s, want flatten", cfg.Head.Pool)
	}

	edited := []byte("# edited\n")
	if err := os.WriteFile(recipe, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "import", model, "--write-config", recipe)
	if err == nil || !strings.Contains(err.Error(), recipe) || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("--write-config over an existing recipe: %v, want an error naming it and --overwrite\n%s", err, out)
	}
	if raw, _ := os.ReadFile(recipe); string(raw) != string(edited) {
		t.Errorf("the edited recipe was replaced:\n%s", raw)
	}
	if out, err := runCLI(t, "import", model, "--write-config", recipe, "--overwrite"); err != nil {
		t.Fatalf("--overwrite: %v\n%s", err, out)
	}
	if _, err := finetune.LoadConfig(recipe); err != nil {
		t.Errorf("--overwrite did not write the starter: %v", err)
	}
}

// TestImportHeadlessOfAHeadlessBase checks that --headless on a model that is headless
// already is a note, not an error, and writes the model and starter as asked.
func TestImportHeadlessOfAHeadlessBase(t *testing.T) {
	dir := t.TempDir()
	out, err := runCLI(t, "import", "../../models/fmnist-vgg/base.onnx", "--headless", "-o", filepath.Join(dir, "base.onnx"), "--write-config", filepath.Join(dir, "c.yaml"))
	if err != nil {
		t.Fatalf("--headless on a headless base: %v\n%s", err, out)
	}
	if !strings.Contains(out, "already headless") {
		t.Errorf("no note that the base is already headless:\n%s", out)
	}
	cfg, err := finetune.LoadConfig(filepath.Join(dir, "c.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Model.ONNX != filepath.Join(dir, "base.onnx") {
		t.Errorf("model.onnx %s, want the written base", cfg.Model.ONNX)
	}
}

// TestFinetuneIntoAnEarlierRun runs a reduced starter recipe twice into the same
// output.dir: the second run is refused with a message naming --resume and
// --overwrite, and runs with --overwrite.
func TestFinetuneIntoAnEarlierRun(t *testing.T) {
	dir := t.TempDir()
	testData(t, dir)
	run := filepath.Join(dir, "run")
	cfg := writeFile(t, filepath.Join(dir, "config.yaml"), reduce(t, starterRecipe(t, dir), dir, run, 1))
	if out, err := runCLI(t, "finetune", "-c", cfg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := runCLI(t, "finetune", "-c", cfg)
	if err == nil {
		t.Fatalf("a second run into %s was not refused:\n%s", run, out)
	}
	for _, want := range []string{run, "--resume " + run, "--overwrite", finetune.RunModel} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q lacks %q", err, want)
		}
	}
	if out, err := runCLI(t, "finetune", "-c", cfg, "--overwrite"); err != nil {
		t.Fatalf("--overwrite: %v\n%s", err, out)
	}
}

// TestFinetuneRepairEndToEnd runs examples/naive (every layer from the start at lr 0.1)
// through the CLI with --repair, at four epochs: the finding is printed with its fix,
// the repair with the recipe it rewrites, recipe.repaired.yaml is written and loads as
// the head stage then ULMFiT, and the run ends at 90% or more on the test images
// (examples/fixed's recipe reaches 93% at eight epochs).
func TestFinetuneRepairEndToEnd(t *testing.T) {
	raw, err := os.ReadFile("../../examples/naive/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recipe := strings.ReplaceAll(string(raw), "../../", filepath.Join(mustAbs(t, "../.."), "")+"/")
	recipe = strings.Replace(recipe, "{name: all, epochs: 8,", "{name: all, epochs: 4,", 1)
	run := filepath.Join(dir, "run")
	recipe = strings.Replace(recipe, "output: {dir: "+mustAbs(t, "../..")+"/runs/naive}", "output: {dir: "+run+"}", 1)
	if !strings.Contains(recipe, run) || !strings.Contains(recipe, "epochs: 4") {
		t.Fatalf("could not edit the naive recipe:\n%s", recipe)
	}
	cfg := writeFile(t, filepath.Join(dir, "naive.yaml"), recipe)
	out, err := runCLI(t, "finetune", "-c", cfg, "--repair")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"finding grad_exploding (stage all, epoch 1, step 2", "repair (grad_exploding): back to the start of stage all", "+ {name: head,", "the repaired recipe is " + filepath.Join(run, finetune.RunRepaired), "diagnostics: "} {
		if !strings.Contains(out, want) {
			t.Errorf("finetune --repair output lacks %q:\n%s", want, out)
		}
	}
	repaired, err := finetune.LoadConfig(filepath.Join(run, finetune.RunRepaired))
	if err != nil {
		t.Fatal(err)
	}
	if len(repaired.Stages) != 2 || repaired.Stages[0].Train.Groups[0] != "head" || repaired.Stages[1].LR.Factor != 2.6 {
		t.Errorf("recipe.repaired.yaml's stages: %+v", repaired.Stages)
	}
	var acc float64
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "test: ") {
			if _, err := fmt.Sscanf(line[strings.Index(line, "accuracy ")+len("accuracy "):], "%f%%", &acc); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
	}
	if acc < 90 {
		t.Errorf("the repaired naive recipe reached %.2f%% on the test images, want 90%% or more", acc)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
