package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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

// TestCommandLineMistakes checks the CLI's answers to a new user's mistakes: a missing
// argument or an unknown flag ends with the usage line; the recipe is taken as
// finetune's one argument as well as with -c, but not both differently; --resume
// refuses -c (the run's own recipe is used), --overwrite and --repair; outside a clone
// of the repository, finetune without a recipe says how to get one instead of running
// the demo recipe on paths that are not there.
func TestCommandLineMistakes(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"predict without images", []string{"predict", "model.onnx"}, []string{"predict needs a model and at least one image", "usage: toolkit predict MODEL.onnx IMAGE|DIR..."}},
		{"run without a model", []string{"run"}, []string{"accepts 1 arg", "usage: toolkit run MODEL.onnx"}},
		{"an unknown flag", []string{"evaluate", "m.onnx", "--bogus"}, []string{"unknown flag: --bogus", "usage: toolkit evaluate MODEL.onnx"}},
		{"two recipes", []string{"finetune", "-c", "a.yaml", "b.yaml"}, []string{"two recipes: -c a.yaml and b.yaml"}},
		{"resume with a recipe", []string{"finetune", "--resume", "runs/x", "-c", "a.yaml"}, []string{"--resume runs/x continues that run with the recipe it saved", "a.yaml would be ignored"}},
		{"resume with overwrite", []string{"finetune", "--resume", "runs/x", "--overwrite"}, []string{"give one of them"}},
		{"resume with repair", []string{"finetune", "--resume", "runs/x", "--repair"}, []string{"--repair cannot change it"}},
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
	t.Run("no recipe outside the repository", func(t *testing.T) {
		t.Chdir(t.TempDir())
		out, err := runCLI(t, "finetune")
		if err == nil || !strings.Contains(err.Error(), "no recipe: give one with -c config.yaml") {
			t.Errorf("finetune without a recipe outside the repository: %v\n%s", err, out)
		}
	})
	out, err := runCLI(t, "--version")
	if err != nil || !strings.HasPrefix(out, "toolkit ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version: %v %q", err, out)
	}
}

// TestFinetuneDescribesTheModel checks the lines finetune starts with: the parameter
// count is that of the layer groups listed below it (which add up to it), in tensors,
// with the constants counted apart; the * of the epoch lines is explained; and the
// recipe is accepted as the one argument.
func TestFinetuneDescribesTheModel(t *testing.T) {
	dir := t.TempDir()
	testData(t, dir)
	run := filepath.Join(dir, "run")
	cfg := writeFile(t, filepath.Join(dir, "config.yaml"), reduce(t, starterRecipe(t, dir), dir, run, 1))
	out, err := runCLI(t, "finetune", cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var total, tensors, groups int
	var sum, sumTensors, listed int
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "model: ") {
			var count string
			if _, err := fmt.Sscanf(line, "model: %s parameters in %d tensors, in %d layer groups", &count, &tensors, &groups); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			total = atoiCommas(t, count)
		}
		if strings.HasPrefix(line, "  group ") {
			f := strings.Fields(line)
			n, _ := strconv.Atoi(f[2])
			sumTensors += n
			sum += atoiCommas(t, f[4])
			listed++
		}
	}
	if total == 0 || total != sum || tensors != sumTensors || groups != listed {
		t.Errorf("model line: %d parameters in %d tensors, %d groups; the groups list %d parameters in %d tensors, %d groups:\n%s", total, tensors, groups, sum, sumTensors, listed, out)
	}
	if !strings.Contains(out, "value is never trained (constants such as Dropout's ratio") {
		t.Errorf("the Dropout ratio constant is not counted apart:\n%s", out)
	}
}

func atoiCommas(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestLRFindRatiosInModelOrder runs lr-find on the demo recipe's second stage: the
// ratios of its groups are listed earliest group first, as the recipe's groups are
// (early, late, head), not alphabetically; lr-find.png gets os.Create's mode.
func TestLRFindRatiosInModelOrder(t *testing.T) {
	dir := t.TempDir()
	plot := filepath.Join(dir, "lr-find.png")
	out, err := runCLI(t, "lr-find", "-c", "../../config.yaml", "--stage", "all", "--steps", "12", "-o", plot)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	_, ratios, _ := strings.Cut(out, "ratios")
	i, j, k := strings.Index(ratios, " early "), strings.Index(ratios, " late "), strings.Index(ratios, " head ")
	if i < 0 || j < i || k < j {
		t.Errorf("the ratios are not in the groups' order early, late, head:\n%s", out)
	}
	probe := filepath.Join(dir, "probe")
	f, err := os.Create(probe)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	want, _ := os.Stat(probe)
	if got, err := os.Stat(plot); err != nil || got.Mode().Perm() != want.Mode().Perm() {
		t.Errorf("lr-find.png: %v, mode %v, want %v", err, got.Mode().Perm(), want.Mode().Perm())
	}
}
