// Command toolkit imports pretrained ONNX networks, fine-tunes them with a new head in
// stages with per-layer-group learning rates, and exports the result as ONNX.
//
//	toolkit import vgg19.onnx --headless -o base.onnx --write-config config.yaml
//	toolkit finetune -c config.yaml
//	toolkit run model.onnx -i input.npy -o output.npy
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// Nearly all of a training run's memory is the weights, their gradients and
		// optimizer state and the activations, allocated once; the default GOGC=100 lets
		// the heap grow to twice that before collecting. 25 keeps the peak near what is
		// live, at the cost of a few more (cheap: almost no pointers) collections.
		debug.SetGCPercent(25)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "toolkit:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "toolkit",
		Short:         "Transfer learning on imported ONNX networks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newImportCommand(), newFinetuneCommand(), newRunCommand(), newEvaluateCommand(), newPredictCommand(), newLRFindCommand(), newPreviewCommand())
	return root
}

// bindFlags lets every flag of cmd also come from a TOOLKIT_* environment variable
// (TOOLKIT_CUT_AT for --cut-at), through a viper instance of the command's own.
func bindFlags(cmd *cobra.Command) *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix("TOOLKIT")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		panic(err) // only on a programming error: flags are defined in this package
	}
	return v
}
