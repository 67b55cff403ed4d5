package crosscheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/backend"
	"toolkit/headbuilder"
	"toolkit/npy"
	"toolkit/onnx"
)

// The tests in this file run models with ONNX Runtime (onnxruntime-node, CPU) through
// tools/ort/run.js, and with the toolkit's backend, and compare.

// ortInstall is the command, run from the repository root, that installs the runner's
// onnxruntime-node (the pinned version in tools/ort/package-lock.json, CPU only: its
// install script, which downloads CUDA libraries, is skipped).
const ortInstall = "npm ci --prefix tools/ort --ignore-scripts"

// ortDir is tools/ort seen from this package's folder.
const ortDir = "../tools/ort"

// ortRunner returns the node executable and the absolute path of run.js. When node or
// onnxruntime-node is missing the test fails under CI (CI set, as .ci/run sets it) and
// is skipped otherwise.
func ortRunner(t *testing.T) (node, script string) {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node is not on PATH (Debian: apt-get install nodejs npm)")
	}
	dir, err := filepath.Abs(ortDir)
	if err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		missing = append(missing, "onnxruntime-node is not installed in tools/ort/node_modules")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("ONNX Runtime cross-checks need Node.js and onnxruntime-node: %s; from the repository root run: %s",
			strings.Join(missing, "; "), ortInstall)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node, filepath.Join(dir, "run.js")
}

// ortJob is one model run: the model file, a float32 input .npy and the output .npy that
// run.js writes.
type ortJob struct {
	model, in, out string
}

// runORT runs every job in one node process (ONNX Runtime starts once; each model file
// gets one session). Jobs that failed have no output file: readORT reports them with
// run.js's messages, returned here.
func runORT(t *testing.T, jobs []ortJob) (stderr string) {
	t.Helper()
	node, script := ortRunner(t)
	// One intra-op thread: the models are small, and a thread pool per session only
	// spins on a busy machine.
	args := []string{script, "--threads", "1"}
	for _, j := range jobs {
		args = append(args, j.model, j.in, j.out)
	}
	cmd := exec.Command(node, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Stdout = &errb
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running %s: %v", script, err)
		}
		t.Logf("run.js: %v\n%s", err, errb.String())
	}
	return errb.String()
}

// readORT reads a job's output, or reports why there is none.
func readORT(t *testing.T, j ortJob, stderr string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(j.out)
	if err != nil {
		var lines []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, j.model) {
				lines = append(lines, l)
			}
		}
		t.Fatalf("ONNX Runtime did not run %s on %s: %s", j.model, j.in, strings.Join(lines, "; "))
	}
	return a
}

// TestORTFixtures runs every parity fixture on its own input.npy with the toolkit and
// with ONNX Runtime.
func TestORTFixtures(t *testing.T) {
	ortRunner(t)
	fixtures := parityFixtures(t)
	tmp := t.TempDir()
	var jobs []ortJob
	for _, f := range fixtures {
		jobs = append(jobs, ortJob{
			model: filepath.Join(f.dir, "model.onnx"),
			in:    filepath.Join(f.dir, "input.npy"),
			out:   filepath.Join(tmp, f.name+".npy"),
		})
	}
	stderr := runORT(t, jobs)
	var w worst
	for i, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			want := readORT(t, jobs[i], stderr)
			got, err := runToolkit(readIR(t, jobs[i].model), readNPY(t, jobs[i].in))
			if err != nil {
				t.Fatal(err)
			}
			compare(t, &w, f.name, got, want, tolerance)
		})
	}
	w.log(t, "ONNX Runtime")
}

// TestORTDynamicBatch runs every parity fixture, whose batch axis is symbolic, at batch
// sizes 1, 3 and 7 on seeded random inputs.
func TestORTDynamicBatch(t *testing.T) {
	ortRunner(t)
	fixtures := parityFixtures(t)
	tmp := t.TempDir()
	type batchCase struct {
		name string
		f    fixture
		x    *npy.Array
		job  ortJob
	}
	var cases []batchCase
	for fi, f := range fixtures {
		shape := readNPY(t, filepath.Join(f.dir, "input.npy")).Shape
		for _, n := range []int{1, 3, 7} {
			c := batchCase{name: fmt.Sprintf("%s/batch%d", f.name, n), f: f}
			c.x = randomInput(withBatch(shape, n), uint64(100*fi+n))
			c.job = ortJob{
				model: filepath.Join(f.dir, "model.onnx"),
				in:    filepath.Join(tmp, fmt.Sprintf("%s_b%d_in.npy", f.name, n)),
				out:   filepath.Join(tmp, fmt.Sprintf("%s_b%d_out.npy", f.name, n)),
			}
			writeNPY(t, c.job.in, c.x)
			cases = append(cases, c)
		}
	}
	var jobs []ortJob
	for _, c := range cases {
		jobs = append(jobs, c.job)
	}
	stderr := runORT(t, jobs)
	var w worst
	models := map[string]*backend.Model{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := readORT(t, c.job, stderr)
			if want.Shape[0] != c.x.Shape[0] {
				t.Errorf("ONNX Runtime output batch %d, input batch %d", want.Shape[0], c.x.Shape[0])
			}
			m := models[c.f.name]
			if m == nil {
				var err error
				if m, err = backend.NewModel(readIR(t, c.job.model)); err != nil {
					t.Fatal(err)
				}
				models[c.f.name] = m
			}
			got, err := runBackend(m, c.x)
			if err != nil {
				t.Fatal(err)
			}
			compare(t, &w, c.name, got, want, tolerance)
		})
	}
	w.log(t, "ONNX Runtime")
}

