package main

import (
	"fmt"
	"image/png"
	"os"

	"github.com/spf13/cobra"

	"toolkit/dataset"
	"toolkit/finetune"
	"toolkit/internal/atomicfile"
	"toolkit/npy"
)

func newPreviewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "preview [-c config.yaml] [--split train|val|test] [-n 16] [-o preview.png] [--npy batch.npy]",
		Short: "Draw the first images of a split as the model receives them",
		Long: `Draws the first n examples of a split as a labelled grid, as a run of the recipe
feeds them to the model (fastai's show_batch): the training split augmented with the
run's seed at epoch 0, in that epoch's shuffled order; the validation and test splits
with the evaluation transform, classes sorted, then files sorted. The inputs are
denormalised for the picture; --npy writes them as they are (float32, N x C x H x W).`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringP("config", "c", "", "the recipe (YAML)")
	cmd.Flags().String("split", finetune.SplitTrain, "train, val or test")
	cmd.Flags().IntP("n", "n", 16, "how many examples")
	cmd.Flags().StringP("output", "o", "preview.png", "the grid (PNG)")
	cmd.Flags().String("npy", "", "also write the inputs as a float32 NCHW .npy file")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		out := cmd.OutOrStdout()
		cfg, err := loadRecipe(v.GetString("config"), out)
		if err != nil {
			return err
		}
		examples, pre, err := finetune.Preview(cmd.Context(), *cfg, v.GetString("split"), v.GetInt("n"))
		if err != nil {
			return err
		}
		tiles := make([]dataset.GridTile, len(examples))
		for i, ex := range examples {
			img, err := pre.Denormalise(ex.Input)
			if err != nil {
				return err
			}
			tiles[i] = dataset.GridTile{Image: img, Caption: ex.Caption}
		}
		grid := dataset.DrawGrid(tiles, 4, 128)
		path := v.GetString("output")
		if err := atomicfile.Write(path, func(f *os.File) error { return png.Encode(f, grid) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s: %d %s images, %dx%dx%d\n", path, len(examples), v.GetString("split"), pre.Channels, pre.Height, pre.Width)
		if p := v.GetString("npy"); p != "" {
			data := make([]float32, 0, len(examples)*pre.Size())
			for _, ex := range examples {
				data = append(data, ex.Input...)
			}
			a := &npy.Array{Shape: []int{len(examples), pre.Channels, pre.Height, pre.Width}, Data: data}
			if err := atomicfile.Write(p, func(f *os.File) error { return npy.Write(f, a) }); err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %s\n", p)
		}
		for _, ex := range examples {
			fmt.Fprintf(out, "  %s  %s\n", ex.Caption, ex.File)
		}
		return nil
	}
	return cmd
}
