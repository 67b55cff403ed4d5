package finetune

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"toolkit/backend"
	"toolkit/dataset"
	"toolkit/finetune/optim"
)

// ErrInterrupted is returned by Run when its context is cancelled (Ctrl-C, SIGTERM): the hooks
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
	ValMacroF1 *float64           `json:"val_macro_f1,omitempty"` // the mean F1 over the validation data's classes
	ValMAP     *float64           `json:"val_map,omitempty"`      // multi-label: the mean average precision
	Thresholds []float64          `json:"thresholds,omitempty"`   // multi-label: each label's, tuned on the validation data
	LR         map[string]float64 `json:"lr"`                     // per trained group, at the epoch's last step
	GradNorm   map[string]float64 `json:"grad_norm"`              // per trained group, mean over the epoch
	ImagesPerS float64            `json:"images_per_sec"`
	Seconds    float64            `json:"seconds"`
	// DiagnosticsSeconds is the time the diagnostics took in the epoch (sampling and
	// detectors), a part of Seconds.
	DiagnosticsSeconds float64 `json:"diagnostics_seconds,omitempty"`
	// AllreduceSeconds is, over several ranks, the time the sums of the gradients took
	// in the epoch; AllreduceWaitSeconds the part of it the steps waited for after their
	// backward passes (the rest overlapped them).
	AllreduceSeconds     float64 `json:"allreduce_seconds,omitempty"`
	AllreduceWaitSeconds float64 `json:"allreduce_wait_seconds,omitempty"`
	Step                 int     `json:"step"`
	Best                 bool    `json:"best,omitempty"` // the best so far by output.best: best.onnx holds it
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
	// Groups are the step's updated groups, in the model's order, valid until the next
	// step (the loop writes every step's over the last's); Sampled says that the
	// diagnostics measured the step (diagnostics' every), which gives the groups'
	// UpdateRatio.
	Groups  []StepGroup
	Sampled bool
}

// StepGroup is one group updated at a step.
type StepGroup struct {
	Name     string
	LR       float64
	GradNorm float64 // before optimizer.clip_norm
	// UpdateRatio is the norm of the step's update of the group over the norm of its
	// weights after it, on the diagnostics' sampled steps (else 0); fastai and Karpathy
	// watch it near 1e-3.
	UpdateRatio float64
}

// Result is what a finished run gives.
type Result struct {
	History []EpochMetrics
	// Best is the epoch best.onnx holds (HasBest false without validation data).
	Best        BestEpoch
	HasBest     bool
	Findings    []Finding
	Repairs     []Repair
	TestLoss    float64
	TestAcc     float64
	TestMacroF1 float64
	// TestMAP is a multi-label task's mean average precision on the test data.
	TestMAP float64
	HasTest bool
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
		if werr := t.ckpt.Wait(); werr != nil && err == nil {
			res, err = nil, fmt.Errorf("run folder: %w", werr)
		}
	}()
	if err := t.syncStart(); err != nil {
		return nil, err
	}
	if err := fire(t, Hook.onStart, none{}); err != nil {
		return nil, err
	}
	err = t.runStages(ctx, -1)
	if errors.Is(err, context.Canceled) {
		err = ErrInterrupted
		// Every hook saves what it keeps, even after another failed: the error says
		// the last failure.
		fire(t, func(h Hook) func(*Trainer, none) error {
			f := h.onInterrupt()
			if f == nil {
				return nil
			}
			return func(t *Trainer, a none) error {
				if herr := f(t, a); herr != nil {
					err = fmt.Errorf("%w; saving the position: %v", ErrInterrupted, herr)
				}
				return nil
			}
		}, none{})
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	res = &Result{History: t.History(), Findings: t.Findings(), Repairs: t.Repairs()}
	res.Best, res.HasBest = t.Best()
	if t.testLoader != nil {
		sc, err := t.score(t.loaderContext(ctx), t.testLoader)
		if err != nil {
			return nil, fmt.Errorf("test: %w", err)
		}
		res.TestLoss, res.TestAcc, res.TestMacroF1, res.TestMAP = sc.Loss, sc.Acc, sc.MacroF1, sc.MAP
		res.HasTest = true
	}
	if err := fire(t, Hook.onEnd, res); err != nil {
		return nil, err
	}
	return res, nil
}

