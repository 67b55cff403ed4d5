//go:build unix

package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFinetuneSIGINTThenResume runs `toolkit finetune` as its own process, sends it
// SIGINT (Ctrl-C) once it has printed its first epoch, so that it stops somewhere in
// the epochs that follow, resumes it with --resume, and checks that it ends with the
// weights and metrics of an uninterrupted run.
func TestFinetuneSIGINTThenResume(t *testing.T) {
	dir := t.TempDir()
	testData(t, dir)
	recipe := starterRecipe(t, dir)
	// Enough epochs after the first that the signal arrives while the run is going.
	const allEpochs = 40
	straight, interrupted := filepath.Join(dir, "straight"), filepath.Join(dir, "interrupted")
	if out, err := runCLI(t, "finetune", "-c", writeFile(t, filepath.Join(dir, "straight.yaml"), reduce(t, recipe, dir, straight, allEpochs))); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

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
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("interrupted process: %v (want exit status 0)\n%s%s", err, out.String(), stderr.String())
	}
	if !signalled || !strings.Contains(out.String(), "interrupted: checkpoint saved") {
		t.Fatalf("the process was not interrupted (signalled: %v):\n%s%s", signalled, out.String(), stderr.String())
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
}
