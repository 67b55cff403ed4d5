// Command bench times the toolkit's backend on an ONNX convolutional base: a forward
// pass (inference) or a training step (forward and backward through every trainable
// parameter, WeightedSum loss), and prints one result line per run.
//
//	go run ./tools/bench -model /tmp/vgg19-features.onnx -mode forward -size 224 -batch 1
//	go run ./tools/bench -model /tmp/vgg19-features.onnx -mode train -size 32 -batch 8
//	go run ./tools/bench -mode train -size 32 -batch 16 -classes 10 -adam   # + Linear head, Adam
//	go run ./tools/bench -kernels avx2 ...      # one of kernels.Implementations()
//	go run -tags openblas ./tools/bench ...     # OpenBLAS through cgo
//
// -classes N appends a Flatten + Linear(N) head (headbuilder) and trains with the
// softmax cross-entropy of random labels; -adam adds an Adam step over every trained
// parameter to each timed run (what one step of `toolkit finetune` does, without the
// data loader).
//
// -size replaces the input's height and width declared in the file (VGG19 exports fix
// them at 224), so one file serves every resolution. The program is built once and run
// -warmup times untimed, then -iters times timed. It reports the best and median wall
// time per run, the process CPU time per run (other jobs on a shared machine inflate
// wall time much more than CPU time), images per second of the best run, the bytes
// and GC cycles per run, the time to build the program (reading the file included) and
// of the first run, the process's peak resident memory (VmHWM) and the program's memory
// plan (backend.Program.Memory). -cpuprofile and -memprofile write pprof profiles of the timed
// runs. With -json the line is a JSON object (tools/bench/compare.sh reads it).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"toolkit/backend"
	"toolkit/backend/kernels"
	"toolkit/finetune/optim"
	"toolkit/headbuilder"
	"toolkit/onnx"
)