// runStages trains the stages from the position on, up to (not including) stage until,
// or to the end of the run for until -1 (a repair may add stages).
func (t *Trainer) runStages(ctx context.Context, until int) error {
	p := &t.progress
stages:
	for p.Stage < len(t.stages) && (until < 0 || p.Stage < until) {
		if p.StageEpoch == 0 && p.Batch == 0 {
			if err := t.stageStarts(); err != nil {
				return err
			}
		}
		st := t.stages[p.Stage]
		t.stopStage = false
		for p.StageEpoch < st.cfg.Epochs && !t.stageStopped() {
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
		if err := t.restoreStopped(); err != nil {
			return err
		}
		if err := t.applySWA(ctx); err != nil {
			return err
		}
		p.Stage++
		p.StageEpoch = 0
	}
	p.Done = p.Stage >= len(t.stages)
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
	// updated are the groups the epoch updates, in the model's order: the trained ones,
	// and with WithTrainBN the BatchNormalization parameters of the frozen ones (their
	// rates are in rates). Each parameter has its name and no_decay flag; a step's
	// updatedGroups copies them and adds the values and gradients.
	updated []GroupUpdate
	// gradLayout places the updated groups' gradients in the buffer the ranks sum
	// (nil on one rank).
	gradLayout *gradientLayout
	batches    int
	total      int // the stage's steps, for the schedule
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
	var updated []GroupUpdate
	var all []float64 // with train_bn: every group's rate as if the stage trained it
	for i, g := range t.groups {
		var names []string
		switch {
		case contains(trained, g.Name):
			names = g.Params
		case t.trainBN && len(t.bn[g.Name]) > 0:
			if all == nil {
				if all, err = st.spread.Rates(groupNames(t.groups), groupNames(t.groups)); err != nil {
					return nil, err
				}
			}
			names = t.bn[g.Name]
			rates[i] = all[i]
		default:
			continue
		}
		params = append(params, names...)
		gu := GroupUpdate{Name: g.Name, Params: make([]optim.Param, len(names))}
		for j, name := range names {
			gu.Params[j] = optim.Param{Name: name, NoDecay: t.noDecay[name]}
		}
		updated = append(updated, gu)
	}
	if r := t.plateauRates(); r != nil {
		rates = r // schedule: plateau lowered them
	}
	t.train(params)
	batches := t.trainLoader.Len()
	e := &epochPlan{stage: st, trained: trained, rates: rates, updated: updated, batches: batches, total: st.cfg.Epochs * batches}
	if t.comm.Size() > 1 {
		e.gradLayout = t.newGradientLayout(updated)
	}
	return e, nil
}

// trainBatch is what one step consumes, however it was produced.
type trainBatch struct {
	Images []float32 // N x C x H x W, preprocessed; from a cut, N activations at it
	Labels []int
	// Indices are the examples' indices in their collection (a multi-label example's
	// targets are looked up by them).
	Indices []int
	N       int
	Index   int // position in the epoch, from 0
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
		for b, err := range t.trainLoader.EpochFrom(t.loaderContext(ctx), t.progress.Epoch, t.progress.Batch) {
			if !yield(trainBatch{Images: b.Images[:b.N*size], Labels: b.Labels[:b.N], Indices: b.Indices[:b.N], N: b.N, Index: b.Index, Mix: b.Mix}, err) {
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
	t.plan = e
	info := StepInfo{
		Stage: st.cfg.Name, StageIndex: p.Stage, StageEpoch: p.StageEpoch + 1, StageEpochs: st.cfg.Epochs,
		Epoch: p.Epoch + 1, Batches: e.batches, Batch: p.Batch,
	}
	if err := fire(t, Hook.onEpochStart, info); err != nil {
		return err
	}
	info.Groups = make([]StepGroup, 0, len(e.updated)) // every step's, written over
	batches, err := t.epochBatches(ctx)
	if err != nil {
		return err
	}
	for b, err := range batches {
		if err != nil {
			return err
		}
		// Batches decoded ahead of the cancellation are not trained on: the checkpoint
		// holds the position at the moment of the interruption. Over several ranks the
		// step agrees on it first (reduceStep).
		if t.stop = ctx.Err() != nil; t.stop && t.comm.Size() == 1 {
			return ctx.Err()
		}
		started := time.Now()
		res, err := t.step(e, b)
		if err != nil {
			var nf *NonFiniteError
			if errors.As(err, &nf) {
				if herr := fire(t, Hook.onNonFinite, nf); herr != nil {
					return herr
				}
			}
			return err
		}
		res.Seconds = time.Since(started).Seconds()
		t.last = res
		p.Step++
		p.Batch = b.Index + 1
		info.Batch, info.Step, info.StepLoss = p.Batch, p.Step, res.Loss
		info.Groups, info.Sampled = info.Groups[:0], false
		for _, g := range res.Update.Groups {
			info.Groups = append(info.Groups, StepGroup{Name: g.Name, LR: g.LR, GradNorm: g.GradNorm})
		}
		if err := fire(t, Hook.onStep, &info); err != nil {
			return err
		}
	}
	if err := t.agreeStop(ctx); err != nil {
		return err
	}
	m := &EpochMetrics{
		Stage: st.cfg.Name, StageIndex: p.Stage, Epoch: p.Epoch + 1, StageEpoch: p.StageEpoch + 1,
		Trained: e.trained, Step: p.Step,
	}
	return fire(t, Hook.onEpoch, m)
}

// recordEpoch moves the position past the epoch and puts its metrics in the log.
func (t *Trainer) recordEpoch(m *EpochMetrics) {
	p := &t.progress
	p.Epoch++
	p.StageEpoch++
	p.Batch = 0
	t.log = append(t.log, Record{Epoch: m})
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

// programKey identifies a built program: its batch size and, for one that starts at a
// cut of the feature cache, the cut.
type programKey struct {
	batch int
	from  string
}

// programFrom returns the training (for the parameters set by train) or evaluation
// program for a batch size, building it once; one that takes the activations at tensor
// from instead of images (all of the model when from is empty).
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
	if t.multi {
		opts.Loss = backend.BinaryCrossEntropy
	}
	if training {
		opts.Trainable = t.trained
		opts.LossParams = backend.LossParams{FocalGamma: t.cfg.Loss.FocalGamma, PosWeight: t.posWeight}
		// The bfloat16 products round what the weight gradients read: keep it in
		// bfloat16 between the passes (half its memory; the same gradients).
		opts.SavedBF16 = t.cfg.Precision == "bf16"
		opts.NormBF16 = opts.SavedBF16
	}
	if from != "" {
		opts.From, opts.Outputs = from, t.cache.suffixOutputs(from)
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
	// A full step's (first) part: the program whose memory the run needs.
	if lo, hi := t.shard().Bounds(t.cfg.Data.stepBatch()); training && batch == (hi-lo)/t.cfg.Data.accumulate() {
		if err := t.memoryNotice(p, batch); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// evaluate returns the mean cross-entropy (without label smoothing) and the accuracy.
func (t *Trainer) evaluate(ctx context.Context, l *dataset.Loader) (loss, acc float64, err error) {
	sc, err := t.score(ctx, l)
	return sc.Loss, sc.Acc, err
}

// evalBatches yields the batches l loads, in order: the activations the feature cache
// keeps when the epoch trains from a cut and l is the validation loader (the validation
// images are never augmented), else the images.
func (t *Trainer) evalBatches(ctx context.Context, l *dataset.Loader) (iter.Seq2[trainBatch, error], error) {
	if cut := t.cache.cut; cut != nil && l == t.valLoader && t.data.Val != nil && !t.averaged() {
		fc, _, err := t.cache.features(ctx, cut, t.data.Val, &t.cache.val)
		if err != nil {
			return nil, err
		}
		order := make([]int, t.data.Val.Len())
		for i := range order {
			order[i] = i
		}
		return fc.batches(order, 0, t.cfg.Data.BatchSize, t.data.Val, t.shard()), nil
	}
	size := t.data.Preprocess.Size()
	return func(yield func(trainBatch, error) bool) {
		for b, err := range l.Epoch(ctx, 0) {
			if !yield(trainBatch{Images: b.Images[:b.N*size], Labels: b.Labels[:b.N], Indices: b.Indices[:b.N], N: b.N, Index: b.Index}, err) {
				return
			}
		}
	}, nil
}

// shard is this rank's share of every batch.
func (t *Trainer) shard() dataset.Shard {
	return dataset.Shard{Index: t.comm.Rank(), Count: t.comm.Size()}
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
