package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"toolkit"
	"toolkit/finetune"
)

func newFinetuneCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "finetune [-c config.yaml] [--resume RUN_DIR] [--repair] [--precision bf16]",
		Short: "Fine-tune a base model with a new head, in stages",
		Long: `Runs the stages of a fine-tuning recipe and writes the run folder: model.onnx,
best.onnx, checkpoint/, metrics.jsonl, curves.png, summary.json.

Without -c it reads ./config.yaml, or the demo recipe built into the binary.
Ctrl-C saves a checkpoint; --resume RUN_DIR continues from it.

Diagnostics watch the run and print each finding once, with the recipe lines that
fix it (diagnostics: off in the recipe turns them off). --repair (or diagnostics:
{repair: true}) applies a fix when one fires: the run goes back to the start of the
failing stage, goes on with the rewritten recipe and writes it to
recipe.repaired.yaml in the run folder.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringP("config", "c", "", "the recipe (YAML)")
	cmd.Flags().String("resume", "", "continue the run in this folder")
	cmd.Flags().Bool("repair", false, "apply the fix of a finding and carry on (diagnostics: {repair: true})")
	cmd.Flags().String("precision", "", "float32 or bf16: the recipe's precision (bf16 needs a CPU with AVX512_BF16)")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out := cmd.OutOrStdout()
		progress := &progressHook{w: cmd.ErrOrStderr(), out: out, bars: isTerminal(cmd.ErrOrStderr())}
		var (
			t   *finetune.Trainer
			err error
		)
		if dir := v.GetString("resume"); dir != "" {
			t, err = finetune.Resume(dir, finetune.WithHooks(progress.hook()))
			if err == nil {
				p := t.Progress()
				fmt.Fprintf(out, "resuming %s at stage %d, epoch %d, batch %d\n", dir, p.Stage+1, p.StageEpoch+1, p.Batch)
			}
		} else {
			var cfg *finetune.Config
			if cfg, err = loadRecipe(v.GetString("config"), out); err != nil {
				return err
			}
			if v.GetBool("repair") {
				cfg.Diagnostics.Repair = true
			}
			if p := v.GetString("precision"); p != "" {
				cfg.Precision = p
			}
			t, err = finetune.New(*cfg, finetune.WithHooks(progress.hook()))
		}
		if err != nil {
			return err
		}
		describe(out, t)
		res, err := t.Run(cmd.Context())
		if errors.Is(err, finetune.ErrInterrupted) {
			p := t.Progress()
			fmt.Fprintf(out, "\ninterrupted: checkpoint saved at stage %d, epoch %d, batch %d; continue with: toolkit finetune --resume %s\n",
				p.Stage+1, p.StageEpoch+1, p.Batch, t.Config().Output.Dir)
			return nil
		}
		if err != nil {
			return err
		}
		dir := t.Config().Output.Dir
		switch n := len(res.Findings); {
		case n == 0 && !t.Config().Diagnostics.Off:
			fmt.Fprintln(out, "diagnostics: no findings")
		case n > 0:
			fmt.Fprintf(out, "diagnostics: %s, %s (metrics.jsonl lists them)\n", plural(n, "finding"), plural(len(res.Repairs), "repair"))
		}
		if res.HasTest {
			fmt.Fprintf(out, "test: loss %.4f, accuracy %.2f%%\n", res.TestLoss, 100*res.TestAcc)
		}
		fmt.Fprintf(out, "wrote %s (and best.onnx, metrics.jsonl, curves.png, checkpoint/)\n", filepath.Join(dir, finetune.RunModel))
		return nil
	}
	return cmd
}

// loadRecipe reads the config file, ./config.yaml, or the built-in demo recipe.
func loadRecipe(path string, out io.Writer) (*finetune.Config, error) {
	if path != "" {
		return finetune.LoadConfig(path)
	}
	if _, err := os.Stat("config.yaml"); err == nil {
		fmt.Fprintln(out, "using ./config.yaml")
		return finetune.LoadConfig("config.yaml")
	}
	fmt.Fprintln(out, "using the built-in demo recipe (paths relative to the current folder)")
	return finetune.ParseConfig(toolkit.DemoConfig, "built-in config.yaml")
}

func describe(w io.Writer, t *finetune.Trainer) {
	m := t.Model()
	fmt.Fprintf(w, "model: %d parameters, %d trainable; classes: %s\n", m.NumParams(), len(m.TrainableNames()), strings.Join(t.Classes(), ", "))
	for _, g := range t.Groups() {
		n := 0
		for _, p := range g.Params {
			n += len(m.Param(p))
		}
		fmt.Fprintf(w, "  group %-10s %3d tensors %10d values\n", g.Name, len(g.Params), n)
	}
	t.DataSummary().WriteText(w)
}

// progressHook shows a progress bar per epoch and a line per finished epoch.
type progressHook struct {
	w, out io.Writer
	bars   bool // draw bars: the writer is a terminal
	bar    *progressbar.ProgressBar
	// lastFix is the fix printed last: the next finding with the same fix says so
	// instead of printing it again.
	lastFix string
}

// isTerminal reports whether w is a terminal (progress bars in a log file are noise).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (h *progressHook) hook() finetune.Hook {
	return finetune.Hook{Name: "progress", EpochStart: h.epochStart, Step: h.step, Epoch: h.epoch, Finding: h.finding, Repair: h.repair, Notice: h.notice}
}

func (h *progressHook) epochStart(t *finetune.Trainer, info finetune.StepInfo) error {
	if !h.bars {
		return nil
	}
	h.bar = progressbar.NewOptions(info.Batches,
		progressbar.OptionSetWriter(h.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%s %d/%d", info.Stage, info.StageEpoch, info.StageEpochs)),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return nil
}

func (h *progressHook) step(t *finetune.Trainer, info *finetune.StepInfo) error {
	if h.bar == nil {
		return nil
	}
	h.bar.Describe(fmt.Sprintf("%s %d/%d loss %.4f acc %.1f%% %.0f img/s", info.Stage, info.StageEpoch, info.StageEpochs,
		info.Loss, 100*info.Acc, info.ImagesPerSec))
	return h.bar.Set(info.Batch)
}

// clearBar removes the progress bar before a line is printed.
func (h *progressHook) clearBar() {
	if h.bar != nil {
		h.bar.Clear()
	}
}

func (h *progressHook) finding(t *finetune.Trainer, f finetune.Finding) error {
	h.clearBar()
	if f.Fix == h.lastFix {
		_, err := fmt.Fprintf(h.out, "finding %s (stage %s, epoch %d, step %d%s): %s\n  meaning: %s\n  fix: as above\n",
			f.Kind, f.Stage, f.Epoch, f.Step, groupSuffix(f.Group), f.Message, f.Meaning)
		return err
	}
	h.lastFix = f.Fix
	return f.WriteText(h.out)
}

func (h *progressHook) notice(t *finetune.Trainer, n finetune.Notice) error {
	h.clearBar()
	line := n.Message
	if n.Seconds > 0 {
		line += fmt.Sprintf(" (computed in %.1fs)", n.Seconds)
	}
	_, err := fmt.Fprintln(h.out, line)
	return err
}

func groupSuffix(g string) string {
	if g == "" {
		return ""
	}
	return ", group " + g
}

func (h *progressHook) repair(t *finetune.Trainer, r finetune.Repair) error {
	h.clearBar()
	if h.bar != nil {
		h.bar.Finish()
		h.bar = nil
	}
	return r.WriteText(h.out)
}

func (h *progressHook) epoch(t *finetune.Trainer, m *finetune.EpochMetrics) error {
	if h.bar != nil {
		h.bar.Finish()
		h.bar = nil
	}
	line := fmt.Sprintf("epoch %2d  %-8s %d  train loss %.4f acc %5.1f%%", m.Epoch, m.Stage, m.StageEpoch, m.TrainLoss, 100*m.TrainAcc)
	if m.ValLoss != nil {
		line += fmt.Sprintf("  val loss %.4f acc %5.1f%%", *m.ValLoss, 100**m.ValAcc)
	}
	line += fmt.Sprintf("  %.0f img/s  %.1fs", m.ImagesPerS, m.Seconds)
	if m.Best {
		line += "  *"
	}
	fmt.Fprintln(h.out, line)
	return nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
