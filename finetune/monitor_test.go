package finetune

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"toolkit/finetune/schedule"
)

// TestOutputBestForms reads output.best as a metric's name and as {metric, mode}, writes
// it back in the same form, and reports its mistakes at their lines.
func TestOutputBestForms(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want MonitorConfig
	}{
		{"output: {best: val_acc}\n", MonitorConfig{"val_acc", "max"}},
		{"output: {best: val_macro_f1}\n", MonitorConfig{"val_macro_f1", "max"}},
		{"output:\n  best: {metric: val_loss}\n", MonitorConfig{"val_loss", "min"}},
		{"output:\n  best: {metric: val_acc, mode: min}\n", MonitorConfig{"val_acc", "min"}},
		{"head: {task: multilabel}\ndata: {format: csv}\noutput: {best: val_map}\n", MonitorConfig{"val_map", "max"}},
	} {
		cfg, err := ParseConfig([]byte(c.yaml), "x.yaml")
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if cfg.Output.Best != c.want {
			t.Errorf("%q: %+v, want %+v", c.yaml, cfg.Output.Best, c.want)
		}
		raw, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(raw, "back.yaml")
		if err != nil || !reflect.DeepEqual(*back, *cfg) {
			t.Errorf("%q written as\n%s\nreads %+v, %v", c.yaml, raw, back.Output.Best, err)
		}
	}
	for _, c := range []struct{ yaml, want string }{
		{"output:\n  best: val_f1\n", `x.yaml:2: output.best: unknown "val_f1"; valid: val_loss, val_acc, val_macro_f1, val_map, or {metric, mode}`},
		{"output:\n  best: {metric: val_acc, mode: up}\n", `x.yaml:2: output.best.mode: unknown "up"; valid: min, max`},
		{"output:\n  best: {mode: max}\n", `x.yaml:2: output.best: metric: missing`},
		{"output:\n  best: val_map\n", `x.yaml:2: output.best: val_map is a multi-label task's`},
		{"output:\n  best: [val_loss]\n", `x.yaml:2: output.best: a list; want a metric`},
	} {
		_, err := ParseConfig([]byte(c.yaml), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant an error containing %q", c.yaml, err, c.want)
		}
	}
}

// plateauReplay feeds the recorded validation losses of a run to PyTorch's
// ReduceLROnPlateau (one param group per rate) and returns each epoch's rates.
const plateauReplay = `
import json, sys, torch
c = json.load(open(sys.argv[1]))
groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": r} for r in c["rates"]]
opt = torch.optim.SGD(groups, lr=1.0)
s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=c["factor"], patience=c["patience"])
out = []
for m in c["metrics"]:
    out.append([g["lr"] for g in opt.param_groups])
    s.step(m)
json.dump(out, open(sys.argv[2], "w"))
`

// TestPlateauSchedule trains a stage with schedule: plateau: the rates of every group,
// epoch by epoch, are those PyTorch's ReduceLROnPlateau gives for the run's validation
// losses, and each reduction is a notice.
func TestPlateauSchedule(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = []StageConfig{{Name: "all", Epochs: 6, Train: TrainAll(), LR: schedule.Rates{Max: 3e-2, Factor: 2.6},
		Schedule: schedule.Spec{Name: "plateau", Options: map[string]float64{"patience": 0, "factor": 0.5}}}}
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := tr.History()
	var in struct {
		Rates    []float64 `json:"rates"`
		Metrics  []float64 `json:"metrics"`
		Factor   float64   `json:"factor"`
		Patience int       `json:"patience"`
	}
	in.Factor = 0.5
	for _, g := range tr.groups {
		in.Rates = append(in.Rates, h[0].LR[g.Name])
	}
	for _, m := range h {
		in.Metrics = append(in.Metrics, *m.ValLoss)
	}
	var ref [][]float64
	runRef(t, plateauReplay, in, &ref, "python3-torch")
	reductions := 0
	for e, m := range h {
		for gi, g := range tr.groups {
			if got, want := m.LR[g.Name], ref[e][gi]; math.Abs(got-want) > 1e-12*want {
				t.Errorf("epoch %d, group %s: rate %v, PyTorch %v (validation losses %v)", e+1, g.Name, got, want, in.Metrics)
			}
		}
		if e > 0 && ref[e][0] < ref[e-1][0] {
			reductions++
		}
	}
	if reductions == 0 {
		t.Errorf("no reduction in %d epochs (validation losses %v): the check is weak", len(h), in.Metrics)
	}
	n := 0
	for _, x := range noticesOf(tr, "plateau") {
		if x.Notice == "plateau" {
			n++
		}
	}
	if n != reductions {
		t.Errorf("%d plateau notices for %d reductions", n, reductions)
	}
	t.Logf("validation losses %v; rates of the head %v", in.Metrics, func() (r []float64) {
		for _, e := range ref {
			r = append(r, e[len(e)-1])
		}
		return r
	}())
	cfg.Data.Val = ""
	if _, err := New(cfg, WithoutDefaultHooks()); err == nil || !strings.Contains(err.Error(), "schedule: plateau watches the validation metric") {
		t.Errorf("plateau without validation data: %v", err)
	}
}

