package finetune

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"time"

	"toolkit/backend"
	"toolkit/backend/kernels"
	"toolkit/dataset"
	"toolkit/finetune/optim"
	"toolkit/finetune/schedule"
)

// ErrInterrupted is returned by Run when its context is cancelled (Ctrl-C): the hooks
// have saved the position reached, and Resume continues from it.
var ErrInterrupted = errors.New("interrupted")

// Progress is where a run stands: the position the checkpoint holds. What hooks keep
// (running totals, the best validation scores, diagnostics) is in their own state.
type Progress struct {
	Stage      int  `json:"stage"`       // index of the current stage
	StageEpoch int  `json:"stage_epoch"` // epochs of the current stage completed
	Batch      int  `json:"batch"`       // batches of the current epoch completed
	Epoch      int  `json:"epoch"`       // epochs completed over all stages
	Step       int  `json:"step"`        // optimizer steps over all stages
	Done       bool `json:"done"`
}

// EpochMetrics is one epoch's line of metrics.jsonl.
type EpochMetrics struct {
	Stage      string             `json:"stage"`
	StageIndex int                `json:"stage_index"`
	Epoch      int                `json:"epoch"`       // over all stages, from 1
	StageEpoch int                `json:"stage_epoch"` // within the stage, from 1
	Trained    []string           `json:"trained"`
	TrainLoss  float64            `json:"train_loss"`
	TrainAcc   float64            `json:"train_acc"`
	ValLoss    *float64           `json:"val_loss,omitempty"`
	ValAcc     *float64           `json:"val_acc,omitempty"`
	LR         map[string]float64 `json:"lr"`        // per trained group, at the epoch's last step
	GradNorm   map[string]float64 `json:"grad_norm"` // per trained group, mean over the epoch
	ImagesPerS float64            `json:"images_per_sec"`
	Seconds    float64            `json:"seconds"`
	// DiagnosticsSeconds is the time the diagnostics took in the epoch (sampling and
	// detectors), a part of Seconds.
	DiagnosticsSeconds float64 `json:"diagnostics_seconds,omitempty"`
	Step               int     `json:"step"`
	Best               bool    `json:"best,omitempty"` // the best validation accuracy so far
}

// StepInfo is what step hooks see after each optimizer step.
type StepInfo struct {
	Stage        string
	StageIndex   int
	StageEpoch   int // from 1
	StageEpochs  int
	Epoch        int // over all stages, from 1
	Batch        int // from 1
	Batches      int
	Step         int     // optimizer steps over all stages, this one included
	StepLoss     float64 // this step's loss
	Loss         float64 // mean over the epoch so far
	Acc          float64
	ImagesPerSec float64
	Elapsed      time.Duration
}

// Result is what a finished run gives.
type Result struct {
	History  []EpochMetrics
	Findings []Finding
	Repairs  []Repair
	TestLoss float64
	TestAcc  float64
	HasTest  bool
}

