package schedule

import (
	"fmt"
	"math"
)

// Schedule maps training progress to a multiplier of a base learning rate.
//
// Factor returns the multiplier at the 0-based step out of total steps. It is a pure
// function: the same arguments always give the same value, so a resumed run recomputes
// its rate from the step alone. A step below 0 counts as 0, a step at or past total as
// total-1, and a total below 1 as 1.
type Schedule interface {
	Factor(step, total int) float64
}

// MomentumSchedule is implemented by schedules that also set the momentum (SGD) or beta1
// (Adam, AdamW) of the optimizer at every step. ok is false when the schedule leaves the
// optimizer's momentum alone.
type MomentumSchedule interface {
	Momentum(step, total int) (m float64, ok bool)
}

// LR returns base*s.Factor(step, total): the learning rate of a group whose base rate is
// base.
func LR(s Schedule, base float64, step, total int) float64 {
	return base * s.Factor(step, total)
}

// MomentumAt returns the momentum s sets at step, and false when s does not set one.
func MomentumAt(s Schedule, step, total int) (float64, bool) {
	if ms, ok := s.(MomentumSchedule); ok {
		return ms.Momentum(step, total)
	}
	return 0, false
}

// clamp brings step into [0, total) and total to at least 1.
func clamp(step, total int) (int, int) {
	if total < 1 {
		total = 1
	}
	if step < 0 {
		step = 0
	}
	if step >= total {
		step = total - 1
	}
	return step, total
}

// cosAnneal goes from start (pct 0) to end (pct 1) along half a cosine. It is PyTorch's
// OneCycleLR._annealing_cos, written the same way so the values agree to the last bits.
func cosAnneal(start, end, pct float64) float64 {
	return end + (start-end)/2.0*(math.Cos(math.Pi*pct)+1)
}

// Constant is the schedule whose factor is always 1.
type Constant struct{}

// Factor returns 1.
func (Constant) Factor(step, total int) float64 { return 1 }

// OneCycle is fastai's fit_one_cycle and PyTorch's OneCycleLR with anneal_strategy='cos'
// and three_phase=False. With T = total steps and s the 0-based step:
//
//	warm-up end  e = PctStart*T - 1 (a real number, as in PyTorch)
//	s <= e:      factor = cos from 1/Div to 1,          pct = s/e
//	s >  e:      factor = cos from 1 to 1/(Div*DivFinal), pct = (s-e)/(T-1-e)
//
// where "cos from a to b" is b + (a-b)/2*(cos(pi*pct)+1). Momentum follows the same pcts
// from MomMax to MomMin and back to MomMax. The first step runs at base/Div, the last at
// base/(Div*DivFinal), exactly as PyTorch's scheduler gives them for its first and last
// optimizer steps.
//
// fastai's own fit_one_cycle differs in two small ways: it measures progress as s/T (so it
// never quite reaches the final rate) and its final rate is base/div_final with
// div_final=1e5; here, as in PyTorch, the final rate is base/(Div*DivFinal).
//
// Where PyTorch would divide by zero (e = 0, that is PctStart*T = 1) the warm-up is taken
// as finished: step 0 runs at the full base rate.
type OneCycle struct {
	Div           float64 // initial factor is 1/Div; default 25
	DivFinal      float64 // final factor is 1/(Div*DivFinal); default 1e4
	PctStart      float64 // fraction of the steps spent warming up, in [0, 1]; default 0.25
	MomMax        float64 // momentum at the start and the end; default 0.95
	MomMin        float64 // momentum at the peak rate; default 0.85
	CycleMomentum bool    // whether Momentum reports a value; default true
}

// DefaultOneCycle returns the OneCycle of fastai's and PyTorch's defaults (with PyTorch's
// final_div_factor of 1e4).
func DefaultOneCycle() OneCycle {
	return OneCycle{Div: 25, DivFinal: 1e4, PctStart: 0.25, MomMax: 0.95, MomMin: 0.85, CycleMomentum: true}
}

