package finetune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRunFolderReuse runs a recipe with repair into a folder, then:
//   - a second run into the same folder is refused, with an error naming the files,
//     --resume and --overwrite, and the first run's files are left as they were;
//   - a run with WithOverwrite removes the first run's files before it writes its own:
//     when it fails (here: interrupted before its first epoch) it leaves none of the
//     first run's model.onnx, summary.json or best.onnx beside its own config.yaml and
//     metrics.jsonl; when it runs without repair it leaves no recipe.repaired.yaml or
//     checkpoint-stage/ of the first run's repair;
//   - files that are not a run's (an lr-find.png, the user's notes) stay.
func TestRunFolderReuse(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].Epochs = 1
	first := cfg
	first.Diagnostics.Repair = true
	run := func(c Config, ctx context.Context, opts ...Option) error {
		tr, err := New(c, opts...)
		if err != nil {
			return err
		}
		_, err = tr.Run(ctx)
		return err
	}
	if err := run(first, context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := cfg.Output.Dir
	// A repaired run's files, as a repair leaves them (written here: the run had nothing
	// to repair).
	for _, f := range []string{RunRepaired, filepath.Join(RunStageStart, "x"), "lr-find.png", "notes.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("earlier\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := listFolder(t, dir)

	err := run(cfg, context.Background())
	var re *RunExistsError
	if !errors.As(err, &re) {
		t.Fatalf("a second run into %s: %v, want a RunExistsError", dir, err)
	}
	for _, want := range []string{dir, "--resume", "--overwrite", RunModel, RunMetrics, RunRepaired} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not name %q", err, want)
		}
	}
	if after := listFolder(t, dir); !slices.Equal(after, before) {
		t.Errorf("the refused run changed the folder:\n%v\nwas\n%v", after, before)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run(cfg, ctx, WithOverwrite()); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("the interrupted overwriting run: %v", err)
	}
	for _, gone := range []string{RunModel, RunSummary, RunBest, RunRepaired, RunStageStart} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("the overwriting run that stopped left the earlier run's %s", gone)
		}
	}
	for _, kept := range []string{"lr-find.png", "notes.txt", RunConfig, RunMetrics} {
		if _, err := os.Stat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("%s: %v", kept, err)
		}
	}

	if err := run(cfg, context.Background(), WithOverwrite()); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{RunRepaired, RunStageStart} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("a run without repair left the earlier repaired run's %s", gone)
		}
	}
	for _, want := range []string{RunModel, RunSummary, RunMetrics, RunConfig, RunCheckpoint, "notes.txt"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("after the overwriting run: %v", err)
		}
	}
	// Resuming the finished run is not refused.
	if _, err := Resume(dir); err != nil {
		t.Errorf("Resume of a run folder: %v", err)
	}
}

// listFolder lists every file under dir with its modification time and size (mod 7),
// and the folders.
func listFolder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if info.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		out = append(out, rel+" "+info.ModTime().String()+" "+strings.Repeat("*", int(info.Size()%7)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPosition checks the position in words that resuming and interrupting print: a
// stage whose epochs are done is over (issue 16: "resuming at stage 1, epoch 4" meant
// the start of stage 2).
func TestPosition(t *testing.T) {
	cfg := testConfig(t) // stages head (2 epochs) and all (2 epochs)
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	batches := tr.trainLoader.Len()
	for _, c := range []struct {
		p    Progress
		want string
	}{
		{Progress{}, "at the start of stage head (1 of 2)"},
		{Progress{StageEpoch: 1}, "at the start of epoch 2 of stage head (1 of 2)"},
		{Progress{StageEpoch: 1, Batch: 3}, fmt.Sprintf("in epoch 2 of stage head (1 of 2), after batch 3 of %d", batches)},
		{Progress{StageEpoch: 2}, "at the start of stage all (2 of 2)"},
		{Progress{Stage: 1, StageEpoch: 2}, "at the end of the run"},
		{Progress{Stage: 2, Done: true}, "at the end of the run"},
	} {
		tr.progress = c.p
		if got := tr.Position(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p, got, c.want)
		}
	}
}
