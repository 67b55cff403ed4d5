package finetune

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Files of a run folder.
const (
	RunConfig     = "config.yaml"
	RunRepaired   = "recipe.repaired.yaml"
	RunMetrics    = "metrics.jsonl"
	RunCurves     = "curves.png"
	RunModel      = "model.onnx"
	RunBest       = "best.onnx"
	RunCheckpoint = "checkpoint"
	RunStageStart = "checkpoint-stage"
	RunSummary    = "summary.json"
	// RunTensorBoard is the folder of the TensorBoard event files (output.tensorboard).
	RunTensorBoard = "tensorboard"
)

// RunFiles lists what a run writes in its folder, files and folders (the checkpoints'
// with the .tmp and .old folders a save swaps through), and confusion.png, which toolkit
// evaluate draws beside a run's model: the names a new run refuses to mix with
// (RunExistsError) and that WithOverwrite removes. Anything else in the folder (an
// lr-find.png, the user's own files) is left alone.
var RunFiles = []string{
	RunConfig, RunRepaired, RunMetrics, RunCurves, RunModel, RunBest, RunSummary,
	RunCheckpoint, RunCheckpoint + ".tmp", RunCheckpoint + ".old",
	RunStageStart, RunStageStart + ".tmp", RunStageStart + ".old",
	RunTensorBoard, "confusion.png",
}

// RunExistsError is New's refusal to start a run in a folder that holds another run's
// files.
type RunExistsError struct {
	Dir   string
	Files []string // the run files found, in RunFiles' order
}

func (e *RunExistsError) Error() string {
	return fmt.Sprintf("output.dir %s holds another run (%s): continue it with toolkit finetune --resume %s (finetune.Resume), or start over with --overwrite (finetune.WithOverwrite), which removes those files first, or set another output.dir",
		e.Dir, strings.Join(e.Files, ", "), e.Dir)
}

// existingRunFiles returns the names of RunFiles present in dir.
func existingRunFiles(dir string) []string {
	var found []string
	for _, name := range RunFiles {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			found = append(found, name)
		}
	}
	return found
}

// runFolder keeps the run folder up to date, through the trainer's exported methods
// alone:
//
//	config.yaml           the recipe as given (Resume reads it)
//	recipe.repaired.yaml  the recipe as a repair rewrote it (diagnostics: {repair: true})
//	metrics.jsonl         one line per epoch, finding and repair
//	curves.png            loss and accuracy per epoch, stage boundaries marked
//	checkpoint/           the position after an epoch (at a stage's end, else at most
//	                      every output.checkpoint_every seconds), and where Ctrl-C stopped
//	checkpoint-stage/     the state at the start of the current stage, when repairing
//	best.onnx             the model at its best epoch by output.best (summary.json says which)
//	model.onnx            the model after the last stage
//	summary.json          the final metrics, with the test loss and accuracy
type runFolder struct {
	dir string
	// plotted is when curves.png was last drawn; stale says that epochs were recorded
	// since. Drawing takes tens of milliseconds, as long as a whole epoch of a head
	// trained on cached features: it is skipped while the last drawing is under
	// curvesEvery old, and the end of the run and an interruption draw what is missing.
	plotted time.Time
	stale   bool
	// saved is when the last epoch checkpoint was started (the run's start before it).
	saved time.Time
	// remove lists an earlier run's files to remove before this run writes its own
	// (WithOverwrite).
	remove []string
}

// curvesEvery is how often curves.png is redrawn at most while epochs go by.
const curvesEvery = time.Second

func newRunFolder(dir string) *runFolder { return &runFolder{dir: dir} }

func (r *runFolder) path(name string) string { return filepath.Join(r.dir, name) }

// hooks are the run folder's hooks, in order: the metrics files, then the models and
// checkpoints.
func (r *runFolder) hooks() []Hook {
	return []Hook{
		{Name: "metrics_file", Start: r.start, Epoch: r.epochFiles, Finding: r.finding, Repair: r.repaired, Notice: r.notice},
		{Name: "checkpoint", Epoch: r.checkpoint, Interrupt: r.interrupt, End: r.end},
	}
}

