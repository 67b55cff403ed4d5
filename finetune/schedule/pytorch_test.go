package schedule

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"toolkit/internal/testref"
)

// The Debian interpreter that has torch 1.13; the python3 first on PATH does not.
const torchPython = "/usr/bin/python3"

// schedulesScript records, for each total T, the learning rate and beta1 that PyTorch's
// schedulers give the optimizer for each of its T steps. PyTorch's scheduler sets the rate
// of step 0 in its constructor and the rate of step k after k calls of sched.step(): the
// value read before the k-th opt.step() is the one our Factor(k, T) must match.
const schedulesScript = `
import json, sys, warnings
warnings.simplefilter("ignore")
import torch
base = 1e-3
out = {"onecycle": {}, "cosine": {}, "linear": {}}
for T in [100, 37, 8, 5]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=base)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=base, total_steps=T, anneal_strategy='cos',
        three_phase=False, div_factor=25.0, final_div_factor=1e4, pct_start=0.25)
    lrs, moms = [], []
    for k in range(T):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["betas"][0])
        p.grad = torch.ones(1)
        opt.step()
        sched.step()
    out["onecycle"][str(T)] = {"lr": lrs, "mom": moms}
for T in [11, 40]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T - 1, eta_min=0.1 * base)
    lrs = []
    for k in range(T):
        sched.last_epoch = k
        lrs.append(sched._get_closed_form_lr()[0])
    out["cosine"][str(T)] = lrs
T, W = 30, 8
p = torch.nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([p], lr=base)
sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=W)
lrs = []
for k in range(T):
    sched.last_epoch = k
    lrs.append(sched._get_closed_form_lr()[0])
out["linear"][str(T)] = lrs
json.dump(out, open(sys.argv[1], "w"))
`

type torchSchedules struct {
	OneCycle map[string]struct{ LR, Mom []float64 } `json:"onecycle"`
	Cosine   map[string][]float64                   `json:"cosine"`
	Linear   map[string][]float64                   `json:"linear"`
}

// haveTorch skips the test when the reference interpreter or its torch is missing.
func haveTorch(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(torchPython); err != nil {
		testref.Missing(t, "PyTorch reference skipped: %s not found", torchPython)
	}
	if out, err := exec.Command(torchPython, "-c", "import torch").CombinedOutput(); err != nil {
		testref.Missing(t, "PyTorch reference skipped: %s cannot import torch (install Debian's python3-torch): %v\n%s",
			torchPython, err, out)
	}
}

func TestAgainstPyTorch(t *testing.T) {
	haveTorch(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "schedules.py")
	result := filepath.Join(dir, "schedules.json")
	if err := os.WriteFile(script, []byte(schedulesScript), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, torchPython, script, result).CombinedOutput(); err != nil {
		t.Fatalf("running PyTorch: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	var ref torchSchedules
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	const base = 1e-3
	oc := DefaultOneCycle()
	for _, T := range []int{100, 37, 8, 5} {
		r, ok := ref.OneCycle[strconv.Itoa(T)]
		if !ok || len(r.LR) != T || len(r.Mom) != T {
			t.Fatalf("onecycle T=%d: reference missing or short", T)
		}
		for k := 0; k < T; k++ {
			if got := LR(oc, base, k, T); !approx(got, r.LR[k], 1e-12) {
				t.Errorf("onecycle T=%d step %d: lr %.17g, PyTorch %.17g", T, k, got, r.LR[k])
			}
			if got, _ := oc.Momentum(k, T); !approx(got, r.Mom[k], 1e-12) {
				t.Errorf("onecycle T=%d step %d: beta1 %.17g, PyTorch %.17g", T, k, got, r.Mom[k])
			}
		}
	}
	for _, T := range []int{11, 40} {
		r := ref.Cosine[strconv.Itoa(T)]
		if len(r) != T {
			t.Fatalf("cosine T=%d: reference missing or short", T)
		}
		for k := 0; k < T; k++ {
			if got := LR(Cosine{Floor: 0.1}, base, k, T); !approx(got, r[k], 1e-12) {
				t.Errorf("cosine T=%d step %d: lr %.17g, PyTorch %.17g", T, k, got, r[k])
			}
		}
	}
	r := ref.Linear["30"]
	if len(r) != 30 {
		t.Fatal("linear: reference missing or short")
	}
	for k := 0; k < 30; k++ {
		if got := LR(Warmup{Steps: 8, Start: 0.1}, base, k, 30); !approx(got, r[k], 1e-12) {
			t.Errorf("warmup step %d: lr %.17g, PyTorch LinearLR %.17g", k, got, r[k])
		}
	}
}