// roundTripTolerance bounds the difference between ONNX Runtime's outputs for a file and
// for the toolkit's rewrite of it: they should be bit-identical.
const roundTripTolerance = 1e-6

// TestORTWriteRoundTrip reads every parity fixture, writes it back with onnx.Write (and
// writes backend.Model.Export of it, the path a fine-tuned model takes), and checks that
// ONNX Runtime computes the same outputs from the written files as from the original.
func TestORTWriteRoundTrip(t *testing.T) {
	ortRunner(t)
	fixtures := parityFixtures(t)
	tmp := t.TempDir()
	type rtCase struct {
		f                 fixture
		orig, wrote, expo ortJob
	}
	var cases []rtCase
	var jobs []ortJob
	for _, f := range fixtures {
		ir := readIR(t, filepath.Join(f.dir, "model.onnx"))
		wrote := filepath.Join(tmp, f.name+"_written.onnx")
		if err := onnx.Write(wrote, ir); err != nil {
			t.Fatalf("%s: onnx.Write: %v", f.name, err)
		}
		m, err := backend.NewModel(ir)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		expo := filepath.Join(tmp, f.name+"_exported.onnx")
		if err := onnx.Write(expo, m.Export()); err != nil {
			t.Fatalf("%s: onnx.Write(Export()): %v", f.name, err)
		}
		in := filepath.Join(f.dir, "input.npy")
		c := rtCase{
			f:     f,
			orig:  ortJob{filepath.Join(f.dir, "model.onnx"), in, filepath.Join(tmp, f.name+"_orig.npy")},
			wrote: ortJob{wrote, in, filepath.Join(tmp, f.name+"_written.npy")},
			expo:  ortJob{expo, in, filepath.Join(tmp, f.name+"_exported.npy")},
		}
		cases = append(cases, c)
		jobs = append(jobs, c.orig, c.wrote, c.expo)
	}
	stderr := runORT(t, jobs)
	var w worst
	identical, total := 0, 0
	for _, c := range cases {
		t.Run(c.f.name, func(t *testing.T) {
			want := readORT(t, c.orig, stderr)
			for _, j := range []ortJob{c.wrote, c.expo} {
				got := readORT(t, j, stderr)
				compare(t, &w, filepath.Base(j.model), got, want, roundTripTolerance)
				total++
				if _, abs := diff(got.Data, want.Data); abs == 0 {
					identical++
				}
			}
		})
	}
	w.log(t, "ONNX Runtime on the original files")
	t.Logf("%d of %d rewritten files give bit-identical outputs in ONNX Runtime", identical, total)
}

// headSpecs are the heads TestORTHead appends: every pooling mode, every activation,
// with and without hidden layers and dropout (dropout without hidden layers too).
var headSpecs = []headbuilder.Spec{
	{Pool: headbuilder.PoolFlatten, Classes: 4, Seed: 1},
	{Pool: headbuilder.PoolAvg, Dense: []int{16}, Dropout: 0.5, Classes: 5, Seed: 2},
	{Pool: headbuilder.PoolMax, Dense: []int{24, 12}, Activation: headbuilder.ActLeakyReLU, Dropout: 0.3, Classes: 3, Seed: 3},
	{Pool: headbuilder.PoolAvg, Dropout: 0.2, Classes: 6, Seed: 4},
	{Pool: headbuilder.PoolFlatten, Dense: []int{8}, Activation: headbuilder.ActTanh, Init: headbuilder.InitGlorot, Classes: 2, Seed: 5},
	{Pool: headbuilder.PoolMax, Dense: []int{10}, Activation: headbuilder.ActSigmoid, Classes: 7, Seed: 6},
	{Pool: headbuilder.PoolAvg, Dense: []int{10, 6}, Activation: headbuilder.ActNone, Dropout: 0.1, Classes: 3, Seed: 7},
}

func specName(s headbuilder.Spec) string {
	name := s.Pool + fmt.Sprint(s.Dense)
	if s.Activation != "" {
		name += "_" + s.Activation
	}
	if s.Dropout > 0 {
		name += fmt.Sprintf("_drop%g", s.Dropout)
	}
	return strings.NewReplacer("[", "_", "]", "", " ", "x").Replace(name) + fmt.Sprintf("_c%d", s.Classes)
}

// headlessBase returns the convolutional base of a parity fixture: the model itself when
// it is headless, else the model cut at onnx.HeadlessCut.
func headlessBase(t *testing.T, f fixture) *onnx.Model {
	t.Helper()
	ir := readIR(t, filepath.Join(f.dir, "model.onnx"))
	if onnx.IsHeadless(ir) {
		return ir
	}
	at, err := onnx.HeadlessCut(ir)
	if err != nil {
		t.Fatalf("%s: HeadlessCut: %v", f.name, err)
	}
	base, err := onnx.Cut(ir, at)
	if err != nil {
		t.Fatalf("%s: Cut at %q: %v", f.name, at, err)
	}
	return base
}

