package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tenClassFolder makes an image folder of ten classes ("0" to "9", as many as the
// parity fixture's outputs) of perClass demo images each.
func tenClassFolder(t *testing.T, perClass int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "images")
	src := "../../data/fmnist-5to9/test"
	classes, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 10 {
		from := filepath.Join(src, classes[c%len(classes)].Name())
		files, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dir, fmt.Sprint(c))
		if err := os.MkdirAll(to, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range perClass {
			f := files[(c/len(classes))*perClass+i]
			raw, err := os.ReadFile(filepath.Join(from, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(to, f.Name()), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// readAndRemove returns the files' contents and removes them, so that the next command
// writes them afresh.
func readAndRemove(t *testing.T, paths ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = raw
		os.Remove(p)
	}
	return out
}

// TestEvaluateShardsMergeCLI runs toolkit evaluate on 70 images in batches of 8 (9
// batches) with --tta, --most-confused and --top-losses in one process, then as 4
// shards (one from Kubernetes' variables, one from Slurm's, one from TOOLKIT_SHARD in a
// one-task array) and as 12 (three of them
// empty), each merged: the merge prints what the one process printed and writes its
// confusion.png, top_losses.png and top_losses.csv, byte for byte. A shard run again
// writes the same part.
func TestEvaluateShardsMergeCLI(t *testing.T) {
	data := tenClassFolder(t, 7)
	model := filepath.Join(fixture, "model.onnx")
	out := t.TempDir()
	plot := filepath.Join(out, "confusion.png")
	files := []string{plot, filepath.Join(out, "top_losses.png"), filepath.Join(out, "top_losses.csv")}
	args := []string{"evaluate", model, "--data", data, "--batch-size", "8", "--tta", "--most-confused", "--top-losses", "5", "--top-k", "3", "--plot", plot}
	one, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, one)
	}
	want := readAndRemove(t, files...)
	for _, count := range []int{4, 12} {
		parts := filepath.Join(t.TempDir(), "parts")
		for i := range count {
			shardArgs := append(args, "--parts", parts)
			switch {
			case count == 4 && i == 1:
				t.Setenv("JOB_COMPLETION_INDEX", "1")
				t.Setenv("JOB_COMPLETIONS", "4")
			case count == 4 && i == 2:
				t.Setenv("SLURM_ARRAY_TASK_ID", "3") // --array=1-4
				t.Setenv("SLURM_ARRAY_TASK_MIN", "1")
				t.Setenv("SLURM_ARRAY_TASK_COUNT", "4")
			case count == 4 && i == 3:
				// A task run again alone (sbatch --array=0) keeps its shard through
				// TOOLKIT_SHARD, which the one-task array's variables do not override.
				t.Setenv("SLURM_ARRAY_TASK_ID", "0")
				t.Setenv("SLURM_ARRAY_TASK_MIN", "0")
				t.Setenv("SLURM_ARRAY_TASK_COUNT", "1")
				t.Setenv("TOOLKIT_SHARD", "3/4")
			default:
				shardArgs = append(shardArgs, "--shard", fmt.Sprintf("%d/%d", i, count))
			}
			got, err := runCLI(t, shardArgs...)
			os.Unsetenv("JOB_COMPLETION_INDEX")
			os.Unsetenv("SLURM_ARRAY_TASK_ID")
			os.Unsetenv("TOOLKIT_SHARD")
			if err != nil {
				t.Fatalf("shard %d/%d: %v\n%s", i, count, err, got)
			}
			if !strings.Contains(got, fmt.Sprintf("shard %d/%d: ", i, count)) {
				t.Errorf("shard %d/%d says: %s", i, count, got)
			}
		}
		// A shard run again (a retried pod) writes the same part.
		part := filepath.Join(parts, fmt.Sprintf("evaluate-0-of-%d.part", count))
		before, err := os.ReadFile(part)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, append(args, "--parts", parts, "--shard", fmt.Sprintf("0/%d", count))...); err != nil {
			t.Fatalf("shard 0 again: %v\n%s", err, out)
		}
		if after, err := os.ReadFile(part); err != nil || !bytes.Equal(before, after) {
			t.Errorf("shard 0/%d run again wrote another part (%v)", count, err)
		}
		merged, err := runCLI(t, append(args, "--merge", "--parts", parts)...)
		if err != nil {
			t.Fatalf("merge of %d: %v\n%s", count, err, merged)
		}
		if merged != one {
			t.Errorf("the merge of %d shards printed\n%s\none process printed\n%s", count, merged, one)
		}
		for name, raw := range readAndRemove(t, files...) {
			if !bytes.Equal(raw, want[name]) {
				t.Errorf("the merge of %d shards wrote another %s than one process (%d bytes, one process %d)", count, filepath.Base(name), len(raw), len(want[name]))
			}
		}
	}
	if !strings.Contains(one, "TTA (2 views)") || !strings.Contains(one, "top losses") || !strings.Contains(one, "most confused") {
		t.Errorf("the report lacks TTA, top losses or the most confused:\n%s", one)
	}
}

// TestPredictShardsMergeCLI predicts 50 images in batches of 4 in one process and as 3
// shards merged, as text and as JSON: the merge prints what one process printed.
func TestPredictShardsMergeCLI(t *testing.T) {
	data := tenClassFolder(t, 5)
	model := filepath.Join(fixture, "model.onnx")
	for _, format := range [][]string{nil, {"--json"}} {
		args := append([]string{"predict", model, filepath.Join(data, "3"), data, "--batch-size", "4", "--top-k", "2"}, format...)
		one, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, one)
		}
		parts := t.TempDir()
		for i := range 3 {
			if got, err := runCLI(t, append(args, "--shard", fmt.Sprintf("%d/3", i), "--parts", parts)...); err != nil {
				t.Fatalf("shard %d: %v\n%s", i, err, got)
			}
		}
		merged, err := runCLI(t, append(args, "--merge", "--parts", parts)...)
		if err != nil {
			t.Fatalf("merge: %v\n%s", err, merged)
		}
		if merged != one || strings.Count(one, ".png") < 55 {
			t.Errorf("%v: the merge printed\n%s\none process printed\n%s", format, merged, one)
		}
	}
}