// TestEarlyStoppingRestoreBest stops a stage on the validation macro-F1 (patience 1):
// the stage ends at its first epoch without improvement, and with restore_best the
// next stage starts from the weights of the stage's best epoch.
func TestEarlyStoppingRestoreBest(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = []StageConfig{
		{Name: "head", Epochs: 8, Train: Train("head"), LR: schedule.Rates{Rate: 3e-2}},
		{Name: "next", Epochs: 1, Train: Train("head"), LR: schedule.Rates{Rate: 1e-3}},
	}
	cfg.Output.Best = Monitor("val_macro_f1")
	cfg.EarlyStopping = EarlyStoppingConfig{Patience: 1, RestoreBest: true}
	weights := map[int]map[string][]float32{}
	var atNext map[string][]float32
	keep := Hook{Name: "keep",
		Epoch: func(tr *Trainer, m *EpochMetrics) error {
			weights[m.Epoch] = weightsOf(tr)
			return nil
		},
		EpochStart: func(tr *Trainer, info StepInfo) error {
			if info.Stage == "next" && atNext == nil {
				atNext = weightsOf(tr)
			}
			return nil
		},
	}
	tr, err := New(cfg, WithoutDefaultHooks(), WithHooks(keep))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := tr.History()
	var f1 []float64
	best, stopped := 0, 0
	for i, m := range h {
		if m.Stage != "head" {
			break
		}
		f1 = append(f1, *m.ValMacroF1)
		stopped = i
		if *m.ValMacroF1 > *h[best].ValMacroF1+minDelta {
			best = i
		}
	}
	if stopped == 7 || stopped != best+1 {
		t.Fatalf("validation macro-F1 by epoch %v: the stage ran %d epochs; want it stopped one epoch after its best (%d)", f1, stopped+1, best+1)
	}
	for name, w := range weights[h[best].Epoch] {
		if !slices.Equal(atNext[name], w) {
			t.Errorf("%s at the start of the next stage differs from the best epoch's (%d)", name, best+1)
		}
	}
	if slices.Equal(atNext[tr.groups[len(tr.groups)-1].Params[0]], weights[h[stopped].Epoch][tr.groups[len(tr.groups)-1].Params[0]]) {
		t.Errorf("the head's weights were not changed by the restore: the check is weak")
	}
	t.Logf("macro-F1 %v: stopped after epoch %d, restored epoch %d", f1, stopped+1, best+1)
}

// errCrash ends a run as a crash would: no interruption, the last checkpoint left.
var errCrash = errors.New("crashed on purpose")

// crashAfterEpoch returns a stop for checkResume: the run ends with errCrash at the end
// of the given epoch, after the run folder's hooks wrote its checkpoint.
func crashAfterEpoch(epoch int) int { return -epoch }

