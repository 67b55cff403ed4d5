// Command toolkit imports pretrained ONNX networks, fine-tunes them with a new head in
// stages with per-layer-group learning rates, and exports the result as ONNX.
//
//	toolkit import vgg19.onnx --headless -o base.onnx --write-config config.yaml
//	toolkit finetune -c config.yaml
//	toolkit run model.onnx -i input.npy -o output.npy
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"toolkit/finetune"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// Nearly all of a training run's memory is the weights, their gradients and
		// optimizer state and the activations, allocated once; the default GOGC=100 lets
		// the heap grow to twice that before collecting. 25 keeps the peak near what is
		// live, at the cost of a few more (cheap: almost no pointers) collections.
		debug.SetGCPercent(25)
	}
	ctx, received := stopOnSignals(context.Background())
	err := newRootCommand().ExecuteContext(ctx)
	os.Exit(exitStatus(err, received(), os.Stderr))
}

// stopOnSignals returns a context cancelled by the first SIGINT (Ctrl-C) or SIGTERM
// (what timeout, Kubernetes and Slurm send before they kill), so that a command stops
// where it is and finetune saves its checkpoint, and a function that returns the signal
// received (nil before one). A second signal gets the default action: the process ends
// at once, as a second Ctrl-C does in Keras.
func stopOnSignals(parent context.Context) (context.Context, func() os.Signal) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	var got atomic.Value
	go func() {
		s := <-ch
		got.Store(s)
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		fmt.Fprintf(os.Stderr, "\n%s: stopping (finetune saves a checkpoint first); send it again to quit at once\n", signalName(s))
		cancel()
	}()
	return ctx, func() os.Signal {
		s, _ := got.Load().(os.Signal)
		return s
	}
}

// exitStatus prints err and returns the process's exit status: 0 on success; for a
// command stopped by a signal, 128 plus the signal's number as shells report it (130
// for SIGINT, 143 for SIGTERM), so that `toolkit finetune ... && next` does not go on
// without a model; 1 for any other error. An interrupted finetune has printed where
// its checkpoint is and how to resume.
func exitStatus(err error, sig os.Signal, stderr *os.File) int {
	if err == nil {
		return 0
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintln(stderr, "toolkit:", err)
	}
	interrupted := errors.Is(err, finetune.ErrInterrupted) || (sig != nil && errors.Is(err, context.Canceled))
	if !interrupted {
		return 1
	}
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + int(syscall.SIGINT)
}

// errReported marks an error the command has already told the user about.
var errReported = errors.New("reported")

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "toolkit",
		Short:         "Transfer learning on imported ONNX networks",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("toolkit {{.Version}}\n")
	root.AddCommand(newImportCommand(), newFinetuneCommand(), newRunCommand(), newEvaluateCommand(), newPredictCommand(), newExtractCommand(), newLRFindCommand(), newPreviewCommand())
	// A mistake in the flags or arguments ends with the command's usage line.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nusage: %s", err, cmd.UseLine())
	})
	return root
}

// withUsage adds the command's usage line to the error of an argument check.
func withUsage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return fmt.Errorf("%s %w\nusage: %s", cmd.Name(), err, cmd.UseLine())
		}
		return nil
	}
}

// version is the toolkit's version as the Go build recorded it: the module's version
// (devel for a build from a clone), the commit and its time, whether the work tree had
// changes, and the Go release and platform.
func version() string {
	v := "(unknown)"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	}
	v = info.Main.Version
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (commit %.12s, %s%s)", rev, at, modified)
	}
	return v + ", " + info.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
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