// TestShardErrors checks the messages of sharding mistakes: each names the flag,
// variable, shard or part file at fault.
func TestShardErrors(t *testing.T) {
	data := tenClassFolder(t, 2)
	model := filepath.Join(fixture, "model.onnx")
	parts, whole := t.TempDir(), t.TempDir()
	base := []string{"evaluate", model, "--data", data, "--batch-size", "4"}
	for _, s := range []string{"0/2", "1/2"} {
		for _, dir := range []string{parts, whole} {
			if out, err := runCLI(t, append(base, "--shard", s, "--parts", dir)...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
	}
	os.Remove(filepath.Join(parts, "evaluate-1-of-2.part"))
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"shard out of range", []string{"--shard", "2/2", "--parts", parts}, nil, []string{"--shard", `"2/2"`, "index from 0 to the count less one"}},
		{"shard without parts", []string{"--shard", "1/2"}, nil, []string{"shard 1/2 (from --shard)", "--parts DIR"}},
		{"environment without parts", nil, []string{"JOB_COMPLETION_INDEX", "1", "JOB_COMPLETIONS", "2"}, []string{"shard 1/2 (from JOB_COMPLETION_INDEX of JOB_COMPLETIONS)", "--parts DIR"}},
		{"index without count", []string{"--parts", parts}, []string{"JOB_COMPLETION_INDEX", "1"}, []string{"JOB_COMPLETIONS is not set", "spec.completions"}},
		{"parts alone", []string{"--parts", parts}, nil, []string{"--parts is where --shard I/N writes"}},
		{"merge and shard", []string{"--shard", "1/2", "--merge", "--parts", parts}, nil, []string{"--shard 1/2 runs one shard and --merge joins"}},
		{"merge without parts", []string{"--merge"}, nil, []string{"--merge needs --parts DIR"}},
		{"a shard missing", []string{"--merge", "--parts", parts}, nil, []string{"shard 1 of 2 missing", "evaluate-1-of-2.part"}},
		{"merge with other options", []string{"--merge", "--parts", whole, "--tta"}, nil, []string{"evaluate-0-of-2.part (shard 0/2) was made for another job: tta false (this merge true)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := 0; i < len(c.env); i += 2 {
				t.Setenv(c.env[i], c.env[i+1])
			}
			out, err := runCLI(t, append(base, c.args...)...)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestExtractShardsMergeCLI extracts the demo base's features of 40 images in batches of
// 6 in one process (GOMAXPROCS as the test runs), then as three processes side by side
// with GOMAXPROCS=1, each a task of a Kubernetes Indexed Job (JOB_COMPLETION_INDEX of
// JOB_COMPLETIONS=3) writing its part to OUT_DIR/parts, and merges them: features.npy,
// files.txt and what the command prints are one process's, byte for byte.
func TestExtractShardsMergeCLI(t *testing.T) {
	data := tenClassFolder(t, 4)
	out := filepath.Join(t.TempDir(), "features")
	args := []string{"extract", "../../models/fmnist-vgg/base.onnx", "--data", data, "-o", out, "--batch-size", "6"}
	one, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, one)
	}
	files := []string{filepath.Join(out, "features.npy"), filepath.Join(out, "files.txt")}
	want := readAndRemove(t, files...)
	var cmds []*exec.Cmd
	var outputs []*bytes.Buffer
	for i := range 3 {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "GOMAXPROCS=1", fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i), "JOB_COMPLETIONS=3")
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outputs = append(cmds, cmd), append(outputs, &b)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("shard %d: %v\n%s", i, err, outputs[i])
		}
		if want := fmt.Sprintf("shard %d/3: ", i); !strings.HasPrefix(outputs[i].String(), want) || !strings.Contains(outputs[i].String(), filepath.Join(out, "parts", fmt.Sprintf("extract-%d-of-3.part", i))) {
			t.Errorf("shard %d says %q", i, outputs[i])
		}
	}
	merged, err := runCLI(t, append(args, "--merge")...)
	if err != nil {
		t.Fatalf("merge: %v\n%s", err, merged)
	}
	if merged != one || !strings.Contains(one, "(40 x 128 x 4 x 4, float32)") {
		t.Errorf("the merge printed\n%s\none process printed\n%s", merged, one)
	}
	for name, raw := range readAndRemove(t, files...) {
		if !bytes.Equal(raw, want[name]) {
			t.Errorf("the merge wrote another %s than one process (%d bytes, one process %d)", filepath.Base(name), len(raw), len(want[name]))
		}
	}
	if _, err := runCLI(t, "extract", "../../models/fmnist-vgg/base.onnx", "-c", "../../config.yaml", "--data", data, "-o", out); err == nil || !strings.Contains(err.Error(), "a model file or -c config.yaml (one of them)") {
		t.Errorf("a model and a recipe: %v", err)
	}
}
