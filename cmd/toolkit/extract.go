package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"toolkit/extract"
	"toolkit/finetune"
)

func newExtractCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "extract (-c config.yaml | MODEL.onnx) --data DIR -o OUT_DIR [--batch-size N] [--on-bad-image skip] [--shard I/N | --merge] [--parts DIR]",
		Short: "Compute a base's features for a folder of images: OUT_DIR/features.npy and OUT_DIR/files.txt",
		Long: `Runs a convolutional base on every image file under DIR (its subfolders too, sorted)
and writes the features to OUT_DIR/features.npy (float32, one row per image, the
base's output shape after it) and the images to OUT_DIR/files.txt (one per line, in
the rows' order, relative to DIR). The base is a recipe's (-c: model.onnx cut at
model.cut_at, with its data.preprocess at model.input), or a model file's: a base, or
a classifier whose head is cut off, with the preprocessing its metadata gives
(toolkit finetune stores it), else PyTorch's ImageNet normalisation.

--shard I/N computes shard I of N (its whole batches) and writes its part to --parts
(OUT_DIR/parts by default); the same command with --merge instead joins the parts
into exactly the files one process writes.`,
		Args: withUsage(cobra.MaximumNArgs(1)),
	}
	cmd.Flags().StringP("config", "c", "", "the recipe whose base and preprocessing to use")
	cmd.Flags().String("data", "", "the folder of images")
	cmd.Flags().StringP("output", "o", "", "the folder to write features.npy and files.txt to")
	cmd.Flags().Int("batch-size", 32, "images per batch")
	cmd.Flags().String("on-bad-image", "fail", "what a file that does not decode does: fail (naming it) or skip (left out and listed)")
	addShardFlags(cmd, "OUT_DIR/parts")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		model, config := "", v.GetString("config")
		if len(args) == 1 {
			model = args[0]
		}
		if (model == "") == (config == "") {
			return fmt.Errorf("extract needs a model file or -c config.yaml (one of them)\nusage: %s", cmd.UseLine())
		}
		data, out := v.GetString("data"), v.GetString("output")
		if data == "" || out == "" {
			return fmt.Errorf("extract needs --data DIR and -o OUT_DIR\nusage: %s", cmd.UseLine())
		}
		sh, err := shardingOf(cmd, v, os.Getenv, filepath.Join(out, "parts"))
		if err != nil {
			return err
		}
		from := model + config
		opts := extract.Options{BatchSize: v.GetInt("batch-size"), OnBadImage: v.GetString("on-bad-image")}
		var res *extract.Result
		if sh.merge {
			res, err = extract.Merge(sh.parts, from, data, out, opts)
		} else {
			e, lerr := extractor(model, config)
			if lerr != nil {
				return lerr
			}
			if sh.shard.Sharded() {
				w, err := extract.ExtractShard(cmd.Context(), e, data, opts, sh.shard, sh.parts)
				if err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), w)
				}
				return err
			}
			res, err = extract.Extract(cmd.Context(), e, data, out, opts)
		}
		if err != nil {
			return err
		}
		for _, n := range res.Notes {
			fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
		}
		for _, s := range res.Skipped {
			fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s: %s\n", s.File, s.Error)
		}
		dims := []string{fmt.Sprint(res.Images)}
		for _, d := range res.Shape {
			dims = append(dims, fmt.Sprint(d))
		}
		fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, float32) and %s (%d images)\n", res.Features, strings.Join(dims, " x "), res.Files, res.Images)
		return nil
	}
	return cmd
}

// extractor is the base of a model file, or of a recipe (its model, cut and input size)
// with the recipe's preprocessing.
func extractor(model, config string) (*extract.Extractor, error) {
	if model != "" {
		return extract.Load(model)
	}
	cfg, err := finetune.LoadConfig(config)
	if err != nil {
		return nil, err
	}
	m, pre, err := finetune.Base(*cfg)
	if err != nil {
		return nil, err
	}
	return extract.New(config, m, pre)
}
