//go:build mpi && linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"toolkit/finetune"
)

// mpirunArgs runs np ranks of this test binary as the toolkit (runMainEnv) on loopback,
// as root on a box of two cores: the flags CI and the README use.
func mpirunArgs(np int, extraEnv ...string) []string {
	args := []string{"--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
		"--mca", "btl", "self,vader,tcp", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo",
		"-np", strconv.Itoa(np), "-x", "GOMAXPROCS=1", "-x", runMainEnv + "=1"}
	for _, e := range extraEnv {
		args = append(args, "-x", e)
	}
	return append(args, os.Args[0])
}

// rankPID finds the process of rank of the job started by mpirun's process parent.
func rankPID(t *testing.T, parent, rank int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...
			fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
				continue
			}
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if bytes.Contains(env, []byte("OMPI_COMM_WORLD_RANK="+strconv.Itoa(rank)+"\x00")) {
				return pid
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no process of rank %d under mpirun %d", rank, parent)
	return 0
}

// TestMPIRankKilled runs toolkit finetune on two ranks under mpirun (the build tag mpi
// and Open MPI's mpirun on the PATH; CI runs it), kills rank 1 with SIGKILL once an
// epoch's checkpoint is saved, and checks that the job ends within a minute with an
// error that names rank 1, and that the checkpoint is intact: the run resumes from it
// in one process and ends.
func TestMPIRankKilled(t *testing.T) {
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not found (Debian's openmpi-bin)")
	}
	dir := t.TempDir()
	testData(t, dir)
	recipe := starterRecipe(t, dir)
	run := filepath.Join(dir, "run")
	cfg := writeFile(t, filepath.Join(dir, "ranks.yaml"), reduce(t, recipe, dir, run, 30))
	cmd := exec.Command("mpirun", append(mpirunArgs(2, "TOOLKIT_OUTPUT_CHECKPOINT_EVERY=0"), "finetune", "-c", cfg)...)
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
	var killed time.Time
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if killed.IsZero() && strings.HasPrefix(line, "epoch  3 ") {
			if err := syscall.Kill(rankPID(t, cmd.Process.Pid, 1), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = time.Now()
		}
	}
	err = cmd.Wait()
	took := time.Since(killed)
	if killed.IsZero() {
		t.Fatalf("the run ended before rank 1 was killed: %v\n%s%s", err, out.String(), stderr.String())
	}
	t.Logf("the job ended %.1f s after rank 1 was killed, exit status %d", took.Seconds(), cmd.ProcessState.ExitCode())
	if err == nil || took > time.Minute {
		t.Errorf("after rank 1 was killed: %v after %v, want a failure within a minute", err, took)
	}
	if !strings.Contains(stderr.String(), "rank 1") {
		t.Errorf("the job's error does not name rank 1:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(run, finetune.RunModel)); err == nil {
		t.Errorf("a failed run wrote its final %s", finetune.RunModel)
	}
	tr, err := finetune.Resume(run)
	if err != nil {
		t.Fatalf("the checkpoint after the kill does not load: %v", err)
	}
	if p := tr.Progress(); p.Epoch < 2 {
		t.Errorf("the checkpoint holds epoch %d, want at least the second of the epochs printed", p.Epoch)
	}
	res, err := runCLI(t, "finetune", "--resume", run)
	if err != nil {
		t.Fatalf("resumed in one process: %v\n%s", err, res)
	}
	if !strings.Contains(res, "resuming "+run) || !strings.Contains(res, "wrote "+filepath.Join(run, finetune.RunModel)) {
		t.Errorf("the resumed run did not end:\n%s", res)
	}
}

// TestMPIRankHangs stops rank 1 (SIGSTOP) and checks that rank 0's collective gives up
// after TOOLKIT_MPI_TIMEOUT with an error naming the rank that waited, and that the
// job ends.
func TestMPIRankHangs(t *testing.T) {
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not found (Debian's openmpi-bin)")
	}
	dir := t.TempDir()
	testData(t, dir)
	recipe := starterRecipe(t, dir)
	run := filepath.Join(dir, "run")
	cfg := writeFile(t, filepath.Join(dir, "ranks.yaml"), reduce(t, recipe, dir, run, 30))
	cmd := exec.Command("mpirun", append(mpirunArgs(2, "TOOLKIT_MPI_TIMEOUT=5"), "finetune", "-c", cfg)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var stopped time.Time
	var pid int
	for sc.Scan() {
		if stopped.IsZero() && strings.HasPrefix(sc.Text(), "epoch  2 ") {
			pid = rankPID(t, cmd.Process.Pid, 1)
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			stopped = time.Now()
		}
	}
	err = cmd.Wait()
	took := time.Since(stopped)
	if pid != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if stopped.IsZero() {
		t.Fatalf("the run ended before rank 1 was stopped: %v\n%s", err, stderr.String())
	}
	t.Logf("the job ended %.1f s after rank 1 was stopped", took.Seconds())
	if err == nil || took > time.Minute {
		t.Errorf("after rank 1 hung: %v after %v, want a failure soon after the 5 s timeout", err, took)
	}
	if !strings.Contains(stderr.String(), "rank 0: allreduce waited 5s for the other ranks") {
		t.Errorf("rank 0 does not say that it gave up:\n%s", stderr.String())
	}
}

// TestMPILRFind runs toolkit lr-find on stage all (after the head stage, trained first)
// on two ranks under mpirun and in one process, without dropout: rank 0 alone prints
// and draws, and the sweep suggests what one process suggests (the ranks' losses are
// the whole batch's, within float rounding of one process's).
func TestMPILRFind(t *testing.T) {
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not found (Debian's openmpi-bin)")
	}
	dir := t.TempDir()
	testData(t, dir)
	// Without dropout, whose masks each rank draws from a stream of its own.
	recipe := strings.Replace(reduce(t, starterRecipe(t, dir), dir, filepath.Join(dir, "run"), 1), "dropout: 0.5", "dropout: 0", 1)
	cfg := writeFile(t, filepath.Join(dir, "ranks.yaml"), recipe)
	args := []string{"lr-find", "-c", cfg, "--stage", "all", "--steps", "15"}
	one, err := runCLI(t, append(args, "-o", filepath.Join(dir, "one.png"))...)
	if err != nil {
		t.Fatalf("one process: %v\n%s", err, one)
	}
	cmd := exec.Command("mpirun", append(mpirunArgs(2), append(args, "-o", filepath.Join(dir, "ranks.png"))...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun -np 2: %v\n%s", err, out)
	}
	pick := func(s, prefix string) string {
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	if n := strings.Count(string(out), "suggested: "); n != 1 {
		t.Errorf("%d suggestions printed, want rank 0's alone:\n%s", n, out)
	}
	for _, p := range []string{"stage all: ", "- {name: all"} {
		if got, want := pick(string(out), p), pick(one, p); got != want || want == "" {
			t.Errorf("two ranks print %q, one process %q", got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ranks.png")); err != nil {
		t.Errorf("rank 0 drew no plot: %v", err)
	}
}

// TestMPIRankFails runs toolkit finetune on two ranks whose rank 1 alone sees a
// training image that does not decode (its data.train, through the environment of
// mpirun's second program, is a copy with one file truncated): rank 1 fails while rank
// 0 waits for it in the weights' broadcast. The job ends with rank 1's error, naming
// the file, and with no rank left waiting until TOOLKIT_MPI_TIMEOUT (60 s here; the
// collective's timeout message would say so).
func TestMPIRankFails(t *testing.T) {
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not found (Debian's openmpi-bin)")
	}
	dir := t.TempDir()
	testData(t, dir)
	copyImages(t, filepath.Join(dir, "train"), filepath.Join(dir, "train-bad"), 12)
	bad, err := filepath.Glob(filepath.Join(dir, "train-bad", "*", "*.png"))
	if err != nil || len(bad) == 0 {
		t.Fatal(bad, err)
	}
	raw, err := os.ReadFile(bad[7])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad[7], raw[:len(raw)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(dir, "ranks.yaml"), reduce(t, starterRecipe(t, dir), dir, filepath.Join(dir, "run"), 1))
	// Two programs (mpirun's app contexts), each taking its own -x.
	rank0 := mpirunArgs(1, "TOOLKIT_MPI_TIMEOUT=60")
	rank1 := mpirunArgs(1, "TOOLKIT_MPI_TIMEOUT=60", "TOOLKIT_DATA_TRAIN="+filepath.Join(dir, "train-bad"))
	at := slices.Index(rank1, "-np")
	args := append(append(rank0, "finetune", "-c", cfg, ":"), append(rank1[at:], "finetune", "-c", cfg)...)
	started := time.Now()
	out, err := exec.Command("mpirun", args...).CombinedOutput()
	t.Logf("the job ended after %.1f s: %v", time.Since(started).Seconds(), err)
	if err == nil {
		t.Fatalf("the job succeeded:\n%s", out)
	}
	if want := "toolkit: rank 1: data.train: dataset: " + bad[7] + ": not a decodable image"; !strings.Contains(string(out), want) {
		t.Errorf("the job's output lacks %q:\n%s", want, out)
	}
	if strings.Contains(string(out), "for the other ranks") {
		t.Errorf("a rank waited for the failed one until its timeout:\n%s", out)
	}
}