// Validate reports the first field out of its range.
func (o OneCycle) Validate() error {
	if err := positive("div", o.Div); err != nil {
		return err
	}
	if err := positive("div_final", o.DivFinal); err != nil {
		return err
	}
	if err := within("pct_start", o.PctStart, 0, 1); err != nil {
		return err
	}
	if err := momentum("mom_max", o.MomMax); err != nil {
		return err
	}
	return momentum("mom_min", o.MomMin)
}

// phase returns whether step is in the warm-up and its progress through its phase.
func (o OneCycle) phase(step, total int) (warm bool, pct float64) {
	step, total = clamp(step, total)
	s, t := float64(step), float64(total)
	end1 := o.PctStart*t - 1
	end2 := t - 1
	if s <= end1 {
		if end1 <= 0 {
			return true, 1
		}
		return true, s / end1
	}
	if end2-end1 <= 0 {
		return false, 1
	}
	return false, (s - end1) / (end2 - end1)
}

// Factor returns the one-cycle multiplier at step.
func (o OneCycle) Factor(step, total int) float64 {
	initial := 1 / o.Div
	final := initial / o.DivFinal
	warm, pct := o.phase(step, total)
	if warm {
		return cosAnneal(initial, 1, pct)
	}
	return cosAnneal(1, final, pct)
}

// Momentum returns the momentum (or Adam's beta1) at step: MomMax down to MomMin over the
// warm-up, back up to MomMax by the last step. ok is CycleMomentum.
func (o OneCycle) Momentum(step, total int) (float64, bool) {
	warm, pct := o.phase(step, total)
	if warm {
		return cosAnneal(o.MomMax, o.MomMin, pct), o.CycleMomentum
	}
	return cosAnneal(o.MomMin, o.MomMax, pct), o.CycleMomentum
}

// SlantedTriangular is ULMFiT's slanted triangular learning rate (Howard & Ruder 2018,
// eq. 3), with t the 0-based step and T the total:
//
//	cut = floor(T*CutFrac)
//	p   = t/cut                                 if t < cut
//	      1 - (t-cut)/(cut*(1/CutFrac-1))       otherwise
//	factor = (1 + p*(Ratio-1)) / Ratio
//
// so the rate climbs from base/Ratio at step 0 to base at step cut and falls back towards
// base/Ratio. When T*CutFrac is a whole number the fall reaches p = 0 at t = T; otherwise
// p is clamped at 0, and cut is at least 1 so that short stages (T < 1/CutFrac) still have
// a peak, at step 1.
type SlantedTriangular struct {
	CutFrac float64 // fraction of the steps spent climbing, in (0, 1); default 0.1
	Ratio   float64 // peak rate over lowest rate, >= 1; default 32
}

// DefaultSlantedTriangular returns the paper's settings: CutFrac 0.1, Ratio 32.
func DefaultSlantedTriangular() SlantedTriangular {
	return SlantedTriangular{CutFrac: 0.1, Ratio: 32}
}

// Validate reports the first field out of its range.
func (s SlantedTriangular) Validate() error {
	if !(s.CutFrac > 0 && s.CutFrac < 1) {
		return fmt.Errorf("option %q = %v: must be in (0, 1)", "cut_frac", s.CutFrac)
	}
	if !(s.Ratio >= 1) || math.IsInf(s.Ratio, 0) {
		return fmt.Errorf("option %q = %v: must be finite and >= 1", "ratio", s.Ratio)
	}
	return nil
}

// Factor returns the slanted triangular multiplier at step.
func (s SlantedTriangular) Factor(step, total int) float64 {
	step, total = clamp(step, total)
	cut := math.Floor(float64(total) * s.CutFrac)
	if cut < 1 {
		cut = 1
	}
	t := float64(step)
	var p float64
	if t < cut {
		p = t / cut
	} else {
		p = 1 - (t-cut)/(cut*(1/s.CutFrac-1))
	}
	if p < 0 {
		p = 0
	}
	return (1 + p*(s.Ratio-1)) / s.Ratio
}

