package finetune

import (
	"fmt"
	"math"
	"slices"

	"toolkit/backend"
	"toolkit/backend/kernels"
	"toolkit/dataset"
	"toolkit/finetune/optim"
	"toolkit/finetune/schedule"
)

// stepResult is what one training step computed. Slices are valid until the next step.
type stepResult struct {
	Loss float64
	// Correct counts the right predictions among Scored: the examples (N), or for a
	// multi-label task every example's decision on every label.
	Correct, Scored int
	N               int
	// Weight is the loss's normaliser: N, or with class weights the sum of the
	// examples' weights (lossTargets); over several ranks, the whole batch's.
	Weight float64
	// Predicted counts the batch's predictions per class.
	Predicted []int
	// AllreduceSeconds is the time the sums of the gradients over the ranks took,
	// AllreduceWaitSeconds the part of it the step waited for after its backward pass.
	AllreduceSeconds, AllreduceWaitSeconds float64
	// alive marks, on a sampled step, the units of each ReLU probe the program computed
	// that some example of this rank's share activated.
	alive map[string][]float32
	// Update is the step's optimizer update: per trained group, the gradient norm
	// (before clipping) and the learning rate.
	Update  *Update
	Seconds float64
}

// Update is one step's optimizer update as the BeforeUpdate and AfterUpdate hooks see
// it: every updated group, in the model's order, with its parameters (values and, after
// optimizer.clip_norm, gradients), its gradient norm before clipping, and the learning
// rate the stage's schedule gives it at this step; Momentum is SGD's momentum or Adam's
// beta1 the schedule sets for the step (SetsMomentum false: it sets none, as most
// schedules but one-cycle). A BeforeUpdate hook may change the rates and the momentum
// (lr-find sweeps the rate so); an AfterUpdate hook sees the values updated.
type Update struct {
	Groups       []GroupUpdate
	Momentum     float64
	SetsMomentum bool
	// where is the step's position, for errors.
	where string
}

// GroupUpdate is one layer group's part of an Update.
type GroupUpdate struct {
	Name     string
	Params   []optim.Param
	GradNorm float64
	LR       float64
}

// step trains on one batch: its gradients, then the update of the trained groups.
func (t *Trainer) step(e *epochPlan, b trainBatch) (*stepResult, error) {
	r, err := t.gradients(e, b)
	if err != nil {
		return r, err
	}
	if err := t.update(e, b, r.Update); err != nil {
		return r, err
	}
	return r, t.syncRunningStats()
}

