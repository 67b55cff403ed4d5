package finetune

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/finetune/schedule"
	"toolkit/onnx"
)

// TestCheckpointLinksUnchangedGroups checks that a checkpoint writes only the layer
// groups whose weights changed since the one before: in a head-only stage the base's
// data files are the previous checkpoint's (the same file, linked), the head's is new;
// once the base trains, every file is new. The resume tests check that what is saved
// reads back as the run's state.
func TestCheckpointLinksUnchangedGroups(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 2, 1
	cfg.Output.CheckpointEvery = 0 // every epoch
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.Output.Dir, RunCheckpoint)
	var epochs []map[string]os.FileInfo // each epoch's data files, by name
	tr.hooks = append(tr.hooks, Hook{Name: "stat", Epoch: func(tr *Trainer, m *EpochMetrics) error {
		if err := tr.ckpt.Wait(); err != nil {
			return err
		}
		files := map[string]os.FileInfo{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "weights-") {
				if files[e.Name()], err = os.Stat(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
		epochs = append(epochs, files)
		return nil
	}})
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(epochs) != 3 {
		t.Fatalf("%d epochs seen, want 3", len(epochs))
	}
	if len(epochs[0]) != len(tr.groups) {
		t.Fatalf("data files %v, want one per group (%d)", names(epochs[0]), len(tr.groups))
	}
	for i, g := range tr.groups {
		name := dataFileName(i, g.Name)
		first, second, third := epochs[0][name], epochs[1][name], epochs[2][name]
		if first == nil || second == nil || third == nil {
			t.Fatalf("group %s: no %s in every checkpoint: %v", g.Name, name, names(epochs[1]))
		}
		// Epoch 2 trains the head alone; epoch 3 every group.
		if linked := os.SameFile(first, second); linked != (g.Name != HeadGroup) {
			t.Errorf("group %s, head-only epoch: %s linked from the checkpoint before: %v, want %v", g.Name, name, linked, g.Name != HeadGroup)
		}
		if os.SameFile(second, third) {
			t.Errorf("group %s: %s linked after an epoch that trained it", g.Name, name)
		}
	}
}

func names(m map[string]os.FileInfo) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDamagedCheckpoint resumes from checkpoints whose files were cut short or
// overwritten: each is an error naming the file, never a panic or a run that starts
// from wrong state.
func TestDamagedCheckpoint(t *testing.T) {
	cfg, tr := shortRun(t)
	ckpt := filepath.Join(cfg.Output.Dir, RunCheckpoint)
	optimizer := filepath.Join(ckpt, checkpointOptimizer)
	good, err := os.ReadFile(optimizer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(cfg.Output.Dir); err != nil {
		t.Fatalf("the intact checkpoint: %v", err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"cut in the header", good[:20], "header"},
		{"cut in the state", good[:len(good)-4], "unexpected EOF"},
		{"bytes after it", append(append([]byte(nil), good...), 0), "bytes after the last parameter's state"},
		{"not a state file", []byte("\xff\xff\xff\xff\xff\xff\xff\xffxyz"), "not an optimizer state file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(optimizer, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Resume(cfg.Output.Dir)
			if err == nil || !strings.Contains(err.Error(), optimizer) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v\nwant an error naming %s and containing %q", err, optimizer, c.want)
			}
		})
	}
	if err := os.WriteFile(optimizer, good, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(ckpt, dataFileName(0, tr.groups[0].Name))
	raw, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(data, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(cfg.Output.Dir); err == nil || !strings.Contains(err.Error(), filepath.Base(data)) {
		t.Errorf("a data file cut in half: %v, want an error naming %s", err, filepath.Base(data))
	}
}

// TestCheckpointEvery checks output.checkpoint_every: with a long interval an epoch is
// saved only where it ends its stage; with 0, every epoch.
func TestCheckpointEvery(t *testing.T) {
	for _, c := range []struct {
		every float64
		want  []int // the epoch the checkpoint holds after each epoch (0: none yet)
	}{
		{1e9, []int{0, 2, 2, 4}},
		{0, []int{1, 2, 3, 4}},
	} {
		cfg := testConfig(t)
		cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 2, 2
		cfg.Output.CheckpointEvery = c.every
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(cfg.Output.Dir, RunCheckpoint)
		var got []int
		tr.hooks = append(tr.hooks, Hook{Name: "look", Epoch: func(tr *Trainer, m *EpochMetrics) error {
			if err := tr.ckpt.Wait(); err != nil {
				return err
			}
			if _, err := os.Stat(dir); err != nil {
				got = append(got, 0)
				return nil
			}
			s, err := tr.readSnapshot(dir)
			if err != nil {
				return err
			}
			got = append(got, s.progress.Epoch)
			return nil
		}})
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("checkpoint_every %v: the checkpoint held epochs %v, want %v", c.every, got, c.want)
		}
	}
}

// TestBestModelHoldsTheBestEpoch checks, for output.best val_loss (the default) and
// val_acc, that best.onnx, written in the background while the next epoch trains, holds
// the weights of the epoch that the metrics in metrics.jsonl make the best (the lowest
// validation loss, or the highest validation accuracy, the earliest of a tie), not those
// of a later step, and that summary.json and Result.Best name that epoch.
//
// The recipe (seed 4, high rates) is one where the two metrics choose different epochs:
// the last one has the lowest validation loss, an earlier one the highest accuracy.
func TestBestModelHoldsTheBestEpoch(t *testing.T) {
	chosen := map[string]int{}
	for _, metric := range []string{"val_loss", "val_acc", "val_macro_f1"} {
		t.Run(metric, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Seed = 4
			cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 2, 3
			cfg.Stages[0].LR = schedule.Rates{Rate: 3e-2}
			cfg.Stages[1].LR = schedule.Rates{Max: 1e-2, Factor: 2.6}
			if metric != "val_loss" {
				cfg.Output.Best = Monitor(metric)
			}
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			weights := map[int]map[string][]float32{}
			tr.hooks = append(tr.hooks, Hook{Name: "keep", Epoch: func(tr *Trainer, m *EpochMetrics) error {
				weights[m.Epoch] = weightsOf(tr)
				return nil
			}})
			res, err := tr.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var logged []EpochMetrics
			for _, r := range readLog(t, filepath.Join(cfg.Output.Dir, RunMetrics)) {
				if r.Epoch != nil {
					logged = append(logged, *r.Epoch)
				}
			}
			if len(logged) != 5 {
				t.Fatalf("metrics.jsonl holds %d epochs, want 5", len(logged))
			}
			best := 0
			for i, m := range logged {
				if metric == "val_loss" && *m.ValLoss < *logged[best].ValLoss || metric == "val_acc" && *m.ValAcc > *logged[best].ValAcc ||
					metric == "val_macro_f1" && *m.ValMacroF1 > *logged[best].ValMacroF1 {
					best = i
				}
			}
			want := logged[best]
			if !res.HasBest || res.Best.Epoch != want.Epoch || res.Best.Metric != metric {
				t.Errorf("Result.Best %+v (has %v), want epoch %d by %s", res.Best, res.HasBest, want.Epoch, metric)
			}
			var summary struct{ Best BestEpoch }
			raw, err := os.ReadFile(filepath.Join(cfg.Output.Dir, RunSummary))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &summary); err != nil {
				t.Fatal(err)
			}
			value, _ := Monitor(metric).value(&want)
			if w := (BestEpoch{Metric: metric, Mode: Monitor(metric).Mode, Value: value, Epoch: want.Epoch, Stage: want.Stage, StageEpoch: want.StageEpoch}); summary.Best != w {
				t.Errorf("summary.json best %+v, want %+v", summary.Best, w)
			}
			m, err := onnx.Read(filepath.Join(cfg.Output.Dir, RunBest))
			if err != nil {
				t.Fatal(err)
			}
			for name, w := range weights[want.Epoch] {
				init := m.Graph.Initializer(name)
				if init == nil || !slices.Equal(init.Floats, w) {
					t.Errorf("best.onnx: %s differs from epoch %d's weights", name, want.Epoch)
				}
			}
			for _, m := range logged {
				t.Logf("epoch %d val loss %.4f acc %.3f macro-F1 %.3f", m.Epoch, *m.ValLoss, *m.ValAcc, *m.ValMacroF1)
			}
			t.Logf("best by %s: epoch %d of %d", metric, want.Epoch, len(logged))
			chosen[metric] = want.Epoch
		})
	}
	if chosen["val_loss"] == chosen["val_acc"] {
		t.Errorf("both metrics chose epoch %d: the recipe does not tell them apart", chosen["val_loss"])
	}
}

// readLog reads a metrics.jsonl.
func readLog(t *testing.T, path string) []Record {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}

// shortRun runs testConfig's two stages for an epoch each and returns the recipe and
// the trainer.
func shortRun(t *testing.T) (Config, *Trainer) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 1, 1
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return cfg, tr
}
