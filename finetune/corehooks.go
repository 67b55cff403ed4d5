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
// diagnostics, best, early_stopping, history.
func (t *Trainer) newCoreHooks() []Hook {
	return []Hook{newMetricsHook(), t.validationHook(), t.diag.hook(), newBestHook(), newEarlyStoppingHook(), historyHook()}
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
			if s.GradNorm == nil {
				s.GradNorm = map[string]float64{}
			}
			s.LR = map[string]float64{}
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

// validationHook evaluates the validation data after each epoch: loss, accuracy and
// macro-F1.
func (t *Trainer) validationHook() Hook {
	return Hook{
		Name: "validation",
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
			}
			return nil
		},
	}
}

// BestEpoch is the epoch best.onnx holds: the best by output.best so far.
type BestEpoch struct {
	Metric     string  `json:"metric"` // val_loss or val_acc
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

// newBestHook marks the epochs that are the best so far by output.best (the lowest
// validation loss, or the highest validation accuracy; a tie is no improvement, so the
// earlier epoch stays, as in Keras' ModelCheckpoint); the run folder writes best.onnx
// at those.
func newBestHook() Hook {
	s := &bestState{}
	return Hook{
		Name:  "best",
		State: s,
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			if m.ValAcc == nil {
				return nil
			}
			metric := t.cfg.Output.Best
			v, better := *m.ValLoss, *m.ValLoss < s.Best.Value
			if metric == "val_acc" {
				v, better = *m.ValAcc, *m.ValAcc > s.Best.Value
			}
			if !s.Has || s.Best.Metric != metric || better {
				s.Has = true
				s.Best = BestEpoch{Metric: metric, Value: v, Epoch: m.Epoch, Stage: m.Stage, StageEpoch: m.StageEpoch}
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

// earlyStoppingState is the stage's best validation loss and the epochs since it
// improved by minDelta.
type earlyStoppingState struct {
	ValLoss   float64 `json:"val_loss"`
	SinceBest int     `json:"since_best"`
}

// newEarlyStoppingHook ends a stage when its validation loss has not improved for
// early_stopping.patience epochs.
func newEarlyStoppingHook() Hook {
	s := &earlyStoppingState{}
	return Hook{
		Name:  "early_stopping",
		State: s,
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			if m.ValLoss == nil {
				return nil
			}
			if m.StageEpoch == 1 || *m.ValLoss < s.ValLoss-minDelta {
				s.ValLoss, s.SinceBest = *m.ValLoss, 0
			} else {
				s.SinceBest++
			}
			if patience := t.cfg.EarlyStopping.Patience; patience > 0 && s.SinceBest >= patience {
				t.StopStage()
			}
			return nil
		},
	}
}
