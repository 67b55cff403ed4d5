package optim

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"toolkit/internal/testref"
)

// The Debian interpreter that has torch 1.13; the python3 first on PATH does not.
const torchPython = "/usr/bin/python3"

// referenceScript replays the steps of the input file with PyTorch. In every step the
// parameters named in "grads" get those gradients (the others have grad None: frozen), the
// trained ones are clipped together with clip_grad_norm_, lr and momentum/beta1 are set on
// the param group, and the optimizer steps. It records the norms, all parameters after each
// step, and Adam's per-parameter step counts.
const referenceScript = `
import json, sys
import torch
torch.set_num_threads(1)
inp = json.load(open(sys.argv[1]))
names = [p["name"] for p in inp["params"]]

def make(kind, plist):
    if kind == "sgd_nesterov":
        return torch.optim.SGD(plist, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    if kind == "sgd":
        return torch.optim.SGD(plist, lr=0.1, momentum=0.9, weight_decay=1e-4)
    if kind == "adam":
        return torch.optim.Adam(plist, lr=0.1, weight_decay=1e-4)
    if kind == "adamw":
        return torch.optim.AdamW(plist, lr=0.1, weight_decay=1e-2)
    raise ValueError(kind)

def run(kind):
    params = {p["name"]: torch.nn.Parameter(torch.tensor(p["value"], dtype=torch.float32)) for p in inp["params"]}
    opt = make(kind, [params[n] for n in names])
    steps = []
    for st in inp["steps"]:
        for n in names:
            g = st["grads"].get(n)
            params[n].grad = None if g is None else torch.tensor(g, dtype=torch.float32)
        trained = [params[n] for n in names if n in st["grads"]]
        norm = torch.nn.utils.clip_grad_norm_(trained, st["max_norm"])
        for group in opt.param_groups:
            group["lr"] = st["lr"]
            if "betas" in group:
                group["betas"] = (st["mom"], group["betas"][1])
            else:
                group["momentum"] = st["mom"]
        opt.step()
        counts = {}
        for n in names:
            s = opt.state.get(params[n], {})
            if "step" in s:
                counts[n] = int(s["step"].item())
        steps.append({"norm": float(norm), "params": {n: params[n].detach().tolist() for n in names},
                      "counts": counts})
    return steps

out = {k: run(k) for k in ["sgd_nesterov", "sgd", "adam", "adamw"]}
clip = []
for st in inp["steps"]:
    grads = [torch.tensor(g, dtype=torch.float32) for g in st["grads"].values()]
    ps = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g))
        p.grad = g
        ps.append(p)
    norm = torch.nn.utils.clip_grad_norm_(ps, st["max_norm"])
    clip.append({"norm": float(norm), "grads": dict(zip(st["grads"].keys(), [p.grad.tolist() for p in ps]))})
out["clip"] = clip
json.dump(out, open(sys.argv[2], "w"))
`

type refInput struct {
	Params []refParam `json:"params"`
	Steps  []refStep  `json:"steps"`
}

type refParam struct {
	Name  string    `json:"name"`
	Value []float64 `json:"value"` // float32 values, exact in float64
}

type refStep struct {
	LR      float64              `json:"lr"`
	Mom     float64              `json:"mom"`
	MaxNorm float64              `json:"max_norm"`
	Grads   map[string][]float64 `json:"grads"`
}

type refOutput map[string][]struct {
	Norm   float64              `json:"norm"`
	Params map[string][]float64 `json:"params"`
	Counts map[string]int64     `json:"counts"`
	Grads  map[string][]float64 `json:"grads"`
}

// The reference problem: five steps with changing gradients, learning rates, momenta and
// clipping thresholds; "late" is frozen for the first two steps and unfrozen at the third,
// "frozen" is never trained. Gradient scales are chosen so steps 0, 2 and 4 clip.
var (
	refNames   = []string{"early.weight", "early.bias", "late", "head.weight", "head.bias", "frozen"}
	refSizes   = []int{3001, 17, 1200, 640, 10, 50}
	refLR      = []float64{1e-3, 3e-3, 1e-2, 5e-3, 1e-3}
	refMom     = []float64{0.95, 0.9, 0.85, 0.9, 0.95}
	refScale   = []float64{1, 0.1, 3, 0.5, 2}
	refMaxNorm = []float64{30, 1000, 50, 1e6, 60}
)

