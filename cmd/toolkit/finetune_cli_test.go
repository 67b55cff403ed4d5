package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"toolkit/finetune"
	"toolkit/npy"
	"toolkit/onnx"
)

// The finetune tests run the CLI on a reduced recipe: the headless cut of the parity
// fixture's small VGG (3x16x16 input) and a few Fashion-MNIST images of the demo data,
// resized to 16x16.
const demoData = "../../data/fmnist-5to9"

// copyImages copies the first perClass images of every class folder of src into dst.
func copyImages(t *testing.T, src, dst string, perClass int) {
	t.Helper()
	classes, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range classes {
		if !c.IsDir() {
			continue
		}
		files, err := filepath.Glob(filepath.Join(src, c.Name(), "*.png"))
		if err != nil || len(files) < perClass {
			t.Fatalf("%s: %d images, want %d (%v)", filepath.Join(src, c.Name()), len(files), perClass, err)
		}
		if err := os.MkdirAll(filepath.Join(dst, c.Name()), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files[:perClass] {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, c.Name(), filepath.Base(f)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// starterRecipe runs `toolkit import --headless -o base.onnx --write-config` on the
// fixture in dir and checks that the config it writes parses, points at the cut model
// and has its input size. It returns the config's text.
func starterRecipe(t *testing.T, dir string) string {
	t.Helper()
	base, cfgPath := filepath.Join(dir, "base.onnx"), filepath.Join(dir, "starter.yaml")
	if out, err := runCLI(t, "import", filepath.Join(fixture, "model.onnx"), "--headless", "-o", base, "--write-config", cfgPath); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cfg, err := finetune.LoadConfig(cfgPath)
	if err != nil {
		t.Fatalf("the config import wrote does not load: %v", err)
	}
	if cfg.Model.ONNX != base {
		t.Errorf("starter config: model.onnx %q, want the cut model %q", cfg.Model.ONNX, base)
	}
	if in := cfg.Model.Input; in != (finetune.InputConfig{Channels: 3, Height: 16, Width: 16}) {
		t.Errorf("starter config: model.input %+v, want 3x16x16 (the base's input)", in)
	}
	if len(cfg.Stages) != 2 {
		t.Errorf("starter config: %d stages, want the head stage and the all stage", len(cfg.Stages))
	}
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// reduce edits the starter recipe the way its CHANGE comments ask (classes, data paths)
// and shrinks it to a short run writing to outDir; every edit must apply once.
func reduce(t *testing.T, recipe, dataDir, outDir string, allEpochs int) string {
	t.Helper()
	for _, e := range [][2]string{
		{"classes: 2 ", "classes: 5 "},
		{"train: data/train ", fmt.Sprintf("train: %q ", filepath.Join(dataDir, "train"))},
		{`test: "" `, fmt.Sprintf("test: %q ", filepath.Join(dataDir, "test"))},
		{"{name: head, epochs: 3,", "{name: head, epochs: 1,"},
		{"{name: all, epochs: 5,", fmt.Sprintf("{name: all, epochs: %d,", allEpochs)},
		{"batch_size: 32", "batch_size: 10"},
		{"output: {dir: runs/finetune}", fmt.Sprintf("output: {dir: %q}", outDir)},
	} {
		if n := strings.Count(recipe, e[0]); n != 1 {
			t.Fatalf("the starter config holds %q %d times, want once:\n%s", e[0], n, recipe)
		}
		recipe = strings.Replace(recipe, e[0], e[1], 1)
	}
	return recipe
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testData copies a reduced demo data set into dir: 12 training and 4 test images per class.
func testData(t *testing.T, dir string) {
	t.Helper()
	copyImages(t, filepath.Join(demoData, "train"), filepath.Join(dir, "train"), 12)
	copyImages(t, filepath.Join(demoData, "test"), filepath.Join(dir, "test"), 4)
}

// TestWriteConfigRunsInFinetune writes a starter recipe with import --write-config,
// edits it as its comments ask, runs it with finetune at reduced size, and runs the
// model it writes with `toolkit run`.
func TestWriteConfigRunsInFinetune(t *testing.T) {
	dir := t.TempDir()
	testData(t, dir)
	run := filepath.Join(dir, "run")
	cfg := writeFile(t, filepath.Join(dir, "config.yaml"), reduce(t, starterRecipe(t, dir), dir, run, 1))
	out, err := runCLI(t, "finetune", "-c", cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"group block1", "group head", "epoch  1  head", "epoch  2  all", "test: loss", "wrote " + filepath.Join(run, finetune.RunModel),
		"* marks each epoch that is the best so far", "best.onnx: epoch "} {
		if !strings.Contains(out, want) {
			t.Errorf("finetune output lacks %q:\n%s", want, out)
		}
	}
	checkRunFolderModes(t, run)

	x := &npy.Array{Shape: []int{2, 3, 16, 16}, Data: make([]float32, 2*3*16*16)}
	for i := range x.Data {
		x.Data[i] = float32(math.Sin(float64(i)))
	}
	in, logits := filepath.Join(dir, "x.npy"), filepath.Join(dir, "logits.npy")
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "run", filepath.Join(run, finetune.RunModel), "-i", in, "-o", logits); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	y, err := npy.ReadFile(logits)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(y.Shape, []int{2, 5}) {
		t.Errorf("the fine-tuned model gives logits of shape %v, want [2 5] (batch 2, 5 classes)", y.Shape)
	}
}

// checkRunFolderModes checks that every file of a run folder has the mode os.Create
// gives a new file in the same place (0666 less the umask).
func checkRunFolderModes(t *testing.T, run string) {
	t.Helper()
	probe := filepath.Join(filepath.Dir(run), "probe")
	f, err := os.Create(probe)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, err := os.Stat(probe)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(probe)
	want := st.Mode().Perm()
	seen := map[string]bool{}
	err = filepath.WalkDir(run, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(run, path)
		seen[rel] = true
		if got := info.Mode().Perm(); got != want {
			t.Errorf("run folder: %s has mode %04o, want %04o (as os.Create gives)", rel, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{finetune.RunConfig, finetune.RunMetrics, finetune.RunCurves, finetune.RunSummary, finetune.RunModel} {
		if !seen[f] {
			t.Errorf("run folder lacks %s", f)
		}
	}
}

// cancelOnEpoch is the standard output of an in-process finetune: it cancels the
// command's context when the first epoch line is printed, as Ctrl-C would.
type cancelOnEpoch struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel func()
}

func (w *cancelOnEpoch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "epoch  1 ") {
		w.cancel()
	}
	return len(p), nil
}

// TestFinetuneResumeAfterInterrupt interrupts a CLI finetune run after its first epoch
// (the command's context cancelled, as main does on Ctrl-C), resumes it with --resume,
// and checks that it ends with the weights and metrics of an uninterrupted run.
func TestFinetuneResumeAfterInterrupt(t *testing.T) {
	dir := t.TempDir()
	testData(t, dir)
	recipe := starterRecipe(t, dir)
	straight, interrupted := filepath.Join(dir, "straight"), filepath.Join(dir, "interrupted")
	out, err := runCLI(t, "finetune", "-c", writeFile(t, filepath.Join(dir, "straight.yaml"), reduce(t, recipe, dir, straight, 2)))
	if err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	cfg := writeFile(t, filepath.Join(dir, "interrupted.yaml"), reduce(t, recipe, dir, interrupted, 2))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelOnEpoch{cancel: cancel}
	cmd := newRootCommand()
	cmd.SetOut(w)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"finetune", "-c", cfg})
	if err := cmd.ExecuteContext(ctx); !errors.Is(err, finetune.ErrInterrupted) {
		t.Fatalf("interrupted run: %v, want finetune.ErrInterrupted (exit status 130)\n%s", err, w.buf.String())
	}
	if !strings.Contains(w.buf.String(), "interrupted: checkpoint saved") || strings.Contains(w.buf.String(), "epoch  2 ") {
		t.Fatalf("the run was not interrupted after its first epoch:\n%s", w.buf.String())
	}
	if _, err := os.Stat(filepath.Join(interrupted, finetune.RunModel)); err == nil {
		t.Errorf("an interrupted run wrote its final %s", finetune.RunModel)
	}
	out, err = runCLI(t, "finetune", "--resume", interrupted)
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	// Interrupted after the head stage's one epoch: the run goes on at the next stage.
	if !strings.Contains(out, "resuming "+interrupted+" at the start of stage all (2 of 2)\n") {
		t.Errorf("resume output:\n%s", out)
	}
	sameRun(t, straight, interrupted)
	checkRunFolderModes(t, interrupted)
}

// sameRun checks that two run folders hold bit-identical model weights and the same
// metrics but for timings.
func sameRun(t *testing.T, want, got string) {
	t.Helper()
	read := func(dir string) map[string][]float32 {
		m, err := onnx.Read(filepath.Join(dir, finetune.RunModel))
		if err != nil {
			t.Fatal(err)
		}
		params := map[string][]float32{}
		for _, init := range m.Graph.Initializers {
			params[init.Name] = init.Floats
		}
		return params
	}
	pw, pg := read(want), read(got)
	if len(pw) != len(pg) {
		t.Errorf("%d initializers, the uninterrupted run %d", len(pg), len(pw))
	}
	for name, w := range pw {
		g := pg[name]
		if len(g) != len(w) {
			t.Errorf("initializer %s: %d values, the uninterrupted run %d", name, len(g), len(w))
			continue
		}
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Errorf("initializer %s[%d] = %v, the uninterrupted run %v", name, i, g[i], w[i])
				break
			}
		}
	}
	mw, mg := metrics(t, want), metrics(t, got)
	if !reflect.DeepEqual(mw, mg) {
		t.Errorf("metrics.jsonl differs from the uninterrupted run's (timings left out):\n%v\nwant\n%v", mg, mw)
	}
	if len(mw) < 3 {
		t.Errorf("the uninterrupted run logged %d epochs, want 3", len(mw))
	}
}

// metrics reads a run's metrics.jsonl without its timings.
func metrics(t *testing.T, dir string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, finetune.RunMetrics))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		delete(m, "images_per_sec")
		delete(m, "seconds")
		delete(m, "diagnostics_seconds")
		lines = append(lines, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
