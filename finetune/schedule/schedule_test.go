package schedule

import (
	"math"
	"strings"
	"testing"
)

// approx reports whether got is within rel (relative) of want.
func approx(got, want, rel float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), math.Abs(got))
}

type point struct {
	step int
	want float64
}

func checkPoints(t *testing.T, name string, s Schedule, total int, pts []point) {
	t.Helper()
	for _, p := range pts {
		if got := s.Factor(p.step, total); !approx(got, p.want, 1e-12) {
			t.Errorf("%s: Factor(%d, %d) = %.17g, want %.17g", name, p.step, total, got, p.want)
		}
	}
}

func TestConstant(t *testing.T) {
	checkPoints(t, "constant", Constant{}, 10, []point{{0, 1}, {5, 1}, {9, 1}, {100, 1}})
	if got := LR(Constant{}, 3e-4, 2, 10); got != 3e-4 {
		t.Errorf("LR = %v, want 3e-4", got)
	}
	if _, ok := MomentumAt(Constant{}, 0, 10); ok {
		t.Error("Constant reports a momentum")
	}
}

func TestOneCycle(t *testing.T) {
	s := DefaultOneCycle()
	// T = 100: the warm-up ends at step 0.25*100-1 = 24, the annealing at step 99.
	const T = 100
	lo, fin := 1.0/25, 1.0/25/1e4
	cos := func(a, b, pct float64) float64 { return b + (a-b)*(1+math.Cos(math.Pi*pct))/2 }
	checkPoints(t, "onecycle", s, T, []point{
		{0, 0.04},                  // first step: base/div
		{12, cos(lo, 1, 12.0/24)},  // middle of the warm-up
		{24, 1},                    // warm-up end: the base rate
		{25, cos(1, fin, 1.0/75)},  // first annealing step
		{62, cos(1, fin, 38.0/75)}, // middle of the annealing
		{99, 4e-6},                 // last step: base/(div*div_final)
		{150, 4e-6},                // clamped
		{-3, 0.04},                 // clamped
		{50, fin + (1-fin)/2*(1+math.Cos(math.Pi*26/75))}, // written once more by hand
	})
	for _, c := range []struct {
		step int
		want float64
	}{
		{0, 0.95}, {12, 0.90}, {24, 0.85}, {62, cos(0.85, 0.95, 38.0/75)}, {99, 0.95},
	} {
		m, ok := MomentumAt(s, c.step, T)
		if !ok || !approx(m, c.want, 1e-12) {
			t.Errorf("Momentum(%d) = %v, %v; want %v", c.step, m, ok, c.want)
		}
	}
	s.CycleMomentum = false
	if _, ok := MomentumAt(s, 3, T); ok {
		t.Error("CycleMomentum false still reports a momentum")
	}
	// PctStart*T = 1: PyTorch divides by zero; the warm-up counts as done at step 0.
	checkPoints(t, "onecycle T=4", DefaultOneCycle(), 4, []point{{0, 1}, {3, fin}})
	// One step.
	checkPoints(t, "onecycle T=1", DefaultOneCycle(), 1, []point{{0, fin}})
}

func TestSlantedTriangular(t *testing.T) {
	s := DefaultSlantedTriangular()
	// Howard & Ruder eq. 3 with T = 1000, cut_frac 0.1, ratio 32: cut = 100.
	stlr := func(tt, T, cutFrac, ratio float64) float64 {
		cut := math.Floor(T * cutFrac)
		var p float64
		if tt < cut {
			p = tt / cut
		} else {
			p = 1 - (tt-cut)/(cut*(1/cutFrac-1))
		}
		return (1 + p*(ratio-1)) / ratio
	}
	checkPoints(t, "stlr", s, 1000, []point{
		{0, 1.0 / 32},
		{50, (1 + 0.5*31) / 32},
		{100, 1},
		{550, (1 + 0.5*31) / 32},
		{999, (1 + (1.0/900)*31) / 32},
		{37, stlr(37, 1000, 0.1, 32)},
		{777, stlr(777, 1000, 0.1, 32)},
	})
	// T = 15: cut = 1, the fall reaches p = 0 at t = 10 and stays there.
	checkPoints(t, "stlr T=15", s, 15, []point{{0, 1.0 / 32}, {1, 1}, {10, 1.0 / 32}, {14, 1.0 / 32}})
	// T = 5 < 1/cut_frac: cut is raised to 1.
	checkPoints(t, "stlr T=5", s, 5, []point{{0, 1.0 / 32}, {1, 1}, {4, (1 + (1-3.0/9)*31) / 32}})
	other := SlantedTriangular{CutFrac: 0.2, Ratio: 10}
	checkPoints(t, "stlr 0.2/10", other, 50, []point{{0, 0.1}, {10, 1}, {30, (1 + 0.5*9) / 10}, {49, stlr(49, 50, 0.2, 10)}})
}

func TestCosine(t *testing.T) {
	checkPoints(t, "cosine", Cosine{}, 11, []point{{0, 1}, {5, 0.5}, {10, 0}, {2, (1 + math.Cos(math.Pi*0.2)) / 2}})
	checkPoints(t, "cosine floor", Cosine{Floor: 0.1}, 11, []point{{0, 1}, {5, 0.55}, {10, 0.1}})
	checkPoints(t, "cosine T=1", Cosine{Floor: 0.1}, 1, []point{{0, 1}})
}

