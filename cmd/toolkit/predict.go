package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"toolkit/evaluate"
)

func newPredictCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "predict MODEL.onnx IMAGE|DIR... [--top-k K] [--json]",
		Short: "Classify images with a fine-tuned model: the top classes with probabilities",
		Long: `Runs a model written by toolkit finetune on image files (PNG, JPEG; a folder gives
all of its images) and prints each one's most probable classes; for a multi-label
model, every label whose probability reaches its threshold. Preprocessing, class
names and thresholds come from the model's metadata; a model without class names
gives indices.`,
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
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := evaluate.Load(args[0])
		if err != nil {
			return err
		}
		preds, err := evaluate.Predict(cmd.Context(), c, args[1:], v.GetInt("top-k"), evaluate.Options{OnBadImage: v.GetString("on-bad-image"), TTA: v.GetBool("tta")})
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if v.GetBool("json") {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(map[string]any{"model": args[0], "notes": c.Notes, "predictions": preds.Predictions, "skipped": preds.Skipped})
		}
		for _, n := range c.Notes {
			fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
		}
		for _, s := range preds.Skipped {
			fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s: %s\n", s.File, s.Error)
		}
		return evaluate.WritePredictions(out, preds.Predictions)
	}
	return cmd
}
