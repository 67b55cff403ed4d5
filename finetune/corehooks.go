package finetune

import (
	"context"
	"fmt"
	"time"
)

// minDelta is the least decrease of the validation loss that counts as an improvement
// for early stopping (Keras' min_delta).
const minDelta = 1e-4

// coreHooks returns the loop's own hooks, in their fixed order: metrics, validation,
// diagnostics, best, early_stopping, plateau, ema, swa, history.
func (t *Trainer) newCoreHooks() []Hook {
	hooks := []Hook{newMetricsHook(), t.validationHook(), t.diag.hook(), newBestHook(), newEarlyStoppingHook(), newPlateauHook()}
	if t.cfg.EMA.Decay > 0 {
		hooks = append(hooks, newEMAHook())
	}
	return append(hooks, newSWAHook(), historyHook())
}

// historyHook records each epoch: its metrics go into the log (History, Log,
// metrics.jsonl) and the position moves past it. The hooks after it (the run
// folder's, the caller's) see the epoch recorded; those before it, the position in it.
func historyHook() Hook {
	return Hook{Name: "history", Epoch: func(t *Trainer, m *EpochMetrics) error {
		t.recordEpoch(m)
		return nil
	}}
}

// epochTotals are the running totals of the epoch in progress.
type epochTotals struct {
	LossSum float64 `json:"loss_sum"`
	Correct int     `json:"correct"`
	Seen    int     `json:"seen"`
	// Scored counts the decisions Correct is out of (Seen, or Seen x labels for a
	// multi-label task).
	Scored   int                `json:"scored"`
	GradNorm map[string]float64 `json:"grad_norm_sum,omitempty"`
	LR       map[string]float64 `json:"lr,omitempty"`
	Seconds  float64            `json:"seconds"`
	// Allreduce and AllreduceWait are the steps' (over several ranks).
	Allreduce     float64 `json:"allreduce_seconds,omitempty"`
	AllreduceWait float64 `json:"allreduce_wait_seconds,omitempty"`
}

// newMetricsHook keeps the epoch's running totals (its state, so that an epoch resumed
// in the middle reports the numbers of the whole epoch) and fills in the training side
// of the epoch's metrics.
func newMetricsHook() Hook {
	s := &epochTotals{}
	var last time.Time
	return Hook{
		Name:  "metrics",
		State: s,
		EpochStart: func(t *Trainer, info StepInfo) error {
			if info.Batch == 0 {
				*s = epochTotals{}
			}
			last = time.Now()
			return nil
		},
		Step: func(t *Trainer, info *StepInfo) error {
			r := t.last
			now := time.Now()
			s.Seconds += now.Sub(last).Seconds()
			last = now
			s.LossSum += r.Loss * float64(r.N)
			s.Correct += r.Correct
			s.Seen += r.N
			s.Scored += r.Scored
			s.Allreduce += r.AllreduceSeconds
			s.AllreduceWait += r.AllreduceWaitSeconds
			if s.GradNorm == nil {
				s.GradNorm = map[string]float64{}
			}
			if s.LR == nil {
				s.LR = map[string]float64{}
			}
			clear(s.LR) // the last step's rates
			for _, g := range r.Update.Groups {
				s.GradNorm[g.Name] += g.GradNorm
				s.LR[g.Name] = g.LR
			}
			info.Loss = s.LossSum / float64(s.Seen)
			info.Acc = float64(s.Correct) / float64(s.Scored)
			info.Elapsed = time.Duration(s.Seconds * float64(time.Second))
			if s.Seconds > 0 {
				info.ImagesPerSec = float64(s.Seen) / s.Seconds
			}
			return nil
		},
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			m.TrainLoss = s.LossSum / float64(max(s.Seen, 1))
			m.TrainAcc = float64(s.Correct) / float64(max(s.Scored, 1))
			m.Seconds = s.Seconds
			m.AllreduceSeconds, m.AllreduceWaitSeconds = s.Allreduce, s.AllreduceWait
			if s.Seconds > 0 {
				m.ImagesPerS = float64(s.Seen) / s.Seconds
			}
			m.LR = map[string]float64{}
			for g, lr := range s.LR {
				m.LR[g] = lr
			}
			m.GradNorm = map[string]float64{}
			batches := max(t.trainLoader.Len(), 1)
			for g, sum := range s.GradNorm {
				m.GradNorm[g] = sum / float64(batches)
			}
			return nil
		},
	}
}

// validationState holds a multi-label run's thresholds: those of the weights as they
// are (tuned at the last validated epoch, or of the epoch restore_best put back).
type validationState struct {
	Thresholds []float64 `json:"thresholds,omitempty"`
}

// validationState returns the validation hook's state.
func (t *Trainer) validationState() *validationState {
	for _, h := range t.hooks {
		if s, ok := h.State.(*validationState); ok {
			return s
		}
	}
	return nil
}

// validationHook evaluates the validation data after each epoch: loss, accuracy and
// macro-F1 (multi-label: and mAP, and each label's threshold).
func (t *Trainer) validationHook() Hook {
	s := &validationState{}
	return Hook{
		Name:  "validation",
		State: s,
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			if t.valLoader == nil {
				return nil
			}
			sc, err := t.score(context.Background(), t.valLoader)
			if err != nil {
				return fmt.Errorf("validation: %w", err)
			}
			m.ValLoss, m.ValAcc, m.ValMacroF1 = &sc.Loss, &sc.Acc, &sc.MacroF1
			if t.multi {
				m.ValMAP, m.Thresholds = &sc.MAP, sc.Thresholds
				s.Thresholds = sc.Thresholds
			}
			return nil
		},
	}
}

