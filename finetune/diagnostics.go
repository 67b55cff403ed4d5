package finetune

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"toolkit/finetune/diagnose"
	"toolkit/finetune/optim"
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
	// sampled says that the step under way is measured: kept holds its trained weights
	// before the update, measured the norms per group after it.
	sampled  bool
	kept     map[string][]float32
	measured map[string]groupNorms
}

// groupNorms are a trained group's norms at a sampled step: its gradient (before
// clipping), its update and its weights after the update.
type groupNorms struct {
	grad, update, weight float64
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
		BeforeUpdate: d.beforeUpdate,
		AfterUpdate:  d.afterUpdate,
		Step: func(t *Trainer, info *StepInfo) error {
			if !d.enabled() {
				return nil
			}
			began := time.Now()
			x, err := d.sample(t)
			if err != nil {
				return err
			}
			if d.sampled {
				info.Sampled = true
				for i, g := range info.Groups {
					if n, ok := d.measured[g.Name]; ok && n.weight > 0 {
						info.Groups[i].UpdateRatio = n.update / n.weight
					}
				}
			}
			sigs := d.mon.Step(x)
			d.sampled = false
			d.seconds += time.Since(began).Seconds()
			return d.handle(t, sigs)
		},
		nonFinite: d.nonFinite,
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
			per := 1 // decisions per example: a multi-label task's accuracy is over every label
			if t.multi {
				per = t.cfg.Head.Classes
			}
			x := diagnose.Epoch{TrainAcc: m.TrainAcc, TrainLoss: m.TrainLoss, TrainN: per * t.data.Train.Len()}
			if m.ValAcc != nil {
				x.HasVal, x.ValAcc, x.ValLoss, x.ValN = true, *m.ValAcc, *m.ValLoss, per*t.data.Val.Len()
			}
			return d.handle(t, d.mon.Epoch(x))
		},
	}
}

// beforeUpdate decides whether the step is sampled (measureAt) and, if so, keeps the
// trained weights to measure the update by.
func (d *diagnostics) beforeUpdate(t *Trainer, u *Update) error {
	d.sampled = d.measureAt()
	if !d.sampled {
		return nil
	}
	began := time.Now()
	if d.kept == nil {
		d.kept = map[string][]float32{}
	}
	for _, g := range u.Groups {
		optim.Keep(d.kept, g.Params)
	}
	d.seconds += time.Since(began).Seconds()
	return nil
}

// afterUpdate measures a sampled step: each group's gradient, update and weight norms;
// a NaN or Inf in the weights is a *NonFiniteError.
func (d *diagnostics) afterUpdate(t *Trainer, u *Update) error {
	if !d.sampled {
		return nil
	}
	began := time.Now()
	defer func() { d.seconds += time.Since(began).Seconds() }()
	if d.measured == nil {
		d.measured = map[string]groupNorms{}
	}
	clear(d.measured) // the groups of this step only (a stage may train fewer)
	for _, g := range u.Groups {
		du, w := optim.UpdateNorms(g.Params, d.kept)
		d.measured[g.Name] = groupNorms{grad: g.GradNorm, update: du, weight: w}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nonFiniteIn(u.where, "weight", g.Name, g.Params, false)
		}
	}
	return nil
}

// sample turns the last step into the monitor's sample.
func (d *diagnostics) sample(t *Trainer) (diagnose.Step, error) {
	r := t.last
	x := diagnose.Step{Loss: r.Loss, N: r.Scored, Correct: r.Correct, Predicted: slices.Clone(r.Predicted), Sampled: d.sampled}
	if !d.sampled {
		return x, nil
	}
	dead, err := d.deadUnits(t, r)
	if err != nil {
		return x, err
	}
	for _, g := range t.groups {
		gs := diagnose.Group{Name: g.Name, Pretrained: g.Name != HeadGroup}
		if n, ok := d.measured[g.Name]; ok {
			gs.Trained = true
			gs.GradNorm, gs.WeightNorm, gs.UpdateNorm = n.grad, n.weight, n.update
		}
		for i, p := range d.probes {
			if p.Group == g.Name {
				gs.DeadUnits += dead[i][0]
				gs.Units += dead[i][1]
			}
		}
		x.Groups = append(x.Groups, gs)
	}
	return x, nil
}