// Run trains through the remaining stages. On cancellation of ctx it saves the position
// (through the hooks) and returns ErrInterrupted.
func (t *Trainer) Run(ctx context.Context) (res *Result, err error) {
	restore, err := usePrecision(t.cfg.Precision)
	if err != nil {
		return nil, err
	}
	defer restore()
	// A checkpoint still syncing in the background is waited for on every way out.
	defer func() {
		if werr := t.waitCheckpoint(); werr != nil && err == nil {
			res, err = nil, fmt.Errorf("run folder: %w", werr)
		}
	}()
	for _, h := range t.hooks {
		if h.Start != nil {
			if err := h.Start(t); err != nil {
				return nil, fmt.Errorf("hook %s: %w", h.Name, err)
			}
		}
	}
	err = t.runStages(ctx)
	if errors.Is(err, context.Canceled) {
		err = ErrInterrupted
		for _, h := range t.hooks {
			if h.Interrupt != nil {
				if herr := h.Interrupt(t); herr != nil {
					err = fmt.Errorf("%w; saving the position: %v", ErrInterrupted, herr)
				}
			}
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	res = &Result{History: t.History(), Findings: t.Findings(), Repairs: t.Repairs()}
	if t.testLoader != nil {
		if res.TestLoss, res.TestAcc, err = t.evaluate(ctx, t.testLoader); err != nil {
			return nil, fmt.Errorf("test: %w", err)
		}
		res.HasTest = true
	}
	for _, h := range t.hooks {
		if h.End != nil {
			if err := h.End(t, res); err != nil {
				return nil, fmt.Errorf("hook %s: %w", h.Name, err)
			}
		}
	}
	return res, nil
}

func (t *Trainer) runStages(ctx context.Context) error {
	p := &t.progress
stages:
	for p.Stage < len(t.stages) {
		if p.StageEpoch == 0 && p.Batch == 0 {
			if err := t.stageStarts(); err != nil {
				return err
			}
		}
		st := t.stages[p.Stage]
		t.stopStage = false
		for p.StageEpoch < st.cfg.Epochs && !t.stopStage {
			err := t.runEpoch(ctx, st)
			var req *repairRequest
			if errors.As(err, &req) {
				if err := t.repair(req); err != nil {
					return err
				}
				continue stages // the stage, rewritten, starts again
			}
			if err != nil {
				return err
			}
		}
		p.Stage++
		p.StageEpoch = 0
	}
	p.Done = true
	return nil
}

// StopStage ends the current stage after the epoch in progress (early stopping).
func (t *Trainer) StopStage() { t.stopStage = true }

// epochPlan is what one epoch trains: the groups, their base rates and the schedule's
// length.
type epochPlan struct {
	stage   stagePlan
	trained []string  // group names, model order
	rates   []float64 // one per group of the model, 0 for a frozen one
	// bnOnly holds, with WithTrainBN, the BatchNormalization parameters trained in
	// frozen groups, by group (their rates are in rates).
	bnOnly  map[string][]string
	batches int
	total   int // the stage's steps, for the schedule
}

// trainedAt returns the groups an epoch of a stage trains: the stage's groups, or with
// gradual unfreezing, those plus one more group below them for every epoch done.
func (t *Trainer) trainedAt(st stagePlan, stageEpoch int) []string {
	if !st.cfg.Gradual {
		return st.trained
	}
	names := groupNames(t.groups)
	lowest := len(names)
	for i, n := range names {
		if contains(st.trained, n) && i < lowest {
			lowest = i
		}
	}
	from := max(lowest-stageEpoch, 0)
	return names[from:]
}

func (t *Trainer) planEpoch(st stagePlan) (*epochPlan, error) {
	trained := t.trainedAt(st, t.progress.StageEpoch)
	rates, err := st.spread.Rates(groupNames(t.groups), trained)
	if err != nil {
		return nil, err
	}
	var params []string
	var bnOnly map[string][]string
	var all []float64 // with train_bn: every group's rate as if the stage trained it
	for i, g := range t.groups {
		switch {
		case contains(trained, g.Name):
			params = append(params, g.Params...)
		case t.trainBN && len(t.bn[g.Name]) > 0:
			if all == nil {
				if all, err = st.spread.Rates(groupNames(t.groups), groupNames(t.groups)); err != nil {
					return nil, err
				}
				bnOnly = map[string][]string{}
			}
			params = append(params, t.bn[g.Name]...)
			bnOnly[g.Name] = t.bn[g.Name]
			rates[i] = all[i]
		}
	}
	t.train(params)
	batches := t.trainLoader.Len()
	return &epochPlan{stage: st, trained: trained, rates: rates, bnOnly: bnOnly, batches: batches, total: st.cfg.Epochs * batches}, nil
}

// trainBatch is what one step consumes, however it was produced.
type trainBatch struct {
	Images []float32 // N x C x H x W, preprocessed; from a cut, N activations at it
	Labels []int
	N      int
	Index  int // position in the epoch, from 0
	// From is the tensor the batch holds the values of (the feature cache's cut), empty
	// for the model's input.
	From string
	// Mix is how mixup or cutmix blended the images (nil: they did not).
	Mix *dataset.Mix
}

// batches yields the training batches of the current epoch from the current batch on.
// The step sees only trainBatch values, so another source (cached features, say) can
// stand in for the loader.
func (t *Trainer) batches(ctx context.Context) iter.Seq2[trainBatch, error] {
	size := t.data.Preprocess.Size()
	return func(yield func(trainBatch, error) bool) {
		for b, err := range t.trainLoader.EpochFrom(ctx, t.progress.Epoch, t.progress.Batch) {
			if !yield(trainBatch{Images: b.Images[:b.N*size], Labels: b.Labels[:b.N], N: b.N, Index: b.Index, Mix: b.Mix}, err) {
				return
			}
		}
	}
}

func (t *Trainer) runEpoch(ctx context.Context, st stagePlan) error {
	p := &t.progress
	e, err := t.planEpoch(st)
	if err != nil {
		return err
	}
	info := StepInfo{
		Stage: st.cfg.Name, StageIndex: p.Stage, StageEpoch: p.StageEpoch + 1, StageEpochs: st.cfg.Epochs,
		Epoch: p.Epoch + 1, Batches: e.batches, Batch: p.Batch,
	}
	for _, h := range t.hooks {
		if h.EpochStart != nil {
			if err := h.EpochStart(t, info); err != nil {
				return fmt.Errorf("hook %s: %w", h.Name, err)
			}
		}
	}
	batches, err := t.epochBatches(ctx)
	if err != nil {
		return err
	}
	for b, err := range batches {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			// Batches decoded ahead of the cancellation are not trained on: the
			// checkpoint holds the position at the moment of the interruption.
			return err
		}
		started := time.Now()
		res, err := t.step(e, b, t.diag.measureAt())
		if err != nil {
			var nf *NonFiniteError
			if errors.As(err, &nf) {
				err = t.diag.nonFinite(t, nf)
			}
			return err
		}
		res.Seconds = time.Since(started).Seconds()
		t.last = res
		p.Step++
		p.Batch = b.Index + 1
		info.Batch, info.Step, info.StepLoss = p.Batch, p.Step, res.Loss
		for _, h := range t.hooks {
			if h.Step != nil {
				if err := h.Step(t, &info); err != nil {
					return hookError(h, err)
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m := &EpochMetrics{
		Stage: st.cfg.Name, StageIndex: p.Stage, Epoch: p.Epoch + 1, StageEpoch: p.StageEpoch + 1,
		Trained: e.trained, Step: p.Step,
	}
	for i, h := range t.hooks {
		if i == t.coreHooks {
			t.recordEpoch(m)
		}
		if h.Epoch != nil {
			if err := h.Epoch(t, m); err != nil {
				return hookError(h, err)
			}
		}
	}
	if len(t.hooks) <= t.coreHooks {
		t.recordEpoch(m)
	}
	return nil
}

// recordEpoch moves the position past the epoch and puts its metrics in the log.
func (t *Trainer) recordEpoch(m *EpochMetrics) {
	p := &t.progress
	p.Epoch++
	p.StageEpoch++
	p.Batch = 0
	t.log = append(t.log, Record{Epoch: m})
}

// hookError wraps a hook's error with its name; a repair request passes through.
func hookError(h Hook, err error) error {
	var req *repairRequest
	if errors.As(err, &req) {
		return err
	}
	return fmt.Errorf("hook %s: %w", h.Name, err)
}

// stepResult is what one training step computed. Slices are valid until the next step.
type stepResult struct {
	Loss    float64
	Correct int
	N       int
	Logits  []float32
	Labels  []int
	// Per trained group: the gradient norm (before clipping) and the learning rate.
	GradNorm map[string]float64
	LR       map[string]float64
	// With measure: per trained group, the norm of the update and of the weights after it,
	// and per probe (ReLU output) its dead units and units.
	Measured   bool
	Dead       map[string][2]int
	UpdateNorm map[string]float64
	WeightNorm map[string]float64
	Seconds    float64
}

// step runs one batch forward and backward and updates the trained groups. With
// measure it also takes the norms of each group's update and weights (diagnostics'
// sampled steps). A NaN or Inf loss or gradient stops it before any weight changes.
func (t *Trainer) step(e *epochPlan, b trainBatch, measure bool) (*stepResult, error) {
	p := &t.progress
	classes := t.cfg.Head.Classes
	prog, err := t.programFrom(b.N, true, b.From)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("stage %s, epoch %d, batch %d", e.stage.cfg.Name, p.StageEpoch+1, b.Index+1)
	prog.Reseed(mix(t.cfg.Seed, uint64(p.Step)))
	if t.forwardUpdates {
		t.waitCheckpointFiles()
	}
	targets, labels := oneHot(b.Labels, classes, t.cfg.Loss.LabelSmoothing), b.Labels
	if b.Mix != nil {
		targets, labels = mixedTargets(b.Labels, b.Mix, classes, t.cfg.Loss.LabelSmoothing)
	}
	var dead map[string][2]int
	if measure {
		dead = map[string][2]int{}
		prog.Probe(func(name string, shape []int, v []float32) {
			d, u := deadUnits(v, shape)
			dead[name] = [2]int{d, u}
		})
	}
	err = prog.Run([][]float32{b.Images}, targets)
	prog.Probe(nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	r := &stepResult{
		Loss: prog.Loss(), N: b.N, Logits: prog.Output(0)[:b.N*classes], Labels: labels,
		GradNorm: map[string]float64{}, LR: map[string]float64{},
	}
	r.Correct = kernels.CorrectCount(b.N, classes, r.Logits, labels)
	if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
		return r, &NonFiniteError{Where: where, What: "loss", Tensor: "loss", Value: r.Loss}
	}
	byGroup := map[string][]optim.Param{}
	var all []optim.Param
	for _, g := range t.groups {
		names := g.Params
		if !contains(e.trained, g.Name) {
			if names = e.bnOnly[g.Name]; len(names) == 0 {
				continue
			}
		}
		for _, name := range names {
			grad := prog.Grad(name)
			if grad == nil {
				return nil, fmt.Errorf("%s: no gradient computed for %q", where, name)
			}
			op := optim.Param{Name: name, Value: t.model.Param(name), Grad: grad}
			byGroup[g.Name] = append(byGroup[g.Name], op)
			all = append(all, op)
		}
		n := optim.GradNorm(byGroup[g.Name])
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return r, nonFiniteIn(where, "gradient", g.Name, byGroup[g.Name], true)
		}
		r.GradNorm[g.Name] = n
	}
	if t.cfg.Optimizer.ClipNorm > 0 {
		optim.ClipGradNorm(all, t.cfg.Optimizer.ClipNorm)
	}
	if measure {
		began := time.Now()
		t.keepWeights(all)
		t.diag.seconds += time.Since(began).Seconds()
	}
	t.waitCheckpointFiles() // the update changes what a checkpoint being written reads
	sch := e.stage.schedule
	stageStep := p.StageEpoch*e.batches + b.Index
	for i, g := range t.groups {
		params, ok := byGroup[g.Name]
		if !ok {
			continue
		}
		o := t.optims[g.Name]
		if m, ok := schedule.MomentumAt(sch, stageStep, e.total); ok {
			if err := o.SetMomentum(m); err != nil {
				return nil, err
			}
		}
		lr := schedule.LR(sch, e.rates[i], stageStep, e.total)
		if err := o.Step(params, lr); err != nil {
			return nil, fmt.Errorf("%s: group %s: %w", where, g.Name, err)
		}
		t.weightVersion[g.Name]++
		r.LR[g.Name] = lr
	}
	if measure {
		began := time.Now()
		defer func() { t.diag.seconds += time.Since(began).Seconds() }()
		r.Measured, r.Dead = true, dead
		r.UpdateNorm, r.WeightNorm = map[string]float64{}, map[string]float64{}
		for g, params := range byGroup {
			du, w := optim.UpdateNorms(params, t.kept)
			r.UpdateNorm[g], r.WeightNorm[g] = du, w
			if math.IsNaN(w) || math.IsInf(w, 0) {
				return r, nonFiniteIn(where, "weight", g, params, false)
			}
		}
	}
	return r, nil
}

// keepWeights copies the values of params into reused buffers, to measure the update.
func (t *Trainer) keepWeights(params []optim.Param) {
	if t.kept == nil {
		t.kept = map[string][]float32{}
	}
	optim.Keep(t.kept, params)
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

// train sets the parameters the training programs compute gradients for. A new set
// drops the training programs built for the old one.
func (t *Trainer) train(params []string) {
	if slices.Equal(params, t.trained) {
		return
	}
	t.trained = params
	clear(t.trainPrograms)
}

// program returns the training (for the parameters set by train) or evaluation
// program for a batch size, building it once.
func (t *Trainer) program(batch int, training bool) (*backend.Program, error) {
	return t.programFrom(batch, training, "")
}

// programKey identifies a built program: its batch size and, for one that starts at a
// cut of the feature cache, the cut.
type programKey struct {
	batch int
	from  string
}

// programFrom is program for a program that takes the activations at tensor from
// instead of images (all of the model when from is empty).
func (t *Trainer) programFrom(batch int, training bool, from string) (*backend.Program, error) {
	cache := t.evalPrograms
	if training {
		cache = t.trainPrograms
	}
	key := programKey{batch, from}
	if p, ok := cache[key]; ok {
		return p, nil
	}
	opts := backend.Options{Batch: batch, Training: training, Loss: backend.CrossEntropy}
	if training {
		opts.Trainable = t.trained
	}
	if from != "" {
		opts.From, opts.Outputs = from, t.suffixOutputs(from)
	}
	if training && t.diag.enabled() {
		for _, p := range t.diag.probes {
			opts.Probes = append(opts.Probes, p.Tensor)
		}
	}
	p, err := t.model.Program(opts)
	if err != nil {
		return nil, err
	}
	cache[key] = p
	if training && batch == t.cfg.Data.BatchSize {
		if err := t.memoryNotice(p, batch); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// evaluate returns the mean cross-entropy (without label smoothing) and the accuracy.
func (t *Trainer) evaluate(ctx context.Context, l *dataset.Loader) (loss, acc float64, err error) {
	if loss, acc, ok, err := t.cachedEvaluate(ctx, l); ok || err != nil {
		return loss, acc, err
	}
	var sum float64
	var right, seen int
	for b, err := range l.Epoch(ctx, 0) {
		if err != nil {
			return 0, 0, err
		}
		prog, err := t.program(b.N, false)
		if err != nil {
			return 0, 0, err
		}
		target := oneHot(b.Labels[:b.N], t.cfg.Head.Classes, 0)
		if err := prog.Run([][]float32{b.Images[:b.N*t.data.Preprocess.Size()]}, target); err != nil {
			return 0, 0, err
		}
		sum += prog.Loss() * float64(b.N)
		right += kernels.CorrectCount(b.N, t.cfg.Head.Classes, prog.Output(0), b.Labels[:b.N])
		seen += b.N
	}
	if seen == 0 {
		return 0, 0, nil
	}
	return sum / float64(seen), float64(right) / float64(seen), nil
}

// Evaluate returns the model's loss and accuracy on the test data (or the validation
// data when there is no test data).
func (t *Trainer) Evaluate(ctx context.Context) (loss, acc float64, err error) {
	switch {
	case t.testLoader != nil:
		return t.evaluate(ctx, t.testLoader)
	case t.valLoader != nil:
		return t.evaluate(ctx, t.valLoader)
	}
	return 0, 0, fmt.Errorf("no test or validation data")
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