// BestEpoch is the epoch best.onnx holds: the best by output.best so far.
type BestEpoch struct {
	Metric     string  `json:"metric"` // val_loss, val_acc, val_macro_f1 or val_map
	Mode       string  `json:"mode"`   // min or max
	Value      float64 `json:"value"`
	Epoch      int     `json:"epoch"` // over all stages, from 1
	Stage      string  `json:"stage"`
	StageEpoch int     `json:"stage_epoch"`
}

// bestState is the best epoch so far by output.best.
type bestState struct {
	Has  bool      `json:"has"`
	Best BestEpoch `json:"best"`
}

// newBestHook marks the epochs that are the best so far by output.best (the monitored
// metric improving in its mode; a tie is no improvement, so the earlier epoch stays, as
// in Keras' ModelCheckpoint); the run folder writes best.onnx at those.
func newBestHook() Hook {
	s := &bestState{}
	return Hook{
		Name:  "best",
		State: s,
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			mon := t.cfg.Output.Best
			v, ok := mon.value(m)
			if !ok {
				return nil
			}
			if !s.Has || s.Best.Metric != mon.Metric || s.Best.Mode != mon.Mode || mon.better(v, s.Best.Value, 0) {
				s.Has = true
				s.Best = BestEpoch{Metric: mon.Metric, Mode: mon.Mode, Value: v, Epoch: m.Epoch, Stage: m.Stage, StageEpoch: m.StageEpoch}
				m.Best = true
			}
			return nil
		},
	}
}

// Best returns the epoch best.onnx holds (false before a validated epoch, or without
// validation data).
func (t *Trainer) Best() (BestEpoch, bool) {
	for _, h := range t.hooks {
		if s, ok := h.State.(*bestState); ok && s.Has {
			return s.Best, true
		}
	}
	return BestEpoch{}, false
}

// earlyStoppingState is the stage's best value of the monitored metric, the epochs since
// it improved by minDelta, and whether the stage was stopped (Stopped, in stage Stage),
// its best weights still to be restored (Restore: early_stopping.restore_best; the
// weights in the weight set restore_best, the thresholds of their epoch in
// Thresholds).
type earlyStoppingState struct {
	Value      float64   `json:"value"`
	SinceBest  int       `json:"since_best"`
	Stage      int       `json:"stage"`
	Stopped    bool      `json:"stopped,omitempty"`
	Restore    bool      `json:"restore,omitempty"`
	Thresholds []float64 `json:"thresholds,omitempty"`
}

// newEarlyStoppingHook ends a stage when its monitored metric (output.best) has not
// improved by minDelta for early_stopping.patience epochs, as Keras' EarlyStopping;
// with restore_best it keeps the weights of the stage's best epoch, which the loop puts
// back when the stage ends stopped (restoreStopped).
func newEarlyStoppingHook() Hook {
	s := &earlyStoppingState{}
	return Hook{
		Name:  "early_stopping",
		State: s,
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			mon := t.cfg.Output.Best
			v, ok := mon.value(m)
			if !ok {
				return nil
			}
			es := t.cfg.EarlyStopping
			if m.StageEpoch == 1 || mon.better(v, s.Value, minDelta) {
				*s = earlyStoppingState{Value: v, Stage: m.StageIndex}
				if es.RestoreBest && es.Patience > 0 {
					t.keepWeights(setRestoreBest)
					s.Thresholds = m.Thresholds
				}
			} else {
				s.SinceBest++
			}
			if es.Patience > 0 && s.SinceBest >= es.Patience {
				s.Stopped, s.Restore = true, es.RestoreBest
				t.StopStage()
			}
			return nil
		},
	}
}

// setRestoreBest is the weight set of the stage's best epoch (early_stopping.restore_best).
const setRestoreBest = "restore_best"

// earlyStopping returns the early stopping hook's state.
func (t *Trainer) earlyStopping() *earlyStoppingState {
	for _, h := range t.hooks {
		if s, ok := h.State.(*earlyStoppingState); ok {
			return s
		}
	}
	return nil
}

// stageStopped says whether early stopping ended the current stage (also when a run
// resumes after the epoch that stopped it).
func (t *Trainer) stageStopped() bool {
	s := t.earlyStopping()
	return t.stopStage || s != nil && s.Stopped && s.Stage == t.progress.Stage
}

// restoreStopped puts back, at the end of a stage that early stopping ended with
// restore_best, the weights of the stage's best epoch and their thresholds; once.
func (t *Trainer) restoreStopped() error {
	s := t.earlyStopping()
	if s == nil || !s.Stopped || !s.Restore || s.Stage != t.progress.Stage {
		return nil
	}
	if err := t.loadWeights(setRestoreBest); err != nil {
		return err
	}
	s.Restore = false
	if v := t.validationState(); v != nil && s.Thresholds != nil {
		v.Thresholds = s.Thresholds
	}
	return t.notice("restore_best", "early stopping: the weights of the stage's best epoch put back (early_stopping.restore_best)", 0)
}