func TestWarmup(t *testing.T) {
	w := Warmup{Steps: 10}
	checkPoints(t, "warmup", w, 100, []point{{0, 0}, {5, 0.5}, {9, 0.9}, {10, 1}, {50, 1}, {99, 1}})
	w = Warmup{Steps: 4, Start: 0.2}
	checkPoints(t, "warmup start", w, 100, []point{{0, 0.2}, {2, 0.6}, {4, 1}})
	// 10% of 101 steps rounds to 10; the cosine runs over steps 10..100.
	wc := Warmup{Pct: 0.1, Cosine: true, Floor: 0.01}
	if n := wc.Length(101); n != 10 {
		t.Fatalf("Length(101) = %d, want 10", n)
	}
	checkPoints(t, "warmup_cosine", wc, 101, []point{
		{0, 0}, {5, 0.5}, {10, 1}, {55, 0.01 + 0.99*0.5}, {100, 0.01},
		{30, 0.01 + 0.99*(1+math.Cos(math.Pi*20/90))/2},
	})
	// Warm-up longer than the stage: never reaches 1, no division by zero.
	checkPoints(t, "warmup long", Warmup{Steps: 50, Cosine: true}, 10, []point{{9, 9.0 / 50}})
	// Warm-up as long as the stage: the cosine has no steps left.
	checkPoints(t, "warmup full", Warmup{Steps: 9, Cosine: true}, 10, []point{{9, 1}})
}

func TestParse(t *testing.T) {
	good := []struct {
		name string
		opts map[string]float64
		want Schedule
	}{
		{"constant", nil, Constant{}},
		{"onecycle", nil, DefaultOneCycle()},
		{"onecycle", map[string]float64{"div": 10, "pct_start": 0.3, "cycle_momentum": 0},
			OneCycle{Div: 10, DivFinal: 1e4, PctStart: 0.3, MomMax: 0.95, MomMin: 0.85}},
		{"stlr", nil, SlantedTriangular{CutFrac: 0.1, Ratio: 32}},
		{"stlr", map[string]float64{"ratio": 16}, SlantedTriangular{CutFrac: 0.1, Ratio: 16}},
		{"cosine", map[string]float64{"floor": 0.05}, Cosine{Floor: 0.05}},
		{"warmup", map[string]float64{"warmup_steps": 100}, Warmup{Steps: 100}},
		{"warmup_cosine", map[string]float64{"warmup_pct": 0.05, "floor": 0.1},
			Warmup{Pct: 0.05, Cosine: true, Floor: 0.1}},
	}
	for _, g := range good {
		s, err := Parse(g.name, g.opts)
		if err != nil {
			t.Errorf("Parse(%q, %v): %v", g.name, g.opts, err)
			continue
		}
		if s != g.want {
			t.Errorf("Parse(%q, %v) = %#v, want %#v", g.name, g.opts, s, g.want)
		}
	}
	bad := []struct {
		name string
		opts map[string]float64
		msg  []string // every fragment must appear in the error
	}{
		{"linear", nil, []string{`unknown schedule "linear"`, "constant, cosine, onecycle, plateau, stlr, warmup, warmup_cosine"}},
		{"onecycle", map[string]float64{"pct": 0.3}, []string{`"onecycle"`, `unknown option "pct"`,
			"cycle_momentum, div, div_final, mom_max, mom_min, pct_start"}},
		{"constant", map[string]float64{"floor": 0}, []string{`unknown option "floor"`, "valid options: none"}},
		{"onecycle", map[string]float64{"pct_start": 1.5}, []string{`"pct_start"`, "[0, 1]"}},
		{"onecycle", map[string]float64{"div": 0}, []string{`"div"`, "> 0"}},
		{"onecycle", map[string]float64{"div_final": math.Inf(1)}, []string{`"div_final"`}},
		{"onecycle", map[string]float64{"mom_max": 1}, []string{`"mom_max"`, "[0, 1)"}},
		{"onecycle", map[string]float64{"cycle_momentum": 2}, []string{`"cycle_momentum"`, "0 or 1"}},
		{"onecycle", map[string]float64{"div": math.NaN()}, []string{`"div"`, "NaN"}},
		{"stlr", map[string]float64{"cut_frac": 1}, []string{`"cut_frac"`, "(0, 1)"}},
		{"stlr", map[string]float64{"ratio": 0.5}, []string{`"ratio"`, ">= 1"}},
		{"cosine", map[string]float64{"floor": -0.1}, []string{`"floor"`, "[0, 1]"}},
		{"warmup", nil, []string{"warmup_steps", "warmup_pct"}},
		{"warmup", map[string]float64{"warmup_steps": 10, "warmup_pct": 0.1}, []string{"set only one"}},
		{"warmup", map[string]float64{"warmup_steps": 2.5}, []string{`"warmup_steps"`, "whole number"}},
		{"warmup", map[string]float64{"warmup_steps": -1}, []string{`"warmup_steps"`}},
		{"warmup", map[string]float64{"warmup_pct": 1.5}, []string{`"warmup_pct"`, "(0, 1]"}},
		{"warmup", map[string]float64{"warmup_pct": 0.1, "floor": 0.1}, []string{`unknown option "floor"`}},
	}
	for _, b := range bad {
		_, err := Parse(b.name, b.opts)
		if err == nil {
			t.Errorf("Parse(%q, %v): no error", b.name, b.opts)
			continue
		}
		for _, frag := range b.msg {
			if !strings.Contains(err.Error(), frag) {
				t.Errorf("Parse(%q, %v) error %q lacks %q", b.name, b.opts, err, frag)
			}
		}
	}
}