// Cosine anneals from factor 1 at the first step to Floor at the last along half a cosine:
// factor = Floor + (1-Floor)*(1+cos(pi*s/(T-1)))/2. This is PyTorch's CosineAnnealingLR
// with T_max = T-1 and eta_min = Floor*base. Floor is relative to each group's base rate.
type Cosine struct {
	Floor float64 // final factor, in [0, 1]; default 0
}

// Validate reports the first field out of its range.
func (c Cosine) Validate() error { return within("floor", c.Floor, 0, 1) }

// Factor returns the cosine multiplier at step.
func (c Cosine) Factor(step, total int) float64 {
	step, total = clamp(step, total)
	return cosineFrom(c.Floor, step, total-1)
}

// cosineFrom is the cosine factor at step s of an annealing that ends at step last.
func cosineFrom(floor float64, s, last int) float64 {
	if last <= 0 {
		return 1
	}
	p := float64(s) / float64(last)
	return floor + (1-floor)*(1+math.Cos(math.Pi*p))/2
}

// Warmup ramps the factor linearly from Start to 1 over the first W steps, then holds it
// at 1, or, with Cosine set, anneals it to Floor along half a cosine ending at the last
// step:
//
//	s < W:           factor = Start + (1-Start)*s/W
//	s >= W:          factor = 1                                         (Cosine false)
//	                 factor = Floor + (1-Floor)*(1+cos(pi*(s-W)/(T-1-W)))/2 (Cosine true)
//
// W is Steps when Steps > 0, else round(Pct*T). The ramp is PyTorch's LinearLR(start_factor
// = Start, total_iters = W); with the default Start of 0 the first step runs at rate 0, as
// in Hugging Face's linear-warm-up schedules.
type Warmup struct {
	Steps  int     // warm-up length in steps; exactly one of Steps and Pct is set
	Pct    float64 // warm-up length as a fraction of the steps, in (0, 1]
	Start  float64 // factor at step 0, in [0, 1]; default 0
	Cosine bool    // anneal after the warm-up instead of holding the rate
	Floor  float64 // final factor of the annealing, in [0, 1]; default 0
}

// Validate reports the first field out of its range.
func (w Warmup) Validate() error {
	switch {
	case w.Steps < 0:
		return fmt.Errorf("option %q = %d: must be > 0", "warmup_steps", w.Steps)
	case w.Steps > 0 && w.Pct != 0:
		return fmt.Errorf("options %q and %q: set only one", "warmup_steps", "warmup_pct")
	case w.Steps == 0 && w.Pct == 0:
		return fmt.Errorf("warm-up length missing: set %q (steps) or %q (fraction of the steps)", "warmup_steps", "warmup_pct")
	case w.Steps == 0 && !(w.Pct > 0 && w.Pct <= 1):
		return fmt.Errorf("option %q = %v: must be in (0, 1]", "warmup_pct", w.Pct)
	}
	if err := within("start", w.Start, 0, 1); err != nil {
		return err
	}
	return within("floor", w.Floor, 0, 1)
}

// Length returns the number of warm-up steps W for a stage of total steps.
func (w Warmup) Length(total int) int {
	if w.Steps > 0 {
		return w.Steps
	}
	_, total = clamp(0, total)
	return int(math.Round(w.Pct * float64(total)))
}

// Factor returns the warm-up multiplier at step.
func (w Warmup) Factor(step, total int) float64 {
	step, total = clamp(step, total)
	n := w.Length(total)
	if step < n {
		return w.Start + (1-w.Start)*float64(step)/float64(n)
	}
	if !w.Cosine {
		return 1
	}
	return cosineFrom(w.Floor, step-n, total-1-n)
}

func positive(field string, v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("option %q = %v: must be finite and > 0", field, v)
	}
	return nil
}

func within(field string, v, lo, hi float64) error {
	if !(v >= lo && v <= hi) {
		return fmt.Errorf("option %q = %v: must be in [%v, %v]", field, v, lo, hi)
	}
	return nil
}

func momentum(field string, v float64) error {
	if !(v >= 0 && v < 1) {
		return fmt.Errorf("option %q = %v: must be in [0, 1)", field, v)
	}
	return nil
}
