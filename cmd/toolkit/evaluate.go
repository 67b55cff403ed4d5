package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"toolkit/evaluate"
	"toolkit/finetune"
)

func newEvaluateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evaluate MODEL.onnx (--data DIR | -c config.yaml) [--top-k K] [--tta] [--most-confused] [--top-losses N] [--json] [--plot confusion.png] [--shard I/N --parts DIR | --merge --parts DIR]",
		Short: "Measure a fine-tuned model on labelled images: accuracy, per-class scores, confusion matrix",
		Long: `Runs a model written by toolkit finetune on an image folder (one subfolder per class),
or on the test set of a recipe (-c), and prints the loss, accuracy, top-k accuracy,
per-class precision, recall and F1, and the confusion matrix, which it also draws
(confusion.png beside the model, or --plot). A multi-label model is measured on a CSV
of images and labels: the mean average precision, micro and macro F1, and each label's
threshold, average precision, precision, recall and F1. Input size, preprocessing,
class names and thresholds come from the model's metadata.

--shard I/N evaluates shard I of N (its whole batches) and writes its part to
--parts DIR; the same command with --merge instead joins the parts into exactly
what one process prints and draws.`,
		Args: withUsage(cobra.ExactArgs(1)),
	}
	cmd.Flags().String("data", "", "image folder with one subfolder per class (for a multi-label model, a CSV of images and labels)")
	cmd.Flags().StringP("config", "c", "", "evaluate on this recipe's test data")
	cmd.Flags().Int("top-k", 5, "top-k accuracy")
	cmd.Flags().Bool("json", false, "print the report as JSON")
	cmd.Flags().String("on-bad-image", "", "what a file that does not decode does: fail (naming it) or skip (left out and listed); default: the recipe's data.on_bad_image, else fail")
	cmd.Flags().Bool("tta", false, "also evaluate with test-time augmentation (each image flipped, and with resize: crop cropped at the corners; probabilities averaged), reported beside the plain figures")
	cmd.Flags().Bool("most-confused", false, "list the pairs of classes most often confused")
	cmd.Flags().Int("top-losses", 0, "draw the N images with the highest loss (top_losses.png beside the confusion plot) and list them (top_losses.csv)")
	cmd.Flags().String("plot", "", "where to draw the confusion matrix (default: confusion.png beside the model)")
	cmd.Flags().Int("batch-size", 32, "images per batch")
	addShardFlags(cmd, "")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		dir, config := v.GetString("data"), v.GetString("config")
		if (dir == "") == (config == "") {
			return fmt.Errorf("evaluate needs --data DIR or -c config.yaml (one of them)")
		}
		sh, err := shardingOf(cmd, v, os.Getenv, "")
		if err != nil {
			return err
		}
		opts := evaluate.Options{TopK: v.GetInt("top-k"), OnBadImage: v.GetString("on-bad-image"), BatchSize: v.GetInt("batch-size"),
			TTA: v.GetBool("tta"), MostConfused: v.GetBool("most-confused"), TopLosses: v.GetInt("top-losses")}
		c, err := evaluate.Load(args[0])
		if err != nil {
			return err
		}
		if c.MultiLabel {
			if sh.merge || sh.shard.Sharded() {
				return fmt.Errorf("%s is a multi-label model: its evaluation runs in one process (--shard and --merge are for single-label models)", args[0])
			}
			return evaluateMultiLabel(cmd, c, dir, config, opts, v.GetBool("json"))
		}
		var rep *evaluate.Report
		if sh.merge {
			name := dir
			if config != "" {
				cfg, err := finetune.LoadConfig(config)
				if err != nil {
					return err
				}
				if name = cfg.Data.Test; name == "" {
					return fmt.Errorf("the recipe has no test data (data.test)")
				}
			}
			if rep, err = evaluate.MergeEvaluation(sh.parts, args[0], name, opts); err != nil {
				return err
			}
		} else {
			var data evaluate.Labelled
			if dir != "" {
				data, err = evaluate.OpenFolder(dir, opts)
			} else {
				data, err = recipeTestData(config, opts)
			}
			if err != nil {
				return err
			}
			if sh.shard.Sharded() {
				w, err := evaluate.EvaluateShard(cmd.Context(), c, data, opts, sh.shard, sh.parts)
				if err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), w)
				}
				return err
			}
			if rep, err = evaluate.Evaluate(cmd.Context(), c, data, opts); err != nil {
				return err
			}
		}
		plot := v.GetString("plot")
		if plot == "" {
			plot = filepath.Join(filepath.Dir(args[0]), "confusion.png")
		}
		if err := evaluate.PlotConfusion(plot, rep); err != nil {
			return fmt.Errorf("confusion plot: %w", err)
		}
		var wrote []string
		if len(rep.TopLosses) > 0 {
			dir := filepath.Dir(plot)
			png, csv := filepath.Join(dir, "top_losses.png"), filepath.Join(dir, "top_losses.csv")
			if err := rep.WriteTopLosses(png, csv); err != nil {
				return fmt.Errorf("top losses: %w", err)
			}
			wrote = append(wrote, png, csv)
		}
		out := cmd.OutOrStdout()
		if v.GetBool("json") {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		if err := rep.WriteText(out); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nwrote %s\n", strings.Join(append([]string{plot}, wrote...), ", "))
		return nil
	}
	return cmd
}

// recipeTestData opens a recipe's test data (data.test, in the recipe's format), with
// the files its data.on_bad_image (or opts.OnBadImage) left out of any split.
func recipeTestData(path string, opts evaluate.Options) (evaluate.Labelled, error) {
	cfg, err := finetune.LoadConfig(path)
	if err != nil {
		return evaluate.Labelled{}, err
	}
	if opts.OnBadImage != "" {
		cfg.Data.OnBadImage = opts.OnBadImage
	}
	d, err := cfg.OpenTestData()
	if err != nil {
		return evaluate.Labelled{}, err
	}
	return evaluate.Labelled{Examples: d.Test, Classes: d.Classes, Name: cfg.Data.Test, Skipped: d.Skipped}, nil
}

// evaluateMultiLabel evaluates a multi-label model on a CSV (--data) or a recipe's
// test data and prints the report.
func evaluateMultiLabel(cmd *cobra.Command, c *evaluate.Classifier, data, config string, opts evaluate.Options, asJSON bool) error {
	var rep *evaluate.MultiReport
	var err error
	if data != "" {
		rep, err = evaluate.EvaluateCSV(cmd.Context(), c, data, opts)
	} else {
		var lab evaluate.Labelled
		if lab, err = recipeTestData(config, opts); err != nil {
			return err
		}
		if rep, err = evaluate.EvaluateMultiLabel(cmd.Context(), c, lab.Examples, lab.Classes, lab.Name, opts); rep != nil {
			rep.Skipped = evaluate.SkippedImages(lab.Skipped)
		}
	}
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(out)
}
