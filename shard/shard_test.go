package shard

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Spec{"0/1": {0, 1}, "3/8": {3, 8}, " 7 / 8 ": {7, 8}} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3", "8/8", "-1/4", "1/0", "a/b", "1/2/3"} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), "shard") {
			t.Errorf("Parse(%q): %v, want an error", in, err)
		}
	}
}

func TestFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, c := range []struct {
		env  func(string) string
		want Spec
		from string
		err  string
	}{
		{env(), Spec{}, "", ""},
		{env("JOB_COMPLETION_INDEX", "2", "JOB_COMPLETIONS", "4"), Spec{2, 4}, "JOB_COMPLETION_INDEX", ""},
		{env("JOB_COMPLETION_INDEX", "2"), Spec{}, "", "JOB_COMPLETIONS is not set"},
		{env("JOB_COMPLETION_INDEX", "4", "JOB_COMPLETIONS", "4"), Spec{}, "", "JOB_COMPLETION_INDEX=4, JOB_COMPLETIONS=4"},
		{env("JOB_COMPLETION_INDEX", "x", "JOB_COMPLETIONS", "4"), Spec{}, "", "JOB_COMPLETION_INDEX=x: not a whole number"},
		{env("SLURM_ARRAY_TASK_ID", "3", "SLURM_ARRAY_TASK_COUNT", "8", "SLURM_ARRAY_TASK_MIN", "0", "SLURM_ARRAY_TASK_STEP", "1"), Spec{3, 8}, "SLURM_ARRAY_TASK_ID", ""},
		{env("SLURM_ARRAY_TASK_ID", "8", "SLURM_ARRAY_TASK_COUNT", "8", "SLURM_ARRAY_TASK_MIN", "1"), Spec{7, 8}, "SLURM_ARRAY_TASK_ID", ""},
		{env("SLURM_ARRAY_TASK_ID", "5", "SLURM_ARRAY_TASK_COUNT", "3", "SLURM_ARRAY_TASK_MIN", "1"), Spec{}, "", "must be consecutive"},
		{env("SLURM_ARRAY_TASK_ID", "2", "SLURM_ARRAY_TASK_COUNT", "3", "SLURM_ARRAY_TASK_STEP", "2"), Spec{}, "", "SLURM_ARRAY_TASK_STEP=2"},
		{env("SLURM_ARRAY_TASK_ID", "2"), Spec{}, "", "SLURM_ARRAY_TASK_COUNT is not set"},
	} {
		got, from, err := FromEnv(c.env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want one with %q", got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want || !strings.HasPrefix(from, c.from) {
			t.Errorf("got %v from %q (%v), want %v from %s", got, from, err, c.want, c.from)
		}
	}
}

// TestRange checks that the shards of a job hold whole batches, each example once, in
// order, for counts that do not divide the batches and for more shards than batches.
func TestRange(t *testing.T) {
	for _, c := range []struct{ n, batch, count int }{{1000, 32, 3}, {100, 7, 4}, {70, 32, 4}, {5, 2, 8}, {0, 4, 2}, {64, 32, 2}} {
		next := 0
		for i := range c.count {
			lo, hi := Spec{i, c.count}.Range(c.n, c.batch)
			if lo != next || hi < lo || lo%c.batch != 0 || hi != c.n && hi%c.batch != 0 {
				t.Errorf("%+v: shard %d holds [%d, %d) after %d", c, i, lo, hi, next)
			}
			next = hi
		}
		if next != c.n {
			t.Errorf("%+v: the shards hold %d examples", c, next)
		}
		if lo, hi := (Spec{}).Range(c.n, c.batch); lo != 0 || hi != c.n {
			t.Errorf("the whole job: [%d, %d)", lo, hi)
		}
	}
}

type testJob struct {
	Model string `json:"model"`
	TTA   bool   `json:"tta"`
}