func (r *runFolder) start(t *Trainer) error {
	r.saved = time.Now()
	for _, name := range r.remove {
		if err := os.RemoveAll(r.path(name)); err != nil {
			return fmt.Errorf("run folder: removing the earlier run's files: %w", err)
		}
	}
	r.remove = nil
	raw, err := yaml.Marshal(t.Config())
	if err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	if err := writeFileWith(r.path(RunConfig), func(f *os.File) error {
		_, err := f.Write(raw)
		return err
	}); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	// metrics.jsonl holds exactly the checkpointed log: a resumed run drops the lines
	// of what happened after the last checkpoint.
	return r.writeMetrics(t.Log())
}

func (r *runFolder) writeMetrics(log []Record) error {
	return writeFileWith(r.path(RunMetrics), func(f *os.File) error {
		enc := json.NewEncoder(f)
		for _, rec := range log {
			if err := enc.Encode(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r *runFolder) epochFiles(t *Trainer, m *EpochMetrics) error {
	if err := r.writeMetrics(t.Log()); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	r.stale = true
	if time.Since(r.plotted) < curvesEvery {
		return nil
	}
	return r.plot(t)
}

// plot draws curves.png if epochs were recorded since it was last drawn.
func (r *runFolder) plot(t *Trainer) error {
	if !r.stale {
		return nil
	}
	if err := PlotCurves(r.path(RunCurves), t.History()); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	r.plotted, r.stale = time.Now(), false
	return nil
}

func (r *runFolder) finding(t *Trainer, f Finding) error {
	return r.writeMetrics(t.Log())
}

func (r *runFolder) notice(t *Trainer, n Notice) error {
	return r.writeMetrics(t.Log())
}

// repaired writes the repaired recipe and a checkpoint at the restarted stage, so that
// a resumed run goes on with the repaired recipe.
func (r *runFolder) repaired(t *Trainer, rep Repair) error {
	// The recipe sits in the run folder: its paths are made absolute so that it runs
	// from there (toolkit finetune -c RUN/recipe.repaired.yaml).
	cfg := t.Config()
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	cfg.ResolvePaths(cwd)
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	if err := writeFileWith(r.path(RunRepaired), func(f *os.File) error {
		_, err := f.Write(raw)
		return err
	}); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	if err := r.writeMetrics(append(t.Log(), Record{Repair: &rep})); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	return nil
}

// checkpoint saves, in the background, the epoch's checkpoint when
// output.checkpoint_every seconds have passed since the last one or the epoch ends its
// stage, and best.onnx when the epoch is the best yet.
func (r *runFolder) checkpoint(t *Trainer, m *EpochMetrics) error {
	var dir, best string
	if m.Best {
		best = r.path(RunBest)
	}
	if t.StageOver() || time.Since(r.saved).Seconds() >= t.Config().Output.CheckpointEvery {
		dir, r.saved = r.path(RunCheckpoint), time.Now()
	}
	if dir == "" && best == "" {
		return nil
	}
	if err := t.StartSave(dir, best); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	return nil
}

func (r *runFolder) interrupt(t *Trainer) error {
	return errors.Join(t.SaveCheckpoint(r.path(RunCheckpoint)), r.plot(t))
}

func (r *runFolder) end(t *Trainer, res *Result) error {
	if err := r.plot(t); err != nil {
		return err
	}
	if err := t.SaveModel(r.path(RunModel)); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	summary := map[string]any{"epochs": len(res.History), "classes": t.Classes(),
		"findings": len(res.Findings), "repairs": len(res.Repairs)}
	if n := len(res.History); n > 0 {
		summary["final"] = res.History[n-1]
	}
	if res.HasTest {
		summary["test_loss"], summary["test_acc"] = res.TestLoss, res.TestAcc
	}
	if res.HasBest {
		summary["best"] = res.Best
	}
	return writeFileWith(r.path(RunSummary), func(f *os.File) error {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(summary)
	})
}
