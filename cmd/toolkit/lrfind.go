package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"toolkit/finetune"
	"toolkit/finetune/lrfind"
)

func newLRFindCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lr-find [-c config.yaml] [--stage NAME] [--start 1e-7] [--end 10] [--steps 100] [-o lr-find.png]",
		Short: "Find a learning rate for a stage: the range test, as fastai's lr_find",
		Long: `Trains the stage's groups for a number of steps with the rate growing exponentially
(keeping the stage's ratios between groups), records the smoothed loss, stops when it
diverges, restores the weights, and suggests a rate: valley (fastai's default) and
steepest descent. Stages before the named one are trained first, as the run would.
Prints the stage's recipe line with the suggested rate and draws lr-find.png (in the
recipe's output.dir unless -o says otherwise). Under mpirun (a toolkit built with
-tags mpi) it sweeps as finetune trains, each rank on its share of every batch.`,
		Args: withUsage(cobra.MaximumNArgs(1)),
	}
	d := lrfind.Defaults()
	cmd.Flags().StringP("config", "c", "", "the recipe (YAML); also as the one argument")
	cmd.Flags().String("stage", "", "the stage to test (default: the first)")
	cmd.Flags().Float64("start", d.Start, "the first rate")
	cmd.Flags().Float64("end", d.End, "the last rate")
	cmd.Flags().Int("steps", d.Steps, "steps of the sweep")
	cmd.Flags().StringP("output", "o", "", "where to draw the plot (default: OUTPUT_DIR/lr-find.png)")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) (err error) {
		// Under mpirun each process is a rank of one sweep, as of one finetune run:
		// rank 0 prints and draws, the others sweep in silence.
		rk, err := openRanks(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer func() { err = rk.end(err) }()
		out := rk.out(cmd.OutOrStdout())
		config, err := recipeArg(v.GetString("config"), args)
		if err != nil {
			return err
		}
		cfg, err := loadRecipe(config, out)
		if err != nil {
			return err
		}
		opts := d
		opts.Start, opts.End, opts.Steps = v.GetFloat64("start"), v.GetFloat64("end"), v.GetInt("steps")
		res, _, err := finetune.LRFind(cmd.Context(), *cfg, v.GetString("stage"), opts, finetune.WithComm(rk.comm))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "stage %s: %d steps over %v (the rate of the fastest group; ratios", res.Stage, len(res.Recorder.LRs), res.Trained)
		for _, g := range res.Trained { // the model's order, earliest group first
			if _, ok := res.Ratios[g]; !ok {
				continue
			}
			fmt.Fprintf(out, " %s %.3g", g, res.Ratios[g])
		}
		fmt.Fprintln(out, ")")
		if res.Recorder.Stopped != "" {
			fmt.Fprintf(out, "stopped: %s\n", res.Recorder.Stopped)
		}
		fmt.Fprintf(out, "suggested: valley %.2g (loss %.4f), steepest %.2g (loss %.4f)\n", res.Valley.LR, res.Valley.Loss, res.Steep.LR, res.Steep.Loss)
		fmt.Fprintf(out, "in the recipe:\n  - %s\n", res.Line)
		if rk.comm.Rank() != 0 {
			return nil
		}
		path := v.GetString("output")
		if path == "" {
			if err := os.MkdirAll(cfg.Output.Dir, 0o755); err != nil {
				return fmt.Errorf("output.dir: %w", err)
			}
			path = filepath.Join(cfg.Output.Dir, "lr-find.png")
		}
		if err := lrfind.Plot(path, "lr-find: stage "+res.Stage, res.Recorder, res.Valley, res.Steep); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s\n", path)
		return nil
	}
	return cmd
}
