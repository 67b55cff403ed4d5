package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"toolkit/evaluate"
)

func newPredictCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "predict MODEL.onnx IMAGE|DIR... [--top-k K] [--json] [--shard I/N --parts DIR | --merge --parts DIR]",
		Short: "Classify images with a fine-tuned model: the top classes with probabilities",
		Long: `Runs a model written by toolkit finetune on image files (PNG, JPEG; a folder gives
all of its images) and prints each one's most probable classes; for a multi-label
model, every label whose probability reaches its threshold. Preprocessing, class
names and thresholds come from the model's metadata; a model without class names
gives indices.

--shard I/N predicts shard I of N (its whole batches) and writes its part to
--parts DIR; the same command with --merge instead joins the parts into exactly
what one process prints.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return fmt.Errorf("predict needs a model and at least one image or folder\nusage: %s", cmd.UseLine())
			}
			return nil
		},
	}
	cmd.Flags().Int("top-k", 3, "how many classes to show per image (a multi-label model shows every label above its threshold)")
	cmd.Flags().Bool("json", false, "print the predictions as JSON")
	cmd.Flags().Bool("tta", false, "test-time augmentation: the probabilities averaged over each image, its flip and, with resize: crop, its corner crops")
	cmd.Flags().String("on-bad-image", "fail", "what a file that does not decode does: fail (naming it, before any prediction) or skip (left out and listed)")
	cmd.Flags().Int("batch-size", 32, "images per batch")
	addShardFlags(cmd, "")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		sh, err := shardingOf(cmd, v, os.Getenv, "")
		if err != nil {
			return err
		}
		k, paths := v.GetInt("top-k"), args[1:]
		opts := evaluate.Options{OnBadImage: v.GetString("on-bad-image"), TTA: v.GetBool("tta"), BatchSize: v.GetInt("batch-size")}
		var preds *evaluate.Predictions
		if sh.merge {
			preds, err = evaluate.MergePredictions(sh.parts, args[0], paths, k, opts)
		} else {
			c, lerr := evaluate.Load(args[0])
			if lerr != nil {
				return lerr
			}
			if sh.shard.Sharded() {
				w, err := evaluate.PredictShard(cmd.Context(), c, paths, k, opts, sh.shard, sh.parts)
				if err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), w)
				}
				return err
			}
			preds, err = evaluate.Predict(cmd.Context(), c, paths, k, opts)
		}
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if v.GetBool("json") {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(map[string]any{"model": preds.Model, "notes": preds.Notes, "predictions": preds.Predictions, "skipped": preds.Skipped})
		}
		for _, n := range preds.Notes {
			fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
		}
		for _, s := range preds.Skipped {
			fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s: %s\n", s.File, s.Error)
		}
		return evaluate.WritePredictions(out, preds.Predictions)
	}
	return cmd
}