// Result is one benchmark's summary.
type Result struct {
	Label      string  `json:"label,omitempty"`
	Impl       string  `json:"impl"`
	Mode       string  `json:"mode"`
	Classes    int     `json:"classes,omitempty"`
	Adam       bool    `json:"adam,omitempty"`
	Size       int     `json:"size"`
	Batch      int     `json:"batch"`
	Iters      int     `json:"iters"`
	BLAS       string  `json:"blas"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	BestSec    float64 `json:"best_s"`
	MedianSec  float64 `json:"median_s"`
	CPUSec     float64 `json:"cpu_s_per_run"`
	// SpinSec is the part of CPUSec the kernels' goroutines spent polling for work
	// (kernels.SpinSeconds): counted busy by the system, though nothing was computed.
	SpinSec     float64 `json:"spin_s_per_run"`
	ImagesPerS  float64 `json:"images_per_s"`
	MedianImgPS float64 `json:"median_images_per_s"`
	AllocMB     float64 `json:"alloc_mb_per_run"`
	GCPerRun    float64 `json:"gc_per_run"`
	BuildSec    float64 `json:"build_s"`
	// FirstSec is the first (untimed) run's time: the arena is allocated and its pages
	// touched for the first time in it.
	FirstSec float64 `json:"first_s,omitempty"`
	// PeakRSSMB is the process's peak resident memory (VmHWM) after the runs; ArenaMB
	// and OwnMB the program's memory plan (backend.Memory), ParamMB the weights.
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
	ArenaMB   float64 `json:"arena_mb,omitempty"`
	OwnMB     float64 `json:"own_mb,omitempty"`
	ParamMB   float64 `json:"param_mb,omitempty"`
}

func main() {
	model := flag.String("model", "/tmp/vgg19-features.onnx", "ONNX model (single NCHW input)")
	mode := flag.String("mode", "forward", "forward or train")
	size := flag.Int("size", 224, "input height and width")
	batch := flag.Int("batch", 1, "batch size")
	iters := flag.Int("iters", 3, "timed runs")
	warmup := flag.Int("warmup", 1, "untimed runs first")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs")
	memprofile := flag.String("memprofile", "", "write an allocation profile after the timed runs")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	impl := flag.String("impl", "toolkit", "name of this build in the results (compare.sh names an older build toolkit-before)")
	kernelsName := flag.String("kernels", "", "GEMM implementation (default: the fastest this CPU runs): "+strings.Join(kernels.Implementations(), ", "))
	classes := flag.Int("classes", 0, "train mode: append a Flatten + Linear head with this many classes (cross-entropy loss)")
	adam := flag.Bool("adam", false, "train mode: an Adam step after each forward and backward pass")
	report := flag.String("report", "", "print a comparison table of the JSON lines in this file (from compare.sh) and exit")
	ops := flag.Bool("ops", false, "print where the timed runs' time went, by op type (forward and backward), with the cores busy in each")
	savedF32 := flag.Bool("saved-float32", false, "train mode with -kernels avx512bf16: keep the activations for the backward pass in float32 (as before Options.SavedBF16), to measure what the bfloat16 copies cost and save")
	normF32 := flag.Bool("norm-float32", false, "train mode with -kernels avx512bf16: keep the normalizations' inputs for the backward pass in float32 (as before Options.NormBF16)")
	steps := flag.Int("steps", 0, "print the timed runs' slowest steps (node or gradient), this many, with the cores busy in each")
	flag.Parse()
	if *report != "" {
		if err := printReport(*report); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *kernelsName != "" {
		if err := kernels.Use(*kernelsName); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	cfg := config{mode: *mode, size: *size, batch: *batch, iters: *iters, warmup: *warmup, classes: *classes, adam: *adam, ops: *ops || *steps > 0, steps: *steps, savedF32: *savedF32, normF32: *normF32}
	if err := run(*impl, *model, cfg, *cpuprofile, *memprofile, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is one workload.
type config struct {
	mode                       string
	size, batch, iters, warmup int
	classes                    int
	adam                       bool
	ops                        bool
	steps                      int
	savedF32, normF32          bool
}

func run(impl, path string, cfg config, cpuprofile, memprofile string, asJSON bool) error {
	mode, size, batch, iters, warmup := cfg.mode, cfg.size, cfg.batch, cfg.iters, cfg.warmup
	t0 := time.Now()
	ir, err := onnx.Read(path)
	if err != nil {
		return err
	}
	ins := ir.Graph.RealInputs()
	if len(ins) != 1 || len(ins[0].Shape) != 4 {
		return fmt.Errorf("%s: want one NCHW input", path)
	}
	// Free the spatial dimensions of the input and of every declared output, so that
	// shape inference works at any size.
	in := ins[0]
	in.Shape[2], in.Shape[3] = onnx.Dim{Param: "H"}, onnx.Dim{Param: "W"}
	for _, o := range ir.Graph.Outputs {
		for i := 2; i < len(o.Shape); i++ {
			o.Shape[i] = onnx.Dim{Param: fmt.Sprintf("d%d", i)}
		}
	}
	c := int(in.Shape[1].Value)
	if cfg.classes > 0 {
		if mode != "train" {
			return fmt.Errorf("-classes is for -mode train")
		}
		ir, err = headbuilder.Append(ir, headbuilder.Spec{Classes: cfg.classes, Seed: 1}, []int64{int64(batch), int64(c), int64(size), int64(size)})
		if err != nil {
			return err
		}
	}
	m, err := backend.AdoptModel(ir) // the weights held once, as toolkit finetune holds them
	if err != nil {
		return err
	}
	opts := backend.Options{InputShapes: map[string][]int{in.Name: {batch, c, size, size}}}
	switch mode {
	case "forward":
		// An inference, as predict's and evaluate's: the weights never change.
		opts.ConstantWeights = true
	case "train":
		opts.Training = true
		opts.Trainable = m.TrainableNames()
		// As finetune's precision bf16: the saved activations in bfloat16 too.
		opts.SavedBF16 = kernels.Current() == kernels.BF16 && !cfg.savedF32
		opts.NormBF16 = !cfg.normF32
		opts.Loss = backend.WeightedSum
		if cfg.classes > 0 {
			opts.Loss = backend.CrossEntropy
		}
	default:
		return fmt.Errorf("unknown mode %q (forward or train)", mode)
	}
	p, err := m.Program(opts)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*c*size*size)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	var target []float32
	switch opts.Loss {
	case backend.WeightedSum:
		target = make([]float32, outLen(p))
		for i := range target {
			target[i] = float32(rng.NormFloat64()) / float32(len(target))
		}
	case backend.CrossEntropy:
		target = make([]float32, batch*cfg.classes) // one-hot random labels
		for i := range batch {
			target[i*cfg.classes+rng.IntN(cfg.classes)] = 1
		}
	}
	step := func() error { return p.Run([][]float32{x}, target) }
	if cfg.adam {
		if mode != "train" {
			return fmt.Errorf("-adam is for -mode train")
		}
		opt, err := optim.New("adam", nil)
		if err != nil {
			return err
		}
		params := make([]optim.Param, len(opts.Trainable))
		step = func() error {
			if err := p.Run([][]float32{x}, target); err != nil {
				return err
			}
			for i, name := range opts.Trainable {
				params[i] = optim.Param{Name: name, Value: m.Param(name), Grad: p.Grad(name)}
			}
			return opt.Step(params, 1e-4)
		}
	}
	build := time.Since(t0)
	var first time.Duration
	for i := range warmup {
		s := time.Now()
		if err := step(); err != nil {
			return err
		}
		if i == 0 {
			first = time.Since(s)
		}
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	var byOp *opTimes
	if cfg.ops {
		byOp = newOpTimes(cfg.steps > 0)
		p.Trace(byOp.add)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, spin0 := cpuTime(), kernels.SpinSeconds()
	times := make([]float64, iters)
	for i := range iters {
		s := time.Now()
		if err := step(); err != nil {
			return err
		}
		times[i] = time.Since(s).Seconds()
	}
	cpu, spin := cpuTime()-cpu0, kernels.SpinSeconds()-spin0
	runtime.ReadMemStats(&ms1)
	if cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if byOp != nil {
		p.Trace(nil)
		defer byOp.print(os.Stderr, iters)
		if cfg.steps > 0 {
			defer byOp.printSteps(os.Stderr, iters, cfg.steps)
		}
	}
	if memprofile != "" {
		f, err := os.Create(memprofile)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
		f.Close()
	}
	slices.Sort(times)
	mem := p.Memory()
	r := Result{
		PeakRSSMB: peakRSS() / 1e6,
		ArenaMB:   float64(mem.Arena) / 1e6, OwnMB: float64(mem.Own) / 1e6, ParamMB: float64(m.NumParams()) * 4 / 1e6,
		Label: os.Getenv("BENCH_LABEL"),
		Impl:  impl, Mode: mode, Classes: cfg.classes, Adam: cfg.adam, Size: size, Batch: batch, Iters: iters,
		BLAS: kernels.CurrentBLAS().Name(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		BestSec: times[0], MedianSec: times[len(times)/2],
		CPUSec:   cpu.Seconds() / float64(iters),
		SpinSec:  spin / float64(iters),
		AllocMB:  float64(ms1.TotalAlloc-ms0.TotalAlloc) / 1e6 / float64(iters),
		GCPerRun: float64(ms1.NumGC-ms0.NumGC) / float64(iters),
		BuildSec: build.Seconds(), FirstSec: first.Seconds(),
		ImagesPerS: float64(batch) / times[0], MedianImgPS: float64(batch) / times[len(times)/2],
	}
	if asJSON {
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
		return nil
	}
	if cfg.classes > 0 {
		mode += fmt.Sprintf("+linear%d", cfg.classes)
	}
	if cfg.adam {
		mode += "+adam"
	}
	fmt.Printf("%s %-7s %dx3x%dx%d blas=%s procs=%d: best %.3fs median %.3fs cpu %.2fs/run (spin %.2fs)  %.2f img/s (median %.2f)  alloc %.0f MB/run  gc %.1f/run  (build %.2fs, first run %.2fs)  peak RSS %.0f MB (plan: arena %.0f MB, own %.0f MB; weights %.0f MB)\n",
		impl, mode, batch, size, size, r.BLAS, r.GOMAXPROCS, r.BestSec, r.MedianSec, r.CPUSec, r.SpinSec, r.ImagesPerS, r.MedianImgPS, r.AllocMB, r.GCPerRun, r.BuildSec,
		r.FirstSec, r.PeakRSSMB, r.ArenaMB, r.OwnMB, r.ParamMB)
	return nil
}

func outLen(p *backend.Program) int {
	n := 1
	for _, d := range p.OutputShape(0) {
		n *= d
	}
	return n
}

// peakRSS returns the process's peak resident set size in bytes (VmHWM), or 0 where
// /proc does not say.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f kB", &kb); err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