func refTrained(step int, name string) bool {
	switch name {
	case "frozen":
		return false
	case "late":
		return step >= 2
	}
	return true
}

func makeReference() refInput {
	rng := rand.New(rand.NewPCG(1, 2))
	var in refInput
	for i, n := range refNames {
		v := make([]float64, refSizes[i])
		for j := range v {
			v[j] = float64(float32(rng.NormFloat64()))
		}
		in.Params = append(in.Params, refParam{Name: n, Value: v})
	}
	for k := range refLR {
		st := refStep{LR: refLR[k], Mom: refMom[k], MaxNorm: refMaxNorm[k], Grads: map[string][]float64{}}
		for i, n := range refNames {
			if !refTrained(k, n) {
				continue
			}
			g := make([]float64, refSizes[i])
			for j := range g {
				g[j] = float64(float32(rng.NormFloat64() * refScale[k]))
				if j%97 == 0 {
					g[j] = 0 // some exact zeros
				}
			}
			st.Grads[n] = g
		}
		in.Steps = append(in.Steps, st)
	}
	return in
}

var reference struct {
	once sync.Once
	in   refInput
	out  refOutput
	skip string
	err  error
}

// torchReference runs the reference script once per test binary.
func torchReference(t *testing.T) (refInput, refOutput) {
	t.Helper()
	reference.once.Do(func() {
		if _, err := os.Stat(torchPython); err != nil {
			reference.skip = "PyTorch reference skipped: " + torchPython + " not found"
			return
		}
		if out, err := exec.Command(torchPython, "-c", "import torch").CombinedOutput(); err != nil {
			reference.skip = "PyTorch reference skipped: " + torchPython +
				" cannot import torch (install Debian's python3-torch): " + err.Error() + "\n" + string(out)
			return
		}
		dir, err := os.MkdirTemp("", "optim-torch-")
		if err != nil {
			reference.err = err
			return
		}
		defer os.RemoveAll(dir)
		reference.in = makeReference()
		raw, _ := json.Marshal(reference.in)
		inFile, outFile := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
		script := filepath.Join(dir, "reference.py")
		if err := os.WriteFile(inFile, raw, 0o644); err != nil {
			reference.err = err
			return
		}
		if err := os.WriteFile(script, []byte(referenceScript), 0o644); err != nil {
			reference.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, torchPython, script, inFile, outFile).CombinedOutput(); err != nil {
			reference.err = err
			reference.skip = string(out) // shown with the error
			return
		}
		raw, err = os.ReadFile(outFile)
		if err != nil {
			reference.err = err
			return
		}
		reference.err = json.Unmarshal(raw, &reference.out)
	})
	if reference.err != nil {
		t.Fatalf("running PyTorch: %v\n%s", reference.err, reference.skip)
	}
	if reference.skip != "" {
		testref.Missing(t, "%s", reference.skip)
	}
	return reference.in, reference.out
}

func toF32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// compareTensor checks got against PyTorch's want to 1e-6 relative. The scale of an
// element is the larger of its magnitude now and the largest magnitude it had before
// (peak): where an update cancels most of a parameter, the result comes out near zero and
// both implementations are off from the exact value by about one float32 ulp of the
// operands (PyTorch fuses some multiply-adds, Go on amd64 does not); that absolute error
// stays with the element and is far more than 1e-6 of its tiny value. It returns the
// largest plain relative deviation |got-want|/|want| and how many elements needed the
// peak to pass.
func compareTensor(t *testing.T, what string, got []float32, peak []float64, want []float64) (maxRel float64, cancelled int) {
	t.Helper()
	if len(got) != len(want) || len(peak) != len(want) {
		t.Fatalf("%s: %d values (%d peaks), PyTorch %d", what, len(got), len(peak), len(want))
	}
	bad := 0
	for i, w := range want {
		g := float64(got[i])
		d := math.Abs(g - w)
		if d == 0 {
			continue
		}
		rel := d / math.Abs(w)
		maxRel = math.Max(maxRel, rel)
		if rel <= 1e-6 {
			continue
		}
		if d <= 1e-6*math.Max(math.Abs(w), peak[i]) {
			cancelled++
			continue
		}
		if bad < 5 {
			t.Errorf("%s[%d] = %.9g, PyTorch %.9g (peak magnitude %.9g; rel %.3g)", what, i, g, w, peak[i], rel)
		}
		bad++
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values off", what, bad, len(want))
	}
	return maxRel, cancelled
}

