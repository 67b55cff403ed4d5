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
		Use:   "finetune [-c config.yaml] [--resume RUN_DIR] [--repair] [--overwrite] [--precision bf16]",
		Short: "Fine-tune a base model with a new head, in stages",
		Long: `Runs the stages of a fine-tuning recipe and writes the run folder: model.onnx,
best.onnx, checkpoint/, metrics.jsonl, curves.png, summary.json.

Without -c it reads ./config.yaml, or the demo recipe built into the binary.
Ctrl-C (SIGINT) or SIGTERM saves a checkpoint and exits with status 130 or 143;
--resume RUN_DIR continues from it. An output.dir that holds another run is refused:
--resume continues that run, --overwrite removes its files and starts over.

Diagnostics watch the run and print each finding once, with the recipe lines that
fix it (diagnostics: off in the recipe turns them off). --repair (or diagnostics:
{repair: true}) applies a fix when one fires: the run goes back to the start of the
failing stage, goes on with the rewritten recipe and writes it to
recipe.repaired.yaml in the run folder.`,
		Args: withUsage(cobra.MaximumNArgs(1)),
	}
	cmd.Flags().StringP("config", "c", "", "the recipe (YAML); also as the one argument")
	cmd.Flags().String("resume", "", "continue the run in this folder")
	cmd.Flags().Bool("repair", false, "apply the fix of a finding and carry on (diagnostics: {repair: true})")
	cmd.Flags().Bool("overwrite", false, "start over in an output.dir that holds another run, removing that run's files first")
	cmd.Flags().String("precision", "", "float32 or bf16: the recipe's precision (bf16 needs a CPU with AVX512_BF16)")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) (err error) {
		out := cmd.OutOrStdout()
		progress := &progressHook{w: cmd.ErrOrStderr(), out: out, bars: isTerminal(cmd.ErrOrStderr())}
		config, err := recipeArg(v.GetString("config"), args)
		if err != nil {
			return err
		}
		// Under mpirun each process is a rank of one run; rank 0 prints and writes the
		// run folder, the others train in silence.
		rk, err := openRanks(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer func() { err = rk.end(err) }()
		opts := []finetune.Option{finetune.WithComm(rk.comm)}
		if rk.comm.Rank() == 0 {
			opts = append(opts, finetune.WithHooks(progress.hook()))
		}
		out = rk.out(out)
		var t *finetune.Trainer
		if dir := v.GetString("resume"); dir != "" {
			switch {
			case config != "":
				return fmt.Errorf("--resume %s continues that run with the recipe it saved (%s); the recipe %s would be ignored: drop it, or start a new run with it (--overwrite replaces the old run)",
					dir, filepath.Join(dir, finetune.RunConfig), config)
			case v.GetBool("overwrite"):
				return fmt.Errorf("--resume continues a run and --overwrite starts one over: give one of them")
			case v.GetBool("repair"):
				return fmt.Errorf("--resume continues a run with its own recipe, whose diagnostics decide whether it repairs; --repair cannot change it")
			}
			t, err = finetune.Resume(dir, opts...)
			if err == nil {
				fmt.Fprintf(out, "resuming %s %s\n", dir, t.Position())
			}
		} else {
			var cfg *finetune.Config
			if cfg, err = loadRecipe(config, out); err != nil {
				return err
			}
			if v.GetBool("repair") {
				cfg.Diagnostics.Repair = true
			}
			if v.GetBool("overwrite") {
				opts = append(opts, finetune.WithOverwrite())
			}
			if p := v.GetString("precision"); p != "" {
				cfg.Precision = p
			}
			t, err = finetune.New(*cfg, opts...)
		}
		if err != nil {
			return err
		}
		describe(out, t)
		res, err := t.Run(cmd.Context())
		if errors.Is(err, finetune.ErrInterrupted) {
			fmt.Fprintf(out, "\ninterrupted: checkpoint saved %s; continue with: toolkit finetune --resume %s\n",
				t.Position(), t.Config().Output.Dir)
			// The exit status says so (130 for SIGINT, 143 for SIGTERM): the run has
			// not written its model.
			return errors.Join(err, errReported)
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
			if t.Config().Head.Task == finetune.TaskMultilabel {
				fmt.Fprintf(out, "test: loss %.4f, accuracy %.2f%% (of every label's decision at 0.5), macro F1 %.4f, mAP %.4f\n", res.TestLoss, 100*res.TestAcc, res.TestMacroF1, res.TestMAP)
			} else {
				fmt.Fprintf(out, "test: loss %.4f, accuracy %.2f%%, macro F1 %.4f\n", res.TestLoss, 100*res.TestAcc, res.TestMacroF1)
			}
		}
		also := "metrics.jsonl, curves.png, checkpoint/, summary.json"
		if res.HasBest {
			also = finetune.RunBest + ", " + also
			fmt.Fprintf(out, "best.onnx: epoch %d (stage %s, epoch %d), %s (output.best: %s)\n",
				res.Best.Epoch, res.Best.Stage, res.Best.StageEpoch, describeBest(res.Best), monitorKey(finetune.MonitorConfig{Metric: res.Best.Metric, Mode: res.Best.Mode}))
		}
		if t.Config().Output.TensorBoard {
			also += ", " + finetune.RunTensorBoard + "/ (tensorboard --logdir " + dir + ")"
		}
		fmt.Fprintf(out, "wrote %s (and %s)\n", filepath.Join(dir, finetune.RunModel), also)
		return nil
	}
	return cmd
}

