package finetune

import (
	"errors"
	"fmt"
	"math"
	"time"

	"toolkit/finetune/diagnose"
)

// defaultEvery is how often, in steps, diagnostics sample the per-group statistics
// (besides the first three steps of every stage).
const defaultEvery = 5

// diagnostics is the loop's diagnostics hook: it samples the steps, feeds a
// diagnose.Monitor, reports its signals as findings with the recipe lines that fix them,
// and asks for a repair when the recipe says so.
type diagnostics struct {
	cfg    DiagnosticsConfig
	every  int
	mon    *diagnose.Monitor
	probes []probe
	// seconds is the time spent on diagnostics in the current epoch.
	seconds float64
}

func newDiagnostics(cfg DiagnosticsConfig, classes int, probes []probe) *diagnostics {
	every := cfg.Every
	if every == 0 {
		every = defaultEvery
	}
	return &diagnostics{cfg: cfg, every: every, mon: diagnose.New(classes, diagnose.DefaultThresholds()), probes: probes}
}

func (d *diagnostics) enabled() bool { return !d.cfg.Off }

// measureAt says whether the coming step is sampled: the first three of a stage, then
// every d.every steps.
func (d *diagnostics) measureAt() bool {
	if !d.enabled() {
		return false
	}
	n := d.mon.State.StageStep
	return n < 3 || (n+1)%d.every == 0
}

func (d *diagnostics) hook() Hook {
	return Hook{
		Name:  "diagnostics",
		State: &d.mon.State,
		EpochStart: func(t *Trainer, info StepInfo) error {
			d.seconds = 0
			if d.enabled() && t.progress.StageEpoch == 0 && info.Batch == 0 {
				d.mon.BeginStage(t.progress.Stage, info.Batches, t.stages[t.progress.Stage].headOnly())
			}
			return nil
		},
		Step: func(t *Trainer, info *StepInfo) error {
			if !d.enabled() {
				return nil
			}
			began := time.Now()
			sigs := d.mon.Step(d.sample(t))
			d.seconds += time.Since(began).Seconds()
			return d.handle(t, sigs)
		},
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			if !d.enabled() {
				return nil
			}
			began := time.Now()
			err := t.checkWeights(m.Trained)
			d.seconds += time.Since(began).Seconds()
			if err != nil {
				var nf *NonFiniteError
				if errors.As(err, &nf) {
					return d.nonFinite(t, nf)
				}
				return err
			}
			m.DiagnosticsSeconds = d.seconds
			x := diagnose.Epoch{TrainAcc: m.TrainAcc}
			if m.ValAcc != nil {
				x.HasVal, x.ValAcc, x.ValLoss = true, *m.ValAcc, *m.ValLoss
			}
			return d.handle(t, d.mon.Epoch(x))
		},
	}
}

// sample turns the last step into the monitor's sample.
func (d *diagnostics) sample(t *Trainer) diagnose.Step {
	r := t.last
	classes := t.cfg.Head.Classes
	x := diagnose.Step{Loss: r.Loss, N: r.N, Correct: r.Correct, Predicted: make([]int, classes), Sampled: r.Measured}
	for i := 0; i < r.N; i++ {
		row := r.Logits[i*classes : (i+1)*classes]
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		x.Predicted[best]++
	}
	if !r.Measured {
		return x
	}
	for _, g := range t.groups {
		gs := diagnose.Group{Name: g.Name, Pretrained: g.Name != HeadGroup}
		if _, ok := r.GradNorm[g.Name]; ok {
			gs.Trained = true
			gs.GradNorm, gs.WeightNorm, gs.UpdateNorm = r.GradNorm[g.Name], r.WeightNorm[g.Name], r.UpdateNorm[g.Name]
		}
		for _, p := range d.probes {
			// A program that starts at the feature cache's cut reports only the probes
			// after it.
			du, ok := r.Dead[p.Tensor]
			if p.Group != g.Name || !ok {
				continue
			}
			gs.DeadUnits += du[0]
			gs.Units += du[1]
		}
		x.Groups = append(x.Groups, gs)
	}
	return x
}

// handle reports the signals as findings and returns a repair request for the first
// repairable one when repair is on.
func (d *diagnostics) handle(t *Trainer, sigs []diagnose.Signal) error {
	var req *repairRequest
	for _, s := range sigs {
		f := t.newFinding(s.Kind, s.Group)
		f.Value, f.Limit, f.Message, f.Meaning = s.Value, s.Limit, s.Seen, s.Meaning
		stages := t.fill(&f)
		if err := t.report(f); err != nil {
			return err
		}
		if req == nil && d.cfg.Repair && f.Repairable {
			req = &repairRequest{finding: f, stages: stages}
		}
	}
	if req != nil {
		return req
	}
	return nil
}

// nonFinite reports a NaN or Inf as a finding; without repair the run stops with the
// error, its last checkpoint the last good state.
func (d *diagnostics) nonFinite(t *Trainer, nf *NonFiniteError) error {
	if !d.enabled() {
		return nf
	}
	f := t.newFinding(diagnose.NonFinite, nf.Group)
	f.Tensor, f.Value = nf.Tensor, float64(max(nf.Count, 1))
	switch nf.What {
	case "loss":
		f.Message = fmt.Sprintf("the loss is %v", nf.Value)
	default:
		f.Message = fmt.Sprintf("the %s of %s holds %d NaN or Inf values (the first: %v)", nf.What, nf.Tensor, nf.Count, nf.Value)
	}
	f.Meaning = "the numbers overflowed: the learning rate is far too high (or the data holds NaN); the run stops before the bad values reach a checkpoint"
	stages := t.fill(&f)
	if err := t.report(f); err != nil {
		return err
	}
	if d.cfg.Repair && f.Repairable {
		return &repairRequest{finding: f, stages: stages}
	}
	return fmt.Errorf("%w; the last checkpoint (after epoch %d) holds the last good weights", nf, t.progress.Epoch)
}

// newFinding starts a finding at the current position.
func (t *Trainer) newFinding(kind diagnose.Kind, group string) Finding {
	p := t.progress
	return Finding{Kind: string(kind), Epoch: p.Epoch + 1, Step: p.Step, Stage: t.stages[p.Stage].cfg.Name, Group: group}
}

// report logs a finding and hands it to the hooks.
func (t *Trainer) report(f Finding) error {
	t.log = append(t.log, Record{Finding: &f})
	for _, h := range t.hooks {
		if h.Finding != nil {
			if err := h.Finding(t, f); err != nil {
				return fmt.Errorf("hook %s: %w", h.Name, err)
			}
		}
	}
	return nil
}

// checkWeights looks for NaN or Inf in the weights of the trained groups.
func (t *Trainer) checkWeights(trained []string) error {
	for _, g := range t.groups {
		if !contains(trained, g.Name) {
			continue
		}
		for _, name := range g.Params {
			for _, v := range t.model.Param(name) {
				if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
					return &NonFiniteError{Where: fmt.Sprintf("stage %s, end of epoch %d", t.stages[t.progress.Stage].cfg.Name, t.progress.StageEpoch+1),
						What: "weight", Tensor: name, Group: g.Name, Count: countNonFinite(t.model.Param(name)), Value: f}
				}
			}
		}
	}
	return nil
}

func countNonFinite(x []float32) int {
	n := 0
	for _, v := range x {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			n++
		}
	}
	return n
}
