package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"toolkit/backend"
	"toolkit/finetune"
	"toolkit/models"
	"toolkit/onnx"
)

func newImportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import MODEL.onnx [--headless | --cut-at NODE] [-o OUT.onnx] [--write-config config.yaml [--overwrite]] [--json]",
		Short: "Check a model, show its layers, cut it to a headless base, write a starter config",
		Long: `Reads an ONNX model, checks that every op is supported, and prints a table of its
layers (name, op, output shape, parameters, suggested layer group) with totals, opset,
producer, input layout, the layer groups of groups: auto (split where the resolution
halves) and the presets that fit. --headless cuts a full model just before its
classifier's pooling (after a transformer's class token; a model that is headless
already is left as it is); --cut-at cuts at a named node or tensor; -o writes the
(cut) model. --write-config writes a starter recipe whose paths are relative to its
own folder, as recipes are read; it never replaces an existing file unless
--overwrite is given.`,
		Args: withUsage(cobra.ExactArgs(1)),
	}
	cmd.Flags().String("cut-at", "", "cut the model at this node or tensor")
	cmd.Flags().Bool("headless", false, "cut a full model just before its classifier")
	cmd.Flags().StringP("output", "o", "", "write the (cut) model here")
	cmd.Flags().String("write-config", "", "write a starter fine-tuning config here (never over an existing file without --overwrite)")
	cmd.Flags().Bool("overwrite", false, "let --write-config replace an existing file")
	cmd.Flags().Bool("json", false, "print the summary as JSON")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path := args[0]
		m, err := onnx.Read(path)
		if err != nil {
			return err
		}
		// PyTorch's exporter stores bit-identical initializers once behind Identity
		// nodes; every layer gets its own parameters back, as fine-tuning needs.
		m = onnx.UntieInitializers(m)
		cutAt, headless := v.GetString("cut-at"), v.GetBool("headless")
		if cutAt != "" && headless {
			return fmt.Errorf("give --headless or --cut-at, not both")
		}
		pool := "" // the head's pooling in the starter config
		if headless {
			h, err := onnx.FindHead(m)
			switch {
			case errors.Is(err, onnx.ErrHeadless):
				// Nothing to cut: the model is a base already.
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is already headless, nothing to cut (%v)\n", path, err)
			case err != nil:
				return fmt.Errorf("%s: %w", path, err)
			default:
				cutAt, pool = h.Cut, h.Pool
			}
		}
		if cutAt != "" {
			if m, err = onnx.Cut(m, cutAt); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		if err := backend.CheckSupported(m); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		summary, err := onnx.Summarize(m)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out := cmd.OutOrStdout()
		if v.GetBool("json") {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(summary); err != nil {
				return err
			}
		} else {
			if cutAt != "" {
				fmt.Fprintf(out, "cut at %q\n", cutAt)
			}
			if err := summary.WriteText(out); err != nil {
				return err
			}
			if presets := models.MatchingPresets(m); len(presets) > 0 {
				fmt.Fprintf(out, "Presets:     %s (groups: %s in the config, instead of auto)\n", strings.Join(presets, ", "), presets[0])
			}
		}
		modelPath := path
		if o := v.GetString("output"); o != "" {
			if err := onnx.Write(o, m); err != nil {
				return err
			}
			modelPath = o
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", o)
		}
		if c := v.GetString("write-config"); c != "" {
			if cutAt != "" && v.GetString("output") == "" {
				return fmt.Errorf("--write-config with a cut needs -o OUT.onnx for the cut model the config points at")
			}
			if err := finetune.WriteStarterConfig(c, modelPath, m, pool, v.GetBool("overwrite")); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%w; write it elsewhere, or give --overwrite to replace it", err)
				}
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: set head.classes and the data paths, then run: toolkit finetune -c %s\n", c, c)
		}
		return nil
	}
	return cmd
}