// gradients runs the batch forward and backward and returns the loss and, in
// r.Update, each trained group's gradients, clipped by optimizer.clip_norm; no weight
// changes. With data.accumulate K the batch runs as K parts one after the other, their
// gradients added up as one run of the whole batch gives them. Over several ranks
// (WithComm) the statistics and the gradients are then the whole batch's. A NaN or Inf
// loss or gradient is a *NonFiniteError.
func (t *Trainer) gradients(e *epochPlan, b trainBatch) (*stepResult, error) {
	classes := t.cfg.Head.Classes
	u := &Update{where: fmt.Sprintf("stage %s, epoch %d, batch %d", e.stage.cfg.Name, t.progress.StageEpoch+1, b.Index+1)}
	r := &stepResult{N: b.N, Predicted: make([]int, classes), Update: u}
	parts := chunks(b.N, t.cfg.Data.accumulate())
	// One part: the gradients are its program's, which the sums over the ranks read as
	// the backward pass finishes them. Several: they add up in buffers of their own.
	var prog *backend.Program
	if len(parts) == 1 {
		var err error
		if prog, err = t.programFrom(b.N, true, b.From); err != nil {
			return nil, err
		}
	}
	groups, err := t.updatedGroups(e, prog, u.where)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		// This rank's share is empty: its gradients are zeros, in buffers that hold the
		// last step's.
		for _, g := range groups {
			for _, p := range g.Params {
				clear(p.Grad)
			}
		}
	}
	var targets []float32
	var labels []int
	if b.N > 0 {
		if t.multi {
			targets, r.Weight = multiTargets(b.Indices, b.Mix, t.hot.train, classes)
		} else {
			targets, labels, r.Weight = t.lossTargets(b.Labels, b.Mix)
		}
	}
	var red *gradientReducer
	if len(parts) <= 1 {
		red = t.newGradientReducer(e.gradLayout, groups, prog, r.Weight)
	}
	stride := 0
	if b.N > 0 {
		stride = len(b.Images) / b.N
	}
	for j, part := range parts {
		lo, hi := part[0], part[1]
		p := prog
		if p == nil {
			if p, err = t.programFrom(hi-lo, true, b.From); err != nil {
				return nil, err
			}
		}
		seed := t.stepSeed()
		if j > 0 {
			seed = mix(seed, uint64(j))
		}
		err := t.forwardBackward(p, seed, b.Images[lo*stride:hi*stride], targets[lo*classes:hi*classes], r)
		p.OnGradient(nil)
		if err != nil {
			red.cancel()
			return nil, fmt.Errorf("%s: %w", u.where, err)
		}
		share := float64(hi-lo) / float64(b.N)
		if len(parts) > 1 {
			if err := addGradients(groups, p, float32(share), j == 0, u.where); err != nil {
				return nil, err
			}
		}
		logits := p.Output(0)[:(hi-lo)*classes]
		r.Loss += share * p.Loss()
		if t.multi {
			r.Correct += multiCounts(logits, targets[lo*classes:hi*classes], classes, r.Predicted)
			r.Scored += (hi - lo) * classes
		} else {
			r.Correct += kernels.CorrectCount(hi-lo, classes, logits, labels[lo:hi])
			r.Scored += hi - lo
			predictions(r.Predicted, logits, classes)
		}
	}
	if len(parts) > 1 {
		red = t.newGradientReducer(e.gradLayout, groups, nil, r.Weight)
	}
	// The gradients' sums first: every rank makes the same collectives in the same order.
	if err := red.wait(r); err != nil {
		return r, err
	}
	if err := t.reduceStep(r); err != nil {
		return r, err
	}
	if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
		return r, &NonFiniteError{Where: u.where, What: "loss", Tensor: "loss", Value: r.Loss}
	}
	red.divide(r.Weight)
	u.Groups, err = t.clipGradients(groups, u.where)
	return r, err
}

// chunks splits n examples into k parts, [lo, hi) each, as even as they go, leaving out
// the empty ones (none for n 0).
func chunks(n, k int) [][2]int {
	var out [][2]int
	for j := range k {
		if lo, hi := j*n/k, (j+1)*n/k; hi > lo {
			out = append(out, [2]int{lo, hi})
		}
	}
	return out
}

// addGradients adds, for every parameter of groups, share times prog's gradient into
// the parameter's Grad (a buffer of the trainer's: gradBuffer), replacing what it holds
// on first. A parameter whose gradient prog does not compute is an error
// (missingGradient), as on the one-part path.
func addGradients(groups []GroupUpdate, prog *backend.Program, share float32, first bool, where string) error {
	for _, g := range groups {
		for _, p := range g.Params {
			src := prog.Grad(p.Name)
			if src == nil {
				return missingGradient(where, p.Name)
			}
			if first {
				for i, v := range src {
					p.Grad[i] = share * v
				}
				continue
			}
			for i, v := range src {
				p.Grad[i] += share * v
			}
		}
	}
	return nil
}

// missingGradient is the error of a step whose program did not compute the gradient of
// the trained parameter name.
func missingGradient(where, name string) error {
	return fmt.Errorf("%s: no gradient computed for %q", where, name)
}

