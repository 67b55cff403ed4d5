package finetune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"toolkit/backend"
	"toolkit/backend/kernels"
	"toolkit/dataset"
	"toolkit/finetune/optim"
	"toolkit/finetune/schedule"
)

// minDelta is the least decrease of the validation loss that counts as an improvement
// for early stopping (Keras' min_delta).
const minDelta = 1e-4

// ErrInterrupted is returned by Run when its context is cancelled (Ctrl-C): the hooks
// have saved the position reached, and Resume continues from it.
var ErrInterrupted = errors.New("interrupted")

// Progress is where a run stands: the checkpointed position and the running totals of
// the epoch in progress.
type Progress struct {
	Stage      int  `json:"stage"`       // index of the current stage
	StageEpoch int  `json:"stage_epoch"` // epochs of the current stage completed
	Batch      int  `json:"batch"`       // batches of the current epoch completed
	Epoch      int  `json:"epoch"`       // epochs completed over all stages
	Step       int  `json:"step"`        // optimizer steps over all stages
	Done       bool `json:"done"`

	// Running totals of the current epoch.
	LossSum  float64            `json:"loss_sum"`
	Correct  int                `json:"correct"`
	Seen     int                `json:"seen"`
	GradNorm map[string]float64 `json:"grad_norm_sum,omitempty"`
	Seconds  float64            `json:"seconds"`

	// The best validation accuracy so far (best.onnx), and the best validation loss of
	// the stage with the epochs since it improved by minDelta (early stopping).
	BestValAcc  float64 `json:"best_val_acc"`
	BestValLoss float64 `json:"best_val_loss"`
	SinceBest   int     `json:"since_best"`
}

// EpochMetrics is one line of metrics.jsonl.
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
	Step       int                `json:"step"`
	Best       bool               `json:"best,omitempty"` // the best validation accuracy so far
	// Warnings are diagnostics of the epoch: trained groups whose gradients vanished,
	// a loss stuck at chance level.
	Warnings []string `json:"warnings,omitempty"`
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
	Loss         float64 // mean over the epoch so far
	Acc          float64
	ImagesPerSec float64
	Elapsed      time.Duration
}

// Result is what a finished run gives.
type Result struct {
	History  []EpochMetrics
	TestLoss float64
	TestAcc  float64
	HasTest  bool
}