// checkResume runs cfg straight through and again interrupted after each of stops
// steps (or, for a stop made by crashAfterEpoch, ended at that epoch's end), resuming in
// between, and checks that both end with the same weights, weight sets and history.
func checkResume(t *testing.T, cfg Config, stops ...int) {
	t.Helper()
	straight, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.Output.Dir += "-interrupted"
	for i, stop := range stops {
		var tr *Trainer
		if i == 0 {
			tr, err = New(cfg)
		} else {
			tr, err = Resume(cfg.Output.Dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		want := ErrInterrupted
		if stop > 0 {
			tr.hooks = append(tr.hooks, (&cancelAfter{steps: stop, cancel: cancel}).hook())
		} else {
			want = errCrash
			tr.hooks = append(tr.hooks, Hook{Name: "crash", Epoch: func(tr *Trainer, m *EpochMetrics) error {
				if m.Epoch == -stop {
					return errCrash
				}
				return nil
			}})
		}
		_, err = tr.Run(ctx)
		cancel()
		if !errors.Is(err, want) {
			t.Fatalf("interrupted run: %v, want %v", err, want)
		}
	}
	resumed, err := Resume(cfg.Output.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, got := weightsOf(straight), weightsOf(resumed)
	for name, w := range want {
		if !slices.Equal(w, got[name]) {
			t.Errorf("parameter %s differs between the uninterrupted and the resumed run", name)
		}
	}
	if !reflect.DeepEqual(slices.Sorted(maps.Keys(straight.sets)), slices.Sorted(maps.Keys(resumed.sets))) {
		t.Errorf("weight sets %v, resumed %v", slices.Sorted(maps.Keys(straight.sets)), slices.Sorted(maps.Keys(resumed.sets)))
	}
	for name, set := range straight.sets {
		for p, v := range set {
			if !slices.Equal(v, resumed.sets[name][p]) {
				t.Errorf("weight set %s, %s differs between the uninterrupted and the resumed run", name, p)
			}
		}
	}
	hs, hr := straight.History(), resumed.History()
	if len(hs) != len(hr) {
		t.Fatalf("history of %d epochs, resumed %d", len(hs), len(hr))
	}
	for i := range hs {
		if hs[i].TrainLoss != hr[i].TrainLoss || *hs[i].ValLoss != *hr[i].ValLoss || fmt.Sprint(hs[i].LR) != fmt.Sprint(hr[i].LR) {
			t.Errorf("epoch %d: train loss %v, val loss %v, rates %v; resumed %v, %v, %v", i+1,
				hs[i].TrainLoss, *hs[i].ValLoss, hs[i].LR, hr[i].TrainLoss, *hr[i].ValLoss, hr[i].LR)
		}
	}
}

// TestMonitorResume interrupts runs with schedule: plateau and with early stopping's
// restore_best (once in an epoch, once at the end of the epoch that stops the stage,
// before its restore) and resumes them: they end as uninterrupted runs.
func TestMonitorResume(t *testing.T) {
	t.Run("plateau", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Stages = []StageConfig{{Name: "all", Epochs: 5, Train: TrainAll(), LR: schedule.Rates{Max: 3e-2, Factor: 2.6},
			Schedule: schedule.Spec{Name: "plateau", Options: map[string]float64{"patience": 0, "factor": 0.5}}}}
		cfg.Output.CheckpointEvery = 0
		checkResume(t, cfg, 20, 7)
	})
	t.Run("restore_best", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Stages = []StageConfig{
			{Name: "head", Epochs: 8, Train: Train("head"), LR: schedule.Rates{Rate: 3e-2}},
			{Name: "next", Epochs: 2, Train: TrainAll(), LR: schedule.Rates{Rate: 1e-3}},
		}
		cfg.Output.Best = Monitor("val_macro_f1")
		cfg.EarlyStopping = EarlyStoppingConfig{Patience: 1, RestoreBest: true}
		cfg.Output.CheckpointEvery = 0
		// The head stage stops after its third epoch (TestEarlyStoppingRestoreBest's
		// run): ended there, after the checkpoint and before the restore, then
		// interrupted within the next stage.
		checkResume(t, cfg, crashAfterEpoch(3), 3)
	})
}
