package finetune

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"toolkit/evaluate"
	"toolkit/finetune/schedule"
	"toolkit/npy"
	"toolkit/onnx"
)

// bnBaseScript writes a small convolutional base with BatchNormalization (seeded
// PyTorch, exported in eval mode with TrainingMode.PRESERVE, so that the layers stay
// BatchNormalization nodes whose initializers are the state_dict's names) for 16x16 RGB
// input.
const bnBaseScript = `
import json, sys, torch
torch.manual_seed(5)
m = torch.nn.Sequential(
    torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
with torch.no_grad():
    for mod in m:
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 2)
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
m.eval()
torch.onnx.export(m, torch.randn(1, 3, 16, 16), json.load(open(sys.argv[1])), opset_version=13, do_constant_folding=False,
    training=torch.onnx.TrainingMode.PRESERVE,
    input_names=["input"], output_names=["features"], dynamic_axes={"input": {0: "N"}, "features": {0: "N"}})
json.dump({}, open(sys.argv[2], "w"))
`

// bnBase writes bnBaseScript's base and returns its path.
func bnBase(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bnbase.onnx")
	var none struct{}
	runRef(t, bnBaseScript, path, &none, "python3-torch")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// emaRefScript averages each case's sequence of weight snapshots with PyTorch's
// swa_utils.AveragedModel: with ema, an exponential moving average over parameters and
// buffers (use_buffers=True) begun from the first snapshot (timm's ModelEmaV2: a copy
// of the model, then decay x average + (1 - decay) x weights after each step); without,
// the plain average (AveragedModel's default).
const emaRefScript = `
import json, sys, numpy as np, torch
from torch.optim.swa_utils import AveragedModel
c = json.load(open(sys.argv[1]))
shapes = c["sizes"]
snaps = [np.load(f) for f in c["files"]]
class Values(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(n)) for n in shapes])
    def load(self, flat):
        off = 0
        with torch.no_grad():
            for p, n in zip(self.p, shapes):
                p.copy_(torch.from_numpy(flat[off:off + n])); off += n
m = Values()
if c["decay"] > 0:
    d = c["decay"]
    avg = AveragedModel(m, avg_fn=lambda a, p, n: a * d + (1. - d) * p, use_buffers=True)
else:
    avg = AveragedModel(m)
for s in snaps:
    m.load(s)
    avg.update_parameters(m)
out = torch.cat([p.detach().reshape(-1) for p in avg.module.p]).numpy()
np.save(sys.argv[2], out)
`

// TestEMA trains the BatchNorm base's head and then every group with ema (decay 0.9):
// the average kept is PyTorch's AveragedModel with an exponential average over
// parameters and buffers, fed the weights after every optimizer step from the weights
// at the start; model.onnx carries it; and each epoch's validation loss is that of the
// averaged model on the validation folder (package evaluate on model.onnx).
func TestEMA(t *testing.T) {
	cfg := testConfig(t)
	cfg.Model.ONNX = bnBase(t)
	cfg.Groups = GroupsConfig{}
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 1, 1
	cfg.Stages[1].LR = schedule.Rates{Rate: 1e-2}
	cfg.EMA.Decay = 0.9
	var names []string
	var snaps []map[string][]float32
	rec := Hook{Name: "record",
		Start: func(tr *Trainer) error {
			names = tr.model.ParamNames()
			snaps = append(snaps, weightsOf(tr))
			return nil
		},
		AfterUpdate: func(tr *Trainer, u *Update) error {
			snaps = append(snaps, weightsOf(tr))
			return nil
		},
	}
	tr, err := New(cfg, WithHooks(rec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := averageRefNPY(t, names, snaps, cfg.EMA.Decay)
	m, err := onnx.Read(filepath.Join(cfg.Output.Dir, RunModel))
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for _, n := range names {
		got, exported := tr.sets[setEMA][n], m.Graph.Initializer(n).Floats
		if d := relDiff(got, want[n]); d > 1e-6 {
			t.Errorf("%s: the EMA differs from PyTorch's by %.3g relative", n, d)
		}
		if !slices.Equal(exported, got) {
			t.Errorf("%s: model.onnx does not hold the EMA", n)
		}
		if !slices.Equal(got, tr.model.Param(n)) {
			changed++
		}
	}
	if changed < len(names)/2 {
		t.Errorf("only %d of %d values differ from the weights: the check is weak", changed, len(names))
	}
	c, err := evaluate.Load(filepath.Join(cfg.Output.Dir, RunModel))
	if err != nil {
		t.Fatal(err)
	}
	r, err := evaluate.EvaluateFolder(context.Background(), c, cfg.Data.Val, evaluate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := tr.History()
	if last := h[len(h)-1]; math.Abs(r.Loss-*last.ValLoss) > 1e-5 || r.Accuracy != *last.ValAcc {
		t.Errorf("the last epoch's validation: loss %v accuracy %v; model.onnx: %v %v", *last.ValLoss, *last.ValAcc, r.Loss, r.Accuracy)
	}
}

// averageRefNPY is averageRef through files: the snapshots and the result as .npy.
func averageRefNPY(t *testing.T, names []string, snaps []map[string][]float32, decay float64) map[string][]float32 {
	t.Helper()
	dir := t.TempDir()
	in := struct {
		Sizes []int    `json:"sizes"`
		Files []string `json:"files"`
		Decay float64  `json:"decay"`
		Out   string   `json:"out"`
	}{Decay: decay, Out: filepath.Join(dir, "avg.npy")}
	for _, n := range names {
		in.Sizes = append(in.Sizes, len(snaps[0][n]))
	}
	for i, s := range snaps {
		var flat []float32
		for _, n := range names {
			flat = append(flat, s[n]...)
		}
		f := filepath.Join(dir, "snap"+strconv.Itoa(i)+".npy")
		if err := npy.WriteFile(f, &npy.Array{Shape: []int{len(flat)}, Data: flat}); err != nil {
			t.Fatal(err)
		}
		in.Files = append(in.Files, f)
	}
	var none struct{}
	runRef(t, emaRefNPYScript, in, &none, "python3-torch")
	a, err := npy.ReadFile(in.Out)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	off := 0
	for i, n := range names {
		out[n] = a.Data[off : off+in.Sizes[i]]
		off += in.Sizes[i]
	}
	return out
}

// emaRefNPYScript is emaRefScript writing the average to the case's "out" and an empty
// JSON object to its second argument.
var emaRefNPYScript = emaRefScript[:len(emaRefScript)-len("np.save(sys.argv[2], out)\n")] +
	"np.save(c[\"out\"], out)\njson.dump({}, open(sys.argv[2], \"w\"))\n"

// updateBNScript runs PyTorch's swa_utils.update_bn over the given batches on
// bnBaseScript's base with the given weights (the averaged ones), and writes every
// BatchNorm layer's running mean and variance.
const updateBNScript = `
import json, sys, numpy as np, torch
from torch.optim.swa_utils import update_bn
c = json.load(open(sys.argv[1]))
m = torch.nn.Sequential(
    torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
sd = m.state_dict()
for k, v in c["weights"].items():
    if k in sd and not k.endswith("num_batches_tracked"):
        sd[k] = torch.tensor(v, dtype=torch.float32).reshape(sd[k].shape)
m.load_state_dict(sd)
batches = [torch.from_numpy(np.load(f)) for f in c["batches"]]
update_bn(batches, m)
out = {}
for k, v in m.state_dict().items():
    if "running" in k:
        out[k] = v.reshape(-1).tolist()
json.dump(out, open(sys.argv[2], "w"))
`

// TestSWA trains every group of the BatchNorm base for four epochs with swa: 3: the
// stage ends with the plain average (PyTorch's AveragedModel) of the weights at the end
// of its last three epochs, and with the running statistics PyTorch's update_bn
// computes for those weights over the training batches of the last epoch; a notice says
// so with the average's validation figures.
func TestSWA(t *testing.T) {
	cfg := testConfig(t)
	cfg.Model.ONNX = bnBase(t)
	cfg.Groups = GroupsConfig{}
	cfg.Data.Augment = AugmentConfig{}
	cfg.Stages = []StageConfig{{Name: "all", Epochs: 4, Train: TrainAll(), LR: schedule.Rates{Rate: 1e-2}, SWA: 3}}
	var names []string
	var snaps []map[string][]float32
	rec := Hook{Name: "record", Epoch: func(tr *Trainer, m *EpochMetrics) error {
		names = tr.model.ParamNames()
		if m.StageEpoch > 1 {
			snaps = append(snaps, weightsOf(tr))
		}
		return nil
	}}
	tr, err := New(cfg, WithoutDefaultHooks(), WithHooks(rec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := averageRefNPY(t, names, snaps, 0)
	final := weightsOf(tr)
	var stats []string
	for _, g := range tr.groups {
		stats = append(stats, tr.runningStats(g)...)
	}
	if len(stats) != 4 {
		t.Fatalf("running statistics %v, want two layers'", stats)
	}
	for _, n := range names {
		if contains(stats, n) {
			continue
		}
		if d := relDiff(final[n], want[n]); d > 1e-6 {
			t.Errorf("%s: the average differs from PyTorch's by %.3g relative", n, d)
		}
	}
	// update_bn over the last epoch's training batches.
	dir := t.TempDir()
	var in struct {
		Weights map[string][]float32 `json:"weights"`
		Batches []string             `json:"batches"`
	}
	in.Weights = final
	size := tr.data.Preprocess.Size()
	for b, err := range tr.trainLoader.Epoch(context.Background(), tr.progress.Epoch-1) {
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "batch"+strconv.Itoa(b.Index)+".npy")
		if err := npy.WriteFile(f, &npy.Array{Shape: []int{b.N, 3, 16, 16}, Data: slices.Clone(b.Images[:b.N*size])}); err != nil {
			t.Fatal(err)
		}
		in.Batches = append(in.Batches, f)
	}
	var ref map[string][]float64
	runRef(t, updateBNScript, in, &ref, "python3-torch")
	for _, n := range stats {
		r := ref[n]
		if r == nil {
			t.Fatalf("PyTorch has no %s (it has %v)", n, ref)
		}
		for i, v := range final[n] {
			if math.Abs(float64(v)-r[i]) > 1e-4*max(1, math.Abs(r[i])) {
				t.Errorf("%s[%d]: %v, update_bn %v", n, i, v, r[i])
				break
			}
		}
	}
	var found bool
	for _, n := range noticesOf(tr, "swa") {
		found = found || n.Notice == "swa"
	}
	if !found {
		t.Errorf("no swa notice in %+v", noticesOf(tr, "swa"))
	}
}

// TestAveragingResume interrupts runs with ema and with swa and resumes them: they end
// as uninterrupted runs, their averages too.
func TestAveragingResume(t *testing.T) {
	t.Run("ema", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.EMA.Decay = 0.9
		cfg.Output.CheckpointEvery = 0
		checkResume(t, cfg, 11, 13)
	})
	t.Run("swa", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Stages[1].Epochs, cfg.Stages[1].SWA = 3, 2
		cfg.Output.CheckpointEvery = 0
		// 8 batches an epoch: within the first averaged epoch, then ended at the end of
		// the stage's last epoch (epoch 5), before the average is put in.
		checkResume(t, cfg, 28, crashAfterEpoch(5))
	})
}