// Run trains through the remaining stages. On cancellation of ctx it saves the position
// (through the hooks) and returns ErrInterrupted.
func (t *Trainer) Run(ctx context.Context) (*Result, error) {
	for _, h := range t.hooks {
		if sh, ok := h.(StartHook); ok {
			if err := sh.OnStart(t); err != nil {
				return nil, err
			}
		}
	}
	err := t.runStages(ctx)
	if errors.Is(err, context.Canceled) {
		err = ErrInterrupted
		for _, h := range t.hooks {
			if ih, ok := h.(InterruptHook); ok {
				if herr := ih.OnInterrupt(t); herr != nil {
					err = fmt.Errorf("%w; saving the position: %v", ErrInterrupted, herr)
				}
			}
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	res := &Result{History: t.History()}
	if t.testLoader != nil {
		if res.TestLoss, res.TestAcc, err = t.evaluate(ctx, t.testLoader); err != nil {
			return nil, fmt.Errorf("test: %w", err)
		}
		res.HasTest = true
	}
	for _, h := range t.hooks {
		if eh, ok := h.(EndHook); ok {
			if err := eh.OnEnd(t, res); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

func (t *Trainer) runStages(ctx context.Context) error {
	for t.progress.Stage < len(t.stages) {
		st := t.stages[t.progress.Stage]
		for t.progress.StageEpoch < st.cfg.Epochs {
			stop, err := t.runEpoch(ctx, st)
			if err != nil {
				return err
			}
			if stop {
				break
			}
		}
		t.progress.Stage++
		t.progress.StageEpoch = 0
		t.progress.SinceBest = 0
	}
	t.progress.Done = true
	return nil
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

func (t *Trainer) runEpoch(ctx context.Context, st stagePlan) (stop bool, err error) {
	p := &t.progress
	trained := t.trainedAt(st, p.StageEpoch)
	rates, err := st.spread.Rates(groupNames(t.groups), trained)
	if err != nil {
		return false, err
	}
	var params []string
	trainedGroups := map[string]bool{}
	for _, g := range trained {
		trainedGroups[g] = true
	}
	for _, g := range t.groups {
		if trainedGroups[g.Name] {
			params = append(params, g.Params...)
		}
	}
	t.train(params)
	batches := t.trainLoader.Len()
	total := st.cfg.Epochs * batches
	info := StepInfo{
		Stage: st.cfg.Name, StageIndex: p.Stage, StageEpoch: p.StageEpoch + 1, StageEpochs: st.cfg.Epochs,
		Epoch: p.Epoch + 1, Batches: batches,
	}
	for _, h := range t.hooks {
		if eh, ok := h.(EpochStartHook); ok {
			if err := eh.OnEpochStart(t, info); err != nil {
				return false, err
			}
		}
	}
	if p.Batch == 0 {
		p.LossSum, p.Correct, p.Seen, p.Seconds = 0, 0, 0, 0
		p.GradNorm = nil
	}
	if p.GradNorm == nil {
		p.GradNorm = map[string]float64{}
	}
	lastLR := map[string]float64{}
	started := time.Now()
	secondsBefore := p.Seconds
	for b, err := range t.trainLoader.EpochFrom(ctx, p.Epoch, p.Batch) {
		if err != nil {
			return false, err
		}
		if err := ctx.Err(); err != nil {
			// Batches decoded ahead of the cancellation are not trained on: the
			// checkpoint holds the position at the moment of the interruption.
			return false, err
		}
		prog, err := t.program(b.N, true)
		if err != nil {
			return false, err
		}
		stageStep := p.StageEpoch*batches + b.Index
		prog.Reseed(mix(t.cfg.Seed, uint64(p.Step)))
		target := oneHot(b.Labels[:b.N], t.cfg.Head.Classes, t.cfg.Loss.LabelSmoothing)
		if err := prog.Run([][]float32{b.Images[:b.N*t.data.Preprocess.Size()]}, target); err != nil {
			return false, fmt.Errorf("stage %s, epoch %d, batch %d: %w", st.cfg.Name, p.StageEpoch+1, b.Index+1, err)
		}
		loss := prog.Loss()
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return false, fmt.Errorf("stage %s, epoch %d, batch %d: the loss is %v: lower the learning rate or set optimizer.clip_norm", st.cfg.Name, p.StageEpoch+1, b.Index+1, loss)
		}
		p.LossSum += loss * float64(b.N)
		p.Correct += kernels.CorrectCount(b.N, t.cfg.Head.Classes, prog.Output(0), b.Labels[:b.N])
		p.Seen += b.N
		if err := t.update(prog, trained, rates, st.schedule, stageStep, total, lastLR); err != nil {
			return false, err
		}
		p.Step++
		p.Batch = b.Index + 1
		p.Seconds = secondsBefore + time.Since(started).Seconds()
		info.Batch = p.Batch
		info.Loss = p.LossSum / float64(p.Seen)
		info.Acc = float64(p.Correct) / float64(p.Seen)
		info.Elapsed = time.Duration(p.Seconds * float64(time.Second))
		info.ImagesPerSec = float64(p.Seen) / p.Seconds
		for _, h := range t.hooks {
			if sh, ok := h.(StepHook); ok {
				if err := sh.OnStep(t, info); err != nil {
					return false, err
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m := EpochMetrics{
		Stage: st.cfg.Name, StageIndex: p.Stage, Epoch: p.Epoch + 1, StageEpoch: p.StageEpoch + 1,
		Trained: trained, TrainLoss: p.LossSum / float64(max(p.Seen, 1)), TrainAcc: float64(p.Correct) / float64(max(p.Seen, 1)),
		LR: lastLR, GradNorm: map[string]float64{}, Seconds: p.Seconds, Step: p.Step,
	}
	if p.Seconds > 0 {
		m.ImagesPerS = float64(p.Seen) / p.Seconds
	}
	for g, s := range p.GradNorm {
		m.GradNorm[g] = s / float64(max(batches, 1))
	}
	m.Warnings = diagnose(m, t.cfg.Head.Classes)
	if t.valLoader != nil {
		vl, va, err := t.evaluate(ctx, t.valLoader)
		if err != nil {
			return false, fmt.Errorf("validation: %w", err)
		}
		m.ValLoss, m.ValAcc = &vl, &va
		if p.Epoch == 0 || va > p.BestValAcc {
			p.BestValAcc = va
			m.Best = true
		}
		if p.StageEpoch == 0 || vl < p.BestValLoss-minDelta {
			p.BestValLoss, p.SinceBest = vl, 0
		} else {
			p.SinceBest++
		}
	}
	p.Epoch++
	p.StageEpoch++
	p.Batch = 0
	t.history = append(t.history, m)
	for _, h := range t.hooks {
		if eh, ok := h.(EpochHook); ok {
			if err := eh.OnEpoch(t, m); err != nil {
				return false, err
			}
		}
	}
	patience := t.cfg.EarlyStopping.Patience
	return patience > 0 && t.valLoader != nil && p.SinceBest >= patience, nil
}

// update clips the gradients and takes one optimizer step per trained group.
func (t *Trainer) update(prog *backend.Program, trained []string, rates []float64, sch schedule.Schedule, step, total int, lastLR map[string]float64) error {
	var all []optim.Param
	byGroup := map[string][]optim.Param{}
	for _, g := range t.groups {
		if !contains(trained, g.Name) {
			continue
		}
		for _, name := range g.Params {
			grad := prog.Grad(name)
			if grad == nil {
				return fmt.Errorf("no gradient computed for %q", name)
			}
			p := optim.Param{Name: name, Value: t.model.Param(name), Grad: grad}
			byGroup[g.Name] = append(byGroup[g.Name], p)
			all = append(all, p)
		}
		t.progress.GradNorm[g.Name] += optim.GradNorm(byGroup[g.Name])
	}
	if t.cfg.Optimizer.ClipNorm > 0 {
		optim.ClipGradNorm(all, t.cfg.Optimizer.ClipNorm)
	}
	for i, g := range t.groups {
		params, ok := byGroup[g.Name]
		if !ok {
			continue
		}
		o := t.optims[g.Name]
		if m, ok := schedule.MomentumAt(sch, step, total); ok {
			if err := o.SetMomentum(m); err != nil {
				return err
			}
		}
		lr := schedule.LR(sch, rates[i], step, total)
		if err := o.Step(params, lr); err != nil {
			return fmt.Errorf("group %s: %w", g.Name, err)
		}
		lastLR[g.Name] = lr
	}
	return nil
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
	cache := t.evalPrograms
	if training {
		cache = t.trainPrograms
	}
	if p, ok := cache[batch]; ok {
		return p, nil
	}
	opts := backend.Options{Batch: batch, Training: training, Loss: backend.CrossEntropy}
	if training {
		opts.Trainable = t.trained
	}
	p, err := t.model.Program(opts)
	if err != nil {
		return nil, err
	}
	cache[batch] = p
	return p, nil
}

// evaluate returns the mean cross-entropy (without label smoothing) and the accuracy.
func (t *Trainer) evaluate(ctx context.Context, l *dataset.Loader) (loss, acc float64, err error) {
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

// mix derives a per-step seed (SplitMix64 of the run seed and the step).
func mix(seed, step uint64) uint64 {
	z := seed + 0x9e3779b97f4a7c15*(step+1)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// diagnose flags the failure the toolkit exists to avoid: a randomly initialised head
// trained together with a pretrained base at a high rate detunes the base, the head's
// ReLUs die, the loss sits at ln(classes) and every gradient upstream is zero.
func diagnose(m EpochMetrics, classes int) []string {
	var warnings []string
	for _, g := range m.Trained {
		if m.GradNorm[g] == 0 {
			warnings = append(warnings, fmt.Sprintf("group %s received no gradient this epoch (dead ReLUs?): train the head first with the base frozen, or lower the learning rate", g))
		}
	}
	chance := math.Log(float64(classes))
	if math.Abs(m.TrainLoss-chance) < 0.01*chance && m.TrainAcc <= 1.5/float64(classes) {
		warnings = append(warnings, fmt.Sprintf("the training loss %.4f is at chance level ln(%d) = %.4f: the model predicts nothing; lower the learning rate or freeze the base for the first stage", m.TrainLoss, classes, chance))
	}
	return warnings
}