// fineTune takes two SGD steps on the whole model (training mode: dropout on, batch
// statistics) with the cross-entropy of random one-hot labels, changing every trainable
// parameter and the BatchNormalization running statistics, as a fine-tuning run would.
func fineTune(t *testing.T, m *backend.Model, inShape []int, classes int) {
	t.Helper()
	const batch, lr = 4, 0.05
	in := m.Inputs()[0].Name
	p, err := m.Program(backend.Options{
		InputShapes: map[string][]int{in: withBatch(inShape, batch)},
		Training:    true,
		Trainable:   m.TrainableNames(),
		Loss:        backend.CrossEntropy,
		Seed:        9,
	})
	if err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 2; step++ {
		x := randomInput(withBatch(inShape, batch), uint64(1000+step))
		target := make([]float32, batch*classes)
		for i := 0; i < batch; i++ {
			target[i*classes+(i+step)%classes] = 1
		}
		if err := p.Run([][]float32{x.Data}, target); err != nil {
			t.Fatal(err)
		}
		for _, name := range m.TrainableNames() {
			w, g := m.Param(name), p.Grad(name)
			if g == nil {
				t.Fatalf("no gradient for %s", name)
			}
			for i := range w {
				w[i] -= lr * g[i]
			}
		}
	}
}

// TestORTHead appends heads with headbuilder onto the convolutional bases of parity
// fixtures (already headless, or cut with onnx.HeadlessCut and onnx.Cut), fine-tunes the
// result for two steps with the backend, exports it (backend.Model.Export, onnx.Write)
// and runs the written file in ONNX Runtime at batch sizes 1, 3 and 7: the logits must
// match the backend's for the same weights, and the backend's for the file read back.
func TestORTHead(t *testing.T) {
	ortRunner(t)
	bases := []string{
		"vgg_features_opset9", "vgg_features_opset13", "vgg_features_opset17",
		"vgg_classifier_opset13", "vgg_bn_opset13", "vgg_view_flatten_opset13",
	}
	tmp := t.TempDir()
	type headCase struct {
		name    string
		m       *backend.Model
		file    string
		batches []*npy.Array
		jobs    []ortJob
	}
	var cases []headCase
	var jobs []ortJob
	for bi, b := range bases {
		f := fixture{name: b, dir: filepath.Join(parityDir, b)}
		base := headlessBase(t, f)
		inShape := readNPY(t, filepath.Join(f.dir, "input.npy")).Shape
		for si, spec := range headSpecs {
			c := headCase{name: b + "/" + specName(spec)}
			withHead, err := headbuilder.Append(base, spec, onnxShape(withBatch(inShape, 1)))
			if err != nil {
				t.Fatalf("%s: Append: %v", c.name, err)
			}
			if c.m, err = backend.NewModel(withHead); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			before := append([]float32(nil), c.m.Param("head.logits.weight")...)
			fineTune(t, c.m, inShape, spec.Classes)
			if _, abs := diff(c.m.Param("head.logits.weight"), before); abs == 0 {
				t.Fatalf("%s: fine-tuning left head.logits.weight unchanged", c.name)
			}
			c.file = filepath.Join(tmp, fmt.Sprintf("head_%d_%d.onnx", bi, si))
			if err := onnx.Write(c.file, c.m.Export()); err != nil {
				t.Fatalf("%s: onnx.Write: %v", c.name, err)
			}
			for _, n := range []int{1, 3, 7} {
				x := randomInput(withBatch(inShape, n), uint64(10000+100*bi+10*si+n))
				j := ortJob{
					model: c.file,
					in:    filepath.Join(tmp, fmt.Sprintf("head_%d_%d_b%d_in.npy", bi, si, n)),
					out:   filepath.Join(tmp, fmt.Sprintf("head_%d_%d_b%d_out.npy", bi, si, n)),
				}
				writeNPY(t, j.in, x)
				c.batches = append(c.batches, x)
				c.jobs = append(c.jobs, j)
			}
			jobs = append(jobs, c.jobs...)
			cases = append(cases, c)
		}
	}
	stderr := runORT(t, jobs)
	var w worst
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reread, err := backend.NewModel(readIR(t, c.file))
			if err != nil {
				t.Fatalf("the written file: %v", err)
			}
			for i, x := range c.batches {
				want := readORT(t, c.jobs[i], stderr)
				what := fmt.Sprintf("%s/batch%d", c.name, x.Shape[0])
				got, err := runBackend(c.m, x)
				if err != nil {
					t.Fatal(err)
				}
				compare(t, &w, what, got, want, tolerance)
				got2, err := runBackend(reread, x)
				if err != nil {
					t.Fatal(err)
				}
				compare(t, &w, what+" (file read back)", got2, want, tolerance)
			}
		})
	}
	w.log(t, "ONNX Runtime")
}

func onnxShape(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}