// gradBuffer is the trainer's own gradient buffer of the parameter name, made on first
// use and never cleared here: the sum of a batch's parts (data.accumulate), which
// addGradients writes over, or the zeros of a rank whose share of a batch is empty.
func (t *Trainer) gradBuffer(name string) []float32 {
	if t.gradBufs == nil {
		t.gradBufs = map[string][]float32{}
	}
	buf, ok := t.gradBufs[name]
	if !ok {
		buf = make([]float32, len(t.model.Param(name)))
		t.gradBufs[name] = buf
	}
	return buf
}

// forwardBackward runs a program forward and backward on images and targets; on a
// sampled step of the diagnostics it also marks the units of each ReLU some example
// activated (over every part of a batch run in parts).
func (t *Trainer) forwardBackward(prog *backend.Program, seed uint64, images, targets []float32, r *stepResult) error {
	prog.Reseed(seed)
	if t.forwardUpdates {
		t.ckpt.waitRead()
	}
	if t.diag.measureAt() {
		if r.alive == nil {
			r.alive = map[string][]float32{}
		}
		prog.Probe(func(name string, shape []int, v []float32) {
			if len(shape) < 2 {
				return
			}
			flags, ok := r.alive[name]
			if !ok {
				flags = make([]float32, shape[1])
			}
			if aliveUnits(flags, v, shape) {
				r.alive[name] = flags
			}
		})
		defer prog.Probe(nil)
	}
	return prog.Run([][]float32{images}, targets)
}

// predictions counts, into counts, the rows of logits whose largest value is each class's.
func predictions(counts []int, logits []float32, classes int) {
	for i := 0; i+classes <= len(logits); i += classes {
		row := logits[i : i+classes]
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		counts[best]++
	}
}

// updatedGroups is a step's copy of the groups the epoch updates (e.updated) with
// their parameters' values and the gradients prog computes (prog nil: the trainer's
// buffers, gradBuffer, for a batch run in parts or a rank without examples to fill).
func (t *Trainer) updatedGroups(e *epochPlan, prog *backend.Program, where string) ([]GroupUpdate, error) {
	groups := make([]GroupUpdate, len(e.updated))
	for i, planned := range e.updated {
		params := slices.Clone(planned.Params)
		for j := range params {
			p := &params[j]
			if prog == nil {
				p.Grad = t.gradBuffer(p.Name)
			} else if p.Grad = prog.Grad(p.Name); p.Grad == nil {
				return nil, missingGradient(where, p.Name)
			}
			p.Value = t.model.Param(p.Name)
		}
		groups[i] = GroupUpdate{Name: planned.Name, Params: params}
	}
	return groups, nil
}

// clipGradients takes each group's gradient norm before clipping (a NaN or Inf is a
// *NonFiniteError), then clips them together by optimizer.clip_norm.
func (t *Trainer) clipGradients(groups []GroupUpdate, where string) ([]GroupUpdate, error) {
	var all []optim.Param
	for i := range groups {
		gu := &groups[i]
		if gu.GradNorm = optim.GradNorm(gu.Params); math.IsNaN(gu.GradNorm) || math.IsInf(gu.GradNorm, 0) {
			return nil, nonFiniteIn(where, "gradient", gu.Name, gu.Params, true)
		}
		all = append(all, gu.Params...)
	}
	if t.cfg.Optimizer.ClipNorm > 0 {
		optim.ClipGradNorm(all, t.cfg.Optimizer.ClipNorm)
	}
	return groups, nil
}