// smallChunks makes the reference problem (a few thousand values) go through the parallel
// path with many spans, as VGG-sized tensors do.
func smallChunks(t *testing.T) {
	c, s := chunk, serialBelow
	chunk, serialBelow = 256, 0
	t.Cleanup(func() { chunk, serialBelow = c, s })
}

func replay(t *testing.T, kind string, opt Optimizer) {
	in, out := torchReference(t)
	smallChunks(t)
	ref := out[kind]
	if len(ref) != len(in.Steps) {
		t.Fatalf("%s: PyTorch gave %d steps, want %d", kind, len(ref), len(in.Steps))
	}
	values := map[string][]float32{}
	for _, p := range in.Params {
		values[p.Name] = toF32(p.Value)
	}
	frozenBefore := append([]float32(nil), values["frozen"]...)
	rng := rand.New(rand.NewPCG(3, 4))
	var worst float64
	var cancelled, total int
	peak := map[string][]float64{} // largest magnitude of each element so far
	for k, st := range in.Steps {
		var params []Param
		for _, n := range refNames {
			if g, ok := st.Grads[n]; ok {
				params = append(params, Param{Name: n, Value: values[n], Grad: toF32(g)})
			}
		}
		// The order of the slice must not matter: state is keyed by name.
		rng.Shuffle(len(params), func(i, j int) { params[i], params[j] = params[j], params[i] })
		norm := ClipGradNorm(params, st.MaxNorm)
		if math.Abs(norm-ref[k].Norm) > 1e-6*ref[k].Norm {
			t.Errorf("step %d: norm %.9g, PyTorch %.9g", k, norm, ref[k].Norm)
		}
		for n, v := range values {
			if peak[n] == nil {
				peak[n] = make([]float64, len(v))
			}
			for i, x := range v {
				peak[n][i] = math.Max(peak[n][i], math.Abs(float64(x)))
			}
		}
		if err := opt.SetMomentum(st.Mom); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(params, st.LR); err != nil {
			t.Fatalf("step %d: %v", k, err)
		}
		for _, n := range refNames {
			rel, c := compareTensor(t, fmt.Sprintf("%s step %d %s", kind, k, n), values[n], peak[n], ref[k].Params[n])
			worst = math.Max(worst, rel)
			cancelled += c
			total += len(values[n])
		}
		state := opt.State()
		for _, n := range refNames {
			ps, has := state.Params[n]
			if !refTrained(k, n) && n != "late" || n == "late" && k < 2 {
				if has {
					t.Errorf("step %d: frozen %q has optimizer state", k, n)
				}
				continue
			}
			if want, ok := ref[k].Counts[n]; ok && ps.Step != want {
				t.Errorf("step %d: %q step count %d, PyTorch %d", k, n, ps.Step, want)
			}
		}
	}
	for i, v := range values["frozen"] {
		if math.Float32bits(v) != math.Float32bits(frozenBefore[i]) {
			t.Fatalf("frozen parameter changed at %d", i)
		}
	}
	if c := opt.State().Params["late"].Step; c != 3 {
		t.Errorf("late step count %d, want 3 (unfrozen at the third of five steps)", c)
	}
	t.Logf("%s: largest relative deviation from PyTorch over 5 steps: %.3g; %d of %d values beyond 1e-6 of the result but within 1e-6 of their peak magnitude",
		kind, worst, cancelled, total)
}