// recipeArg returns the recipe named by -c or as the command's one argument (toolkit
// finetune config.yaml), refusing two different ones.
func recipeArg(flag string, args []string) (string, error) {
	if len(args) == 0 {
		return flag, nil
	}
	if flag != "" && flag != args[0] {
		return "", fmt.Errorf("two recipes: -c %s and %s; give one", flag, args[0])
	}
	return args[0], nil
}

// loadRecipe reads the config file, ./config.yaml, or, in a clone of the repository,
// the built-in demo recipe (whose paths are the repository's).
func loadRecipe(path string, out io.Writer) (*finetune.Config, error) {
	if path != "" {
		return finetune.LoadConfig(path)
	}
	if _, err := os.Stat("config.yaml"); err == nil {
		fmt.Fprintln(out, "using ./config.yaml")
		return finetune.LoadConfig("config.yaml")
	}
	cfg, err := finetune.ParseConfig(toolkit.DemoConfig, "built-in config.yaml")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Model.ONNX); err != nil {
		return nil, fmt.Errorf("no recipe: give one with -c config.yaml (toolkit import MODEL.onnx --write-config config.yaml writes a starter); without one, ./config.yaml is read, or in a clone of the repository the built-in demo recipe runs (%s is not here)", cfg.Model.ONNX)
	}
	fmt.Fprintln(out, "using the built-in demo recipe (paths relative to the current folder)")
	return cfg, nil
}

func describe(w io.Writer, t *finetune.Trainer) {
	m := t.Model()
	groups := t.Groups()
	params, tensors := 0, 0
	for _, g := range groups {
		for _, p := range g.Params {
			params += len(m.Param(p))
		}
		tensors += len(g.Params)
	}
	line := fmt.Sprintf("model: %s parameters in %d tensors, in %d layer groups", thousands(params), tensors, len(groups))
	if other := m.NumParams() - params; other > 0 {
		line += fmt.Sprintf("; %s more %s never trained (constants such as Dropout's ratio, BatchNorm's running statistics)", thousands(other), pluralWord(other, "value is", "values are"))
	}
	what := "classes"
	if t.Config().Head.Task == finetune.TaskMultilabel {
		what = "labels (multi-label: a sigmoid each, thresholds tuned on the validation data)"
	}
	fmt.Fprintf(w, "%s\n%s: %s\n", line, what, strings.Join(t.Classes(), ", "))
	for _, g := range groups {
		n := 0
		for _, p := range g.Params {
			n += len(m.Param(p))
		}
		fmt.Fprintf(w, "  group %-10s %3d tensors %12s parameters\n", g.Name, len(g.Params), thousands(n))
	}
	if t.HasValidation() {
		b := t.Config().Output.Best
		fmt.Fprintf(w, "best.onnx keeps the epoch with %s (output.best: %s); * marks each epoch that is the best so far\n",
			monitorWords(b.Metric, b.Mode), monitorKey(b))
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
		if err == nil && f.NotRepaired != "" {
			_, err = fmt.Fprintf(h.out, "  (not repaired: %s)\n", f.NotRepaired)
		}
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
		if m.ValMacroF1 != nil {
			line += fmt.Sprintf(" F1 %.3f", *m.ValMacroF1)
		}
		if m.ValMAP != nil {
			line += fmt.Sprintf(" mAP %.3f", *m.ValMAP)
		}
	}
	line += fmt.Sprintf("  %.0f img/s  %.1fs", m.ImagesPerS, m.Seconds)
	if m.Best {
		line += "  *"
	}
	fmt.Fprintln(h.out, line)
	return nil
}

// describeBest says the best epoch's score: "the lowest validation loss 0.3377".
func describeBest(b finetune.BestEpoch) string {
	if b.Metric == "val_acc" {
		return fmt.Sprintf("%s %.2f%%", monitorWords(b.Metric, b.Mode), 100*b.Value)
	}
	return fmt.Sprintf("%s %.4f", monitorWords(b.Metric, b.Mode), b.Value)
}

// monitorWords says a monitored metric in words: "the lowest validation loss".
func monitorWords(metric, mode string) string {
	most := map[string]string{"min": "lowest", "max": "highest"}[mode]
	what := map[string]string{"val_loss": "validation loss", "val_acc": "validation accuracy",
		"val_macro_f1": "validation macro-F1", "val_map": "validation mAP"}[metric]
	return "the " + most + " " + what
}

// monitorKey writes output.best as a recipe does.
func monitorKey(b finetune.MonitorConfig) string {
	if b == finetune.Monitor(b.Metric) {
		return b.Metric
	}
	return fmt.Sprintf("{metric: %s, mode: %s}", b.Metric, b.Mode)
}

// thousands writes n with commas between thousands: 812,837.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