// update gives each group of u its rate (and the momentum) of the stage's schedule at
// this step, calls the BeforeUpdate hooks, steps the groups' optimizers, then calls the
// AfterUpdate hooks.
func (t *Trainer) update(e *epochPlan, b trainBatch, u *Update) error {
	sch := e.stage.schedule
	stageStep := t.progress.StageEpoch*e.batches + b.Index
	u.Momentum, u.SetsMomentum = schedule.MomentumAt(sch, stageStep, e.total)
	for i := range u.Groups {
		g := &u.Groups[i]
		g.LR = schedule.LR(sch, e.rates[groupIndex(t.groups, g.Name)], stageStep, e.total)
	}
	if err := fire(t, Hook.onBeforeUpdate, u); err != nil {
		return err
	}
	t.ckpt.waitRead() // the update changes what a checkpoint being written reads
	for _, g := range u.Groups {
		o := t.optims[g.Name]
		if u.SetsMomentum {
			if err := o.SetMomentum(u.Momentum); err != nil {
				return err
			}
		}
		if err := o.Step(g.Params, g.LR); err != nil {
			return fmt.Errorf("%s: group %s: %w", u.where, g.Name, err)
		}
		t.cache.bump(g.Name)
	}
	return fire(t, Hook.onAfterUpdate, u)
}

// groupIndex is the position of the group called name.
func groupIndex(groups []Group, name string) int {
	return slices.IndexFunc(groups, func(g Group) bool { return g.Name == name })
}

// NonFiniteError reports a NaN or Inf in the loss, a gradient or a weight. The step that
// saw it changed no weight (a weight is checked after its update: the run then stops
// without saving it); the last checkpoint is the last good state.
type NonFiniteError struct {
	Where  string  // stage, epoch, batch
	What   string  // loss, gradient or weight
	Tensor string  // the parameter's ONNX name, or "loss"
	Group  string  // the parameter's layer group
	Count  int     // non-finite values in the tensor
	Value  float64 // the first of them
}

func (e *NonFiniteError) Error() string {
	if e.What == "loss" {
		return fmt.Sprintf("%s: the loss is %v: lower the learning rate or set optimizer.clip_norm", e.Where, e.Value)
	}
	return fmt.Sprintf("%s: the %s of %s (group %s) has %d non-finite values (%v): lower the learning rate or set optimizer.clip_norm",
		e.Where, e.What, e.Tensor, e.Group, e.Count, e.Value)
}

// nonFiniteIn names the first tensor of params whose gradient (or value) holds a NaN or Inf.
func nonFiniteIn(where, what, group string, params []optim.Param, grad bool) *NonFiniteError {
	for _, op := range params {
		x := op.Value
		if grad {
			x = op.Grad
		}
		n, first := 0, 0.0
		for _, v := range x {
			f := float64(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				if n == 0 {
					first = f
				}
				n++
			}
		}
		if n > 0 {
			return &NonFiniteError{Where: where, What: what, Tensor: op.Name, Group: group, Count: n, Value: first}
		}
	}
	return &NonFiniteError{Where: where, What: what, Tensor: "(group " + group + ")", Group: group, Value: math.NaN()}
}

// oneHot returns label-smoothed targets: (1-eps) on the label plus eps/k everywhere.
func oneHot(labels []int, k int, eps float64) []float32 {
	out := make([]float32, len(labels)*k)
	off := float32(eps / float64(k))
	for i, l := range labels {
		row := out[i*k : (i+1)*k]
		for j := range row {
			row[j] = off
		}
		row[l] += float32(1 - eps)
	}
	return out
}

// mixedTargets are the targets of a blended batch, as torchvision's references make them:
// Lambda of each image's own smoothed one-hot target plus 1-Lambda of its partner's; and
// the dominant labels, against which accuracy is counted.
func mixedTargets(labels []int, m *dataset.Mix, k int, eps float64) ([]float32, []int) {
	own, partner := oneHot(labels, k, eps), oneHot(m.PartnerLabels[:len(labels)], k, eps)
	l, r := float32(m.Lambda), float32(1-m.Lambda)
	dominant := make([]int, len(labels))
	for i := range labels {
		dominant[i] = m.Dominant(labels, i)
	}
	for i := range own {
		own[i] = own[i]*l + partner[i]*r
	}
	return own, dominant
}

// mix derives a per-step seed (SplitMix64 of the run seed and the step).
func mix(seed, step uint64) uint64 {
	z := seed + 0x9e3779b97f4a7c15*(step+1)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