func TestSGDNesterovMatchesPyTorch(t *testing.T) {
	o, err := NewSGD(SGDConfig{Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	replay(t, "sgd_nesterov", o)
}

func TestSGDMatchesPyTorch(t *testing.T) {
	o, err := NewSGD(SGDConfig{Momentum: 0.9, WeightDecay: 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	replay(t, "sgd", o)
}

func TestAdamMatchesPyTorch(t *testing.T) {
	c := DefaultAdam()
	c.WeightDecay = 1e-4
	o, err := NewAdam(c)
	if err != nil {
		t.Fatal(err)
	}
	replay(t, "adam", o)
}

func TestAdamWMatchesPyTorch(t *testing.T) {
	o, err := NewAdamW(DefaultAdamW())
	if err != nil {
		t.Fatal(err)
	}
	replay(t, "adamw", o)
}

func TestClipGradNormMatchesPyTorch(t *testing.T) {
	in, out := torchReference(t)
	smallChunks(t)
	for k, st := range in.Steps {
		ref := out["clip"][k]
		var params []Param
		grads := map[string][]float32{}
		for n, g := range st.Grads {
			grads[n] = toF32(g)
			params = append(params, Param{Name: n, Value: make([]float32, len(g)), Grad: grads[n]})
		}
		norm := ClipGradNorm(params, st.MaxNorm)
		if math.Abs(norm-ref.Norm) > 1e-6*ref.Norm {
			t.Errorf("step %d: norm %.9g, PyTorch %.9g", k, norm, ref.Norm)
		}
		var worst float64
		for n, g := range grads {
			rel, c := compareTensor(t, "clipped "+n, g, make([]float64, len(g)), ref.Grads[n])
			if c > 0 {
				t.Errorf("clipped %s: %d values beyond 1e-6", n, c)
			}
			worst = math.Max(worst, rel)
		}
		t.Logf("step %d: norm %.6g max_norm %g, largest relative deviation %.3g", k, norm, st.MaxNorm, worst)
	}
}

// TestDefaultsArePyTorchs checks the option table's defaults against those of
// torch.optim's SGD, Adam and AdamW, but for SGD's momentum, which is fastai's 0.9
// (PyTorch's is 0).
func TestDefaultsArePyTorchs(t *testing.T) {
	if _, err := os.Stat(torchPython); err != nil {
		testref.Missing(t, "PyTorch reference skipped: %s not found", torchPython)
		return
	}
	const script = `
import json, torch
p = [torch.nn.Parameter(torch.zeros(1))]
out = {}
for name, o in [("sgd", torch.optim.SGD(p, lr=0.1)), ("adam", torch.optim.Adam(p)), ("adamw", torch.optim.AdamW(p))]:
    d = o.defaults
    opts = {"weight_decay": d["weight_decay"]}
    if "betas" in d:
        opts.update(beta1=d["betas"][0], beta2=d["betas"][1], eps=d["eps"])
    else:
        opts.update(momentum=d["momentum"], nesterov=float(d["nesterov"]))
    out[name] = opts
print(json.dumps(out))
`
	raw, err := exec.Command(torchPython, "-c", script).Output()
	if err != nil {
		testref.Missing(t, "PyTorch reference skipped: %s cannot run torch (install Debian's python3-torch): %v", torchPython, err)
		return
	}
	var torch map[string]map[string]float64
	if err := json.Unmarshal(raw, &torch); err != nil {
		t.Fatal(err)
	}
	if torch["sgd"]["momentum"] != 0 {
		t.Fatalf("PyTorch's SGD momentum default is %v, not 0", torch["sgd"]["momentum"])
	}
	torch["sgd"]["momentum"] = 0.9 // fastai's
	for _, name := range Names() {
		got := Defaults(name)
		if len(got) != len(torch[name]) {
			t.Errorf("%s: options %v, PyTorch's %v", name, got, torch[name])
		}
		for k, v := range torch[name] {
			if got[k] != v {
				t.Errorf("%s: %s defaults to %v, PyTorch's to %v", name, k, got[k], v)
			}
		}
		// New without options builds the optimizer with these defaults.
		o, err := New(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := o.State().Hyper
		if h.WeightDecay != got["weight_decay"] {
			t.Errorf("New(%q, nil): weight decay %v, want %v", name, h.WeightDecay, got["weight_decay"])
		}
	}
	for _, o := range Options {
		if len(Takers(o.Key)) == 0 {
			t.Errorf("option %s: no optimizer takes it", o.Key)
		}
	}
}
