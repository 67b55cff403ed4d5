package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"toolkit/backend"
	"toolkit/npy"
	"toolkit/onnx"
)

func newRunCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run MODEL.onnx -i INPUT.npy -o OUTPUT.npy",
		Short: "Run one forward pass on a float32 NumPy tensor",
		Args:  withUsage(cobra.ExactArgs(1)),
	}
	cmd.Flags().StringP("input", "i", "", "input tensor (.npy, float32, NCHW)")
	cmd.Flags().StringP("output", "o", "", "where to write the first output (.npy)")
	v := bindFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		in, out := v.GetString("input"), v.GetString("output")
		if in == "" || out == "" {
			return fmt.Errorf("run needs -i INPUT.npy and -o OUTPUT.npy")
		}
		start := time.Now()
		ir, err := onnx.Read(args[0])
		if err != nil {
			return err
		}
		m, err := backend.NewModel(ir)
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		x, err := npy.ReadFile(in)
		if err != nil {
			return err
		}
		inputs := m.Inputs()
		if len(inputs) != 1 {
			return fmt.Errorf("%s has %d inputs: run takes models with one input", args[0], len(inputs))
		}
		prog, err := m.Program(backend.Options{InputShapes: map[string][]int{inputs[0].Name: x.Shape}})
		if err != nil {
			return fmt.Errorf("%s with input %s: %w", args[0], in, err)
		}
		loaded := time.Now()
		if err := prog.Run([][]float32{x.Data}, nil); err != nil {
			return err
		}
		ran := time.Now()
		if prog.NumOutputs() == 0 {
			return fmt.Errorf("%s computes no float output", args[0])
		}
		if err := npy.WriteFile(out, &npy.Array{Shape: prog.OutputShape(0), Data: prog.Output(0)}); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %v -> %s %v: forward %.3fs (load and build %.3fs)\n",
			inputs[0].Name, x.Shape, prog.OutputNames()[0], prog.OutputShape(0),
			ran.Sub(loaded).Seconds(), loaded.Sub(start).Seconds())
		return nil
	}
	return cmd
}