// writeParts writes the parts of a job of n examples over count shards: each example
// i's value is i in array "a" (float32, width 2) and 0.5*i in "b" (float64).
func writeParts(t *testing.T, dir string, n, batch, count int, job testJob, shared string) {
	t.Helper()
	rawJob, _ := json.Marshal(job)
	for i := range count {
		s := Spec{i, count}
		lo, hi := s.Range(n, batch)
		h := Header{Command: "test", Shard: s, Lo: lo, Hi: hi, Total: n, Job: rawJob, Shared: json.RawMessage(shared),
			Own:    json.RawMessage(`{"first":` + jsonInt(lo) + `}`),
			Arrays: []Array{{"a", Float32, 2 * (hi - lo)}, {"b", Float64, hi - lo}}}
		err := Write(Path(dir, "test", s), h, func(w *Writer) error {
			for e := lo; e < hi; e++ {
				if err := w.Float32s([]float32{float32(e), float32(e)}); err != nil {
					return err
				}
			}
			for e := lo; e < hi; e++ {
				if err := w.Float64s([]float64{0.5 * float64(e)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func jsonInt(v int) string { b, _ := json.Marshal(v); return string(b) }

func TestPartsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	job := testJob{Model: "m.onnx", TTA: true}
	writeParts(t, dir, 100, 7, 4, job, `{"classes":["a","b"]}`)
	parts, err := Gather(dir, "test", job)
	if err != nil {
		t.Fatal(err)
	}
	var a []float32
	var b []float64
	for _, p := range parts {
		pa, err := p.Float32s("a")
		if err != nil {
			t.Fatal(err)
		}
		pb, err := p.Float64s("b")
		if err != nil {
			t.Fatal(err)
		}
		a, b = append(a, pa...), append(b, pb...)
		var own struct{ First int }
		if err := json.Unmarshal(p.Own, &own); err != nil || own.First != p.Lo {
			t.Errorf("%s: own %s", p.Path, p.Own)
		}
	}
	for e := range 100 {
		if a[2*e] != float32(e) || a[2*e+1] != float32(e) || b[e] != 0.5*float64(e) {
			t.Fatalf("example %d: %v %v %v", e, a[2*e], a[2*e+1], b[e])
		}
	}
	var sb strings.Builder
	if err := parts[1].CopyFloat32s("a", &sb); err != nil || len(sb.String()) != 4*parts[1].Arrays[0].Len {
		t.Errorf("CopyFloat32s: %v, %d bytes", err, len(sb.String()))
	}
	if _, err := parts[0].Float64s("a"); err == nil || !strings.Contains(err.Error(), "holds float32 values") {
		t.Errorf("reading a float32 array as float64: %v", err)
	}
	// Writing a shard again gives the same bytes.
	before, _ := os.ReadFile(Path(dir, "test", Spec{2, 4}))
	writeParts(t, dir, 100, 7, 4, job, `{"classes":["a","b"]}`)
	after, _ := os.ReadFile(Path(dir, "test", Spec{2, 4}))
	if !slices.Equal(before, after) {
		t.Error("a shard written twice differs")
	}
}

func TestWriterChecksLengths(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x-0-of-1.part")
	h := Header{Command: "x", Shard: Spec{0, 1}, Hi: 1, Total: 1, Job: json.RawMessage(`{}`), Shared: json.RawMessage(`{}`),
		Arrays: []Array{{"a", Float32, 2}}}
	for name, fill := range map[string]func(w *Writer) error{
		"short": func(w *Writer) error { return w.Float32s([]float32{1}) },
		"long":  func(w *Writer) error { return w.Float32s([]float32{1, 2, 3}) },
		"type":  func(w *Writer) error { return w.Float64s([]float64{1, 2}) },
	} {
		if err := Write(path, h, fill); err == nil || !strings.Contains(err.Error(), "array a") {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s: a failed write left %s", name, path)
		}
	}
	if err := Write(path, h, func(w *Writer) error { return w.Float32s([]float32{1, float32(math.Inf(1))}) }); err != nil {
		t.Fatal(err)
	}
	p, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := p.Float32s("a"); v[0] != 1 || !math.IsInf(float64(v[1]), 1) {
		t.Errorf("read back %v", v)
	}
}

// TestGatherErrors checks that each way a set of parts can be wrong is an error naming
// the part or the shard.
func TestGatherErrors(t *testing.T) {
	job := testJob{Model: "m.onnx"}
	shared := `{"classes":["a","b"]}`
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		writeParts(t, dir, 50, 4, 3, job, shared)
		return dir
	}
	for _, c := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		job    testJob
		want   []string
	}{
		{"none", func(t *testing.T, dir string) {
			for i := range 3 {
				os.Remove(Path(dir, "test", Spec{i, 3}))
			}
		}, job, []string{"holds no parts of toolkit test", "--shard I/N"}},
		{"missing", func(t *testing.T, dir string) { os.Remove(Path(dir, "test", Spec{1, 3})) }, job, []string{"shard 1 of 3 missing", "test-1-of-3.part"}},
		{"two jobs", func(t *testing.T, dir string) { writeParts(t, dir, 50, 4, 2, job, shared) }, job, []string{"jobs of 2 and 3 shards", "remove the other job's parts"}},
		{"another job", func(t *testing.T, dir string) {}, testJob{Model: "other.onnx"}, []string{"test-0-of-3.part (shard 0/3) was made for another job", `model "m.onnx" (this merge "other.onnx")`}},
		{"other input", func(t *testing.T, dir string) {
			rawJob, _ := json.Marshal(job)
			s := Spec{2, 3}
			lo, hi := s.Range(50, 4)
			h := Header{Command: "test", Shard: s, Lo: lo, Hi: hi, Total: 50, Job: rawJob, Shared: json.RawMessage(`{"classes":["a","c"]}`)}
			if err := Write(Path(dir, "test", s), h, func(*Writer) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}, job, []string{"test-2-of-3.part (shard 2/3) saw other input than shard 0/3", `classes ["a","c"] (shard 0/3 ["a","b"])`}},
		{"damaged", func(t *testing.T, dir string) {
			p := Path(dir, "test", Spec{1, 3})
			raw, _ := os.ReadFile(p)
			raw[len(raw)-10] ^= 1
			os.WriteFile(p, raw, 0o644)
		}, job, []string{"test-1-of-3.part: its checksum does not match", "run its shard again"}},
		{"truncated", func(t *testing.T, dir string) {
			p := Path(dir, "test", Spec{1, 3})
			raw, _ := os.ReadFile(p)
			os.WriteFile(p, raw[:len(raw)-9], 0o644)
		}, job, []string{"test-1-of-3.part: not a whole part file"}},
		{"renamed", func(t *testing.T, dir string) {
			os.Rename(Path(dir, "test", Spec{1, 3}), filepath.Join(dir, "test-5-of-9.part"))
		}, job, []string{"test-5-of-9.part: holds shard 1/3", "renamed"}},
		{"not a part", func(t *testing.T, dir string) {
			os.WriteFile(Path(dir, "test", Spec{1, 3}), []byte("hello"), 0o644)
		}, job, []string{"test-1-of-3.part: not a part file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := setup(t)
			c.break_(t, dir)
			_, err := Gather(dir, "test", c.job)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := Gather(filepath.Join(t.TempDir(), "nope"), "test", job); err == nil || !strings.Contains(err.Error(), "no parts to merge") {
		t.Errorf("a missing folder: %v", err)
	}
}
