package schedule

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/internal/testref"
)

// plateauScript feeds each case's metrics to PyTorch's ReduceLROnPlateau over an
// optimizer with one param group per rate, and records every group's rate after each
// epoch's scheduler.step(metric).
const plateauScript = `
import json, sys, torch
out = []
for c in json.load(open(sys.argv[1])):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": r} for r in c["rates"]]
    opt = torch.optim.SGD(groups, lr=1.0)
    s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=c["mode"], factor=c["factor"], patience=c["patience"],
        cooldown=c["cooldown"], min_lr=c["min_lr"], threshold=c["threshold"], threshold_mode="rel")
    lrs = []
    for m in c["metrics"]:
        s.step(m)
        lrs.append([g["lr"] for g in opt.param_groups])
    out.append(lrs)
json.dump(out, open(sys.argv[2], "w"))
`

// TestPlateauAgainstPyTorch feeds random metric sequences (noisy, with plateaus and
// exact repeats) to Plateau.Step and to PyTorch's ReduceLROnPlateau, in both modes,
// with several patiences, cooldowns, factors and a min_lr that stops some groups: every
// group's rate after every epoch agrees.
func TestPlateauAgainstPyTorch(t *testing.T) {
	type tcase struct {
		Mode      string    `json:"mode"`
		Factor    float64   `json:"factor"`
		Patience  int       `json:"patience"`
		Cooldown  int       `json:"cooldown"`
		MinLR     float64   `json:"min_lr"`
		Threshold float64   `json:"threshold"`
		Rates     []float64 `json:"rates"`
		Metrics   []float64 `json:"metrics"`
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var cases []tcase
	for i := range 12 {
		c := tcase{Mode: []string{"min", "max"}[i%2], Factor: []float64{0.1, 0.5, 0.3}[i%3], Patience: i % 4, Cooldown: (i / 4) % 3,
			MinLR: []float64{0, 1e-5}[(i/2)%2], Threshold: []float64{1e-4, 0.01, 0}[i%3], Rates: []float64{1e-3, 1e-3 / 2.6, 0, 1e-4}}
		v := 1.0
		for range 40 {
			switch rng.IntN(4) {
			case 0:
				v *= 0.9 // an improvement
			case 1:
				v *= 1.05
			case 2: // the same value again
			default:
				v *= 1 - 0.00005 // below the threshold
			}
			m := v
			if c.Mode == "max" {
				m = 2 - v
			}
			c.Metrics = append(c.Metrics, m)
		}
		cases = append(cases, c)
	}
	var ref [][][]float64
	runPlateauRef(t, cases, &ref)
	for ci, c := range cases {
		p := Plateau{Reduce: c.Factor, Patience: c.Patience, Cooldown: c.Cooldown, MinLR: c.MinLR, Threshold: c.Threshold}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		var s PlateauState
		for e, m := range c.Metrics {
			p.Step(&s, m, c.Mode == "max", c.Rates)
			rates := s.Rates
			if rates == nil {
				rates = c.Rates
			}
			for g, want := range ref[ci][e] {
				if c.Rates[g] == 0 {
					continue // a group the stage does not train: PyTorch's would be reduced to min_lr
				}
				if math.Abs(rates[g]-want) > 1e-15*want {
					t.Fatalf("case %d (%+v), epoch %d, group %d: rate %v, PyTorch %v", ci, p, e+1, g, rates[g], want)
				}
			}
		}
	}
	for _, bad := range []Plateau{{Reduce: 1}, {Reduce: 0.1, Patience: -1}, {Reduce: 0.1, MinLR: -1}, {Reduce: 0.1, Threshold: 1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if _, err := Parse("plateau", map[string]float64{"patience": 2.5}); err == nil {
		t.Error("patience 2.5: no error")
	}
	if s, err := Parse("plateau", map[string]float64{"factor": 0.5, "patience": 2}); err != nil || s.(Plateau) != (Plateau{Reduce: 0.5, Patience: 2, Threshold: 1e-4}) {
		t.Errorf("parse: %+v, %v", s, err)
	}
}

func runPlateauRef(t *testing.T, in, out any) {
	t.Helper()
	if _, err := os.Stat(torchPython); err != nil {
		testref.Missing(t, "PyTorch reference unavailable (%s; on Debian: apt-get install python3-torch): %v", torchPython, err)
	}
	dir := t.TempDir()
	inPath, outPath, script := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json"), filepath.Join(dir, "ref.py")
	raw, _ := json.Marshal(in)
	if err := os.WriteFile(inPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(plateauScript), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(torchPython, script, inPath, outPath).CombinedOutput(); err != nil {
		if strings.Contains(string(msg), "No module named") {
			testref.Missing(t, "PyTorch reference unavailable (on Debian: apt-get install python3-torch): %s", msg)
		}
		t.Fatalf("PyTorch reference failed: %v\n%s", err, msg)
	}
	raw, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(fmt.Errorf("%w: %s", err, raw))
	}
}
