package finetune

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Files of a run folder.
const (
	RunConfig     = "config.yaml"
	RunMetrics    = "metrics.jsonl"
	RunCurves     = "curves.png"
	RunModel      = "model.onnx"
	RunBest       = "best.onnx"
	RunCheckpoint = "checkpoint"
	RunSummary    = "summary.json"
)

// runFolder is the default hook: it keeps the run folder up to date.
//
//	config.yaml     the recipe as run (Resume reads it)
//	metrics.jsonl   one line per epoch
//	curves.png      loss and accuracy per epoch, stage boundaries marked
//	checkpoint/     the position after each epoch, and where Ctrl-C stopped
//	best.onnx       the model at its best validation accuracy
//	model.onnx      the model after the last stage
//	summary.json    the final metrics, with the test loss and accuracy
type runFolder struct {
	dir string
}

func newRunFolder(dir string) *runFolder { return &runFolder{dir: dir} }

func (r *runFolder) path(name string) string { return filepath.Join(r.dir, name) }

func (r *runFolder) OnStart(t *Trainer) error {
	raw, err := yaml.Marshal(t.cfg)
	if err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	if err := writeFileWith(r.path(RunConfig), func(f *os.File) error {
		_, err := f.Write(raw)
		return err
	}); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	// metrics.jsonl holds exactly the checkpointed history: a resumed run drops the
	// lines of epochs that ended after the last checkpoint.
	return r.writeMetrics(t.history)
}

func (r *runFolder) writeMetrics(history []EpochMetrics) error {
	return writeFileWith(r.path(RunMetrics), func(f *os.File) error {
		enc := json.NewEncoder(f)
		for _, m := range history {
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r *runFolder) OnEpoch(t *Trainer, m EpochMetrics) error {
	if err := r.writeMetrics(t.history); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	if err := PlotCurves(r.path(RunCurves), t.history); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	if m.Best {
		if err := t.SaveModel(r.path(RunBest)); err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
	}
	return t.SaveCheckpoint(r.path(RunCheckpoint))
}

func (r *runFolder) OnInterrupt(t *Trainer) error {
	return t.SaveCheckpoint(r.path(RunCheckpoint))
}

func (r *runFolder) OnEnd(t *Trainer, res *Result) error {
	if err := t.SaveModel(r.path(RunModel)); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	summary := map[string]any{"epochs": len(res.History), "classes": t.data.Classes}
	if n := len(res.History); n > 0 {
		summary["final"] = res.History[n-1]
	}
	if res.HasTest {
		summary["test_loss"], summary["test_acc"] = res.TestLoss, res.TestAcc
	}
	return writeFileWith(r.path(RunSummary), func(f *os.File) error {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(summary)
	})
}

// Resume continues the run in dir from its checkpoint, with the recipe saved there.
// The resumed run ends with the same weights as an uninterrupted one.
func Resume(dir string, opts ...Option) (*Trainer, error) {
	raw, err := os.ReadFile(filepath.Join(dir, RunConfig))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	cfg, err := ParseConfig(raw, filepath.Join(dir, RunConfig))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	cfg.Output.Dir = dir
	t, err := New(*cfg, opts...)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if err := t.LoadCheckpoint(filepath.Join(dir, RunCheckpoint)); err != nil {
		return nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	return t, nil
}