// deadUnits counts, per probe, the units that no example of the step's batch activated
// and the units, over every rank's share of the batch (a unit is dead when it is on
// every rank); a probe before the program's start (the feature cache's cut) counts none.
// Every rank adds the same layout, a flag that it computed the probe and the probe's
// units, so that a rank without examples takes part as it is.
func (d *diagnostics) deadUnits(t *Trainer, r *stepResult) ([][2]int, error) {
	var buf []float32
	for _, p := range d.probes {
		flags, ok := r.alive[p.Tensor]
		if !ok || len(flags) != p.Units {
			buf = append(buf, 0)
			buf = append(buf, make([]float32, p.Units)...)
			continue
		}
		buf = append(buf, 1)
		buf = append(buf, flags...)
	}
	if t.comm.Size() > 1 {
		if err := t.comm.AllreduceFloat32(buf); err != nil {
			return nil, err
		}
	}
	out := make([][2]int, len(d.probes))
	for i, p := range d.probes {
		computed, flags := buf[0], buf[1:1+p.Units]
		buf = buf[1+p.Units:]
		if computed == 0 {
			continue
		}
		for _, a := range flags {
			if a == 0 {
				out[i][0]++
			}
		}
		out[i][1] = p.Units
	}
	return out, nil
}

// handle reports the signals as findings and returns a repair request for the first
// repairable one when repair is on.
func (d *diagnostics) handle(t *Trainer, sigs []diagnose.Signal) error {
	var req *repairRequest
	for _, s := range sigs {
		if rate, stuck := t.stuckHead(t.progress.Stage, s.Kind); stuck {
			// A head trained alone at chance at the optimizer's usual rate or above:
			// nothing is failing that the toolkit knows how to fix (the base is frozen):
			// a notice, not a finding.
			name := t.stages[t.progress.Stage].cfg.Name
			msg := fmt.Sprintf("head at chance: stage %s trains the head alone at lr %g and it is still at chance: %s. The base is frozen, so nothing was lost; a higher rate or more epochs may move it (toolkit lr-find --stage %s suggests a rate), or its inputs carry little signal (check data.preprocess against how the base was trained; head.pool: flatten keeps the positions that global pooling averages away)",
				name, rate, s.Seen, name)
			if err := t.notice("head_at_chance", msg, 0); err != nil {
				return err
			}
			continue
		}
		f := t.newFinding(s.Kind, s.Group)
		f.Value, f.Limit, f.Message, f.Meaning = s.Value, s.Limit, s.Seen, s.Meaning
		stages := t.fill(&f)
		if err := t.report(f); err != nil {
			return err
		}
		if d.cfg.Repair && stages != nil {
			if err := d.repairOrStop(t, f, stages, &req); err != nil {
				return err
			}
		}
	}
	if req != nil {
		return req
	}
	return nil
}

// repairOrStop sets *req to the repair of a finding with a fix, unless one is set
// already; a fix that may not be applied (Finding.NotRepaired) is said once per stage
// as a repair_stopped notice: the run goes on with its recipe as it is.
func (d *diagnostics) repairOrStop(t *Trainer, f Finding, stages []StageConfig, req **repairRequest) error {
	if f.Repairable {
		if *req == nil {
			*req = &repairRequest{finding: f, stages: stages, dir: f.Direction}
		}
		return nil
	}
	return t.notice("repair_stopped", fmt.Sprintf("repair stopped in stage %s: %s; the run goes on with the recipe as it is (finding %s)", f.Stage, f.NotRepaired, f.Kind), 0)
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
	if d.cfg.Repair {
		var req *repairRequest
		if err := d.repairOrStop(t, f, stages, &req); err != nil {
			return err
		}
		if req != nil {
			return req
		}
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
	return fire(t, Hook.onFinding, f)
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
