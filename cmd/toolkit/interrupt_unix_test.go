//go:build unix

package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"toolkit/finetune"
)

// TestFinetuneSignalThenResume runs `toolkit finetune` as its own process, sends it
// SIGINT (Ctrl-C) or SIGTERM (what timeout, Kubernetes and Slurm send) once it has
// printed its first epoch, so that it stops somewhere in the epochs that follow, and
// checks that it saved its checkpoint and exited with the shell's status for the signal
// (130, 143: `toolkit finetune ... && next` must not go on without a model); then
// resumes it with --resume and checks that it ends with the weights and metrics of an
// uninterrupted run.
func TestFinetuneSignalThenResume(t *testing.T) {
	dir := t.TempDir()
	testData(t, dir)
	recipe := starterRecipe(t, dir)
	// Enough epochs after the first that the signal arrives while the run is going.
	const allEpochs = 40
	straight := filepath.Join(dir, "straight")
	if out, err := runCLI(t, "finetune", "-c", writeFile(t, filepath.Join(dir, "straight.yaml"), reduce(t, recipe, dir, straight, allEpochs))); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	for _, c := range []struct {
		sig    syscall.Signal
		status int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			interrupted := filepath.Join(dir, "interrupted-"+strconv.Itoa(int(c.sig)))
			cfg := writeFile(t, filepath.Join(dir, "interrupted.yaml"), reduce(t, recipe, dir, interrupted, allEpochs))
			cmd := exec.Command(os.Args[0], "finetune", "-c", cfg)
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			sc := bufio.NewScanner(stdout)
			signalled := false
			for sc.Scan() {
				line := sc.Text()
				out.WriteString(line + "\n")
				if !signalled && strings.HasPrefix(line, "epoch  1 ") {
					if err := cmd.Process.Signal(c.sig); err != nil {
						t.Fatal(err)
					}
					signalled = true
				}
			}
			io.Copy(io.Discard, stdout)
			err = cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != c.status {
				t.Fatalf("interrupted process: %v, exit status %d, want %d\n%s%s", err, code, c.status, out.String(), stderr.String())
			}
			if !signalled || !strings.Contains(out.String(), "interrupted: checkpoint saved") {
				t.Fatalf("the process was not interrupted (signalled: %v):\n%s%s", signalled, out.String(), stderr.String())
			}
			if _, err := os.Stat(filepath.Join(interrupted, finetune.RunModel)); err == nil {
				t.Errorf("an interrupted run wrote its final %s", finetune.RunModel)
			}
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(line, "interrupted:") {
					t.Log(line)
				}
			}
			res, err := runCLI(t, "finetune", "--resume", interrupted)
			if err != nil {
				t.Fatalf("resumed run: %v\n%s", err, res)
			}
			if !strings.Contains(res, "resuming "+interrupted) {
				t.Errorf("resume output:\n%s", res)
			}
			sameRun(t, straight, interrupted)
		})
	}
}
