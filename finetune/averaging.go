package finetune

import (
	"context"
	"fmt"
	"slices"

	"toolkit/backend"
)

// Weight averaging: the exponential moving average of the weights (ema, timm's
// ModelEmaV2) and stochastic weight averaging over a stage's last epochs (swa,
// PyTorch's swa_utils). Both keep their averages in a weight set (weightsets.go), which
// checkpoints hold.

const (
	setEMA = "ema"
	setSWA = "swa"
)

// EMAConfig is the ema key: an exponential moving average of the weights, the model
// exported and evaluated.
type EMAConfig struct {
	// Decay is the average's decay per optimizer step, in (0, 1): each step the average becomes decay x average + (1 - decay) x weights (timm's ModelEmaV2; 0.999 or 0.9999 usual); 0: off.
	Decay float64 `yaml:"decay"`
}

// emaState is the ema hook's state: the groups whose weights have been updated, whose
// averages every step updates (the others' averages are their weights, unchanged).
type emaState struct {
	Groups []string `json:"groups,omitempty"`
}

// newEMAHook keeps the exponential moving average of the model's values in the weight
// set ema, as timm's ModelEmaV2 does: a copy of the model at the start of the run, then
// after every optimizer update average = decay x average + (1 - decay) x value for every
// parameter and buffer (BatchNormalization's running statistics averaged as the
// weights, as ModelEmaV2 averages its state_dict), in float32 in PyTorch's order of
// operations. Only the values of groups updated at least once change: the average of
// a value never changed is the value itself (to a rounding ModelEmaV2 would make).
func newEMAHook() Hook {
	s := &emaState{}
	var values map[string][]string // each group's parameters and running statistics
	return Hook{
		Name:  "ema",
		State: s,
		Start: func(t *Trainer) error {
			if t.sets[setEMA] == nil {
				t.keepWeights(setEMA)
			}
			return nil
		},
		AfterUpdate: func(t *Trainer, u *Update) error {
			for _, g := range u.Groups {
				if !slices.Contains(s.Groups, g.Name) {
					s.Groups = append(s.Groups, g.Name)
				}
			}
			if values == nil {
				values = map[string][]string{}
				for _, g := range t.groups {
					values[g.Name] = append(slices.Clone(g.Params), t.runningStats(g)...)
				}
			}
			d := float32(t.cfg.EMA.Decay)
			e := float32(1 - t.cfg.EMA.Decay)
			set := t.sets[setEMA]
			for _, g := range s.Groups {
				for _, p := range values[g] {
					avg, v := set[p], t.model.Param(p)
					for i := range avg {
						avg[i] = avg[i]*d + e*v[i]
					}
				}
			}
			return nil
		},
	}
}

// runningStats returns the BatchNormalization running statistics (mean and variance)
// of the layers whose scales or shifts are in group g: the buffers its training updates.
func (t *Trainer) runningStats(g Group) []string {
	var out []string
	for _, n := range t.model.IR().Graph.Nodes {
		if n.OpType != "BatchNormalization" || len(n.Inputs) < 5 {
			continue
		}
		if contains(g.Params, n.Inputs[1]) || contains(g.Params, n.Inputs[2]) {
			out = append(out, n.Inputs[3], n.Inputs[4])
		}
	}
	return out
}

// averaged says whether the model is evaluated and exported with averaged weights (ema).
func (t *Trainer) averaged() bool { return t.cfg.EMA.Decay > 0 && t.sets[setEMA] != nil }

// swapEMA exchanges the model's values with the EMA's (twice: back again), so that an
// evaluation runs on the averages.
func (t *Trainer) swapEMA() {
	t.ckpt.waitRead()
	for p, avg := range t.sets[setEMA] {
		v := t.model.Param(p)
		for i := range avg {
			avg[i], v[i] = v[i], avg[i]
		}
	}
}

// exportValues returns the values an exported model carries: the EMA's with ema, else
// nil (the live weights).
func (t *Trainer) exportValues() map[string][]float32 {
	if t.averaged() {
		return t.sets[setEMA]
	}
	return nil
}

// swaState is the swa hook's state: the stage its average is of, the epochs averaged,
// and whether the average is still to be put into the model at the stage's end.
type swaState struct {
	Stage    int  `json:"stage"`
	Averaged int  `json:"averaged"`
	Due      bool `json:"due,omitempty"`
}

// newSWAHook averages, in the weight set swa, the weights at the end of each of the
// last swa epochs of a stage (PyTorch's AveragedModel: average + (weights - average) /
// (n + 1), over parameters and buffers alike), and marks the average due; the loop puts
// it into the model when the stage ends (applySWA).
func newSWAHook() Hook {
	s := &swaState{Stage: -1}
	return Hook{
		Name:  "swa",
		State: s,
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			st := t.stages[m.StageIndex].cfg
			if st.SWA == 0 || m.StageEpoch <= st.Epochs-st.SWA {
				return nil
			}
			if s.Stage != m.StageIndex {
				*s = swaState{Stage: m.StageIndex}
			}
			t.ckpt.waitRead()
			if s.Averaged == 0 {
				t.keepWeights(setSWA)
			} else {
				n := float32(s.Averaged + 1)
				for p, avg := range t.sets[setSWA] {
					v := t.model.Param(p)
					for i := range avg {
						avg[i] += (v[i] - avg[i]) / n
					}
				}
			}
			s.Averaged++
			s.Due = true
			return nil
		},
	}
}

// swaState returns the swa hook's state.
func (t *Trainer) swaState() *swaState {
	for _, h := range t.hooks {
		if s, ok := h.State.(*swaState); ok {
			return s
		}
	}
	return nil
}

// applySWA puts a stage's weight average into the model at the end of the stage (once;
// not after early stopping ended it, whose restore_best or last weights stand), then
// recomputes the BatchNormalization statistics of the groups the stage trained for the
// averaged weights, as PyTorch's swa_utils.update_bn does, and reports the average's
// validation figures in a notice.
func (t *Trainer) applySWA(ctx context.Context) error {
	s := t.swaState()
	if s == nil || !s.Due || s.Stage != t.progress.Stage {
		return nil
	}
	s.Due = false
	if t.stageStopped() {
		return nil
	}
	if err := t.loadWeights(setSWA); err != nil {
		return err
	}
	n, err := t.updateBN(ctx)
	if err != nil {
		return fmt.Errorf("swa: %w", err)
	}
	msg := fmt.Sprintf("swa: the model is the average of the weights at the end of the stage's last %d epochs", s.Averaged)
	if n > 0 {
		msg += fmt.Sprintf(", the BatchNorm statistics of %d layers recomputed over the training data", n)
	}
	if t.valLoader != nil {
		sc, err := t.score(ctx, t.valLoader)
		if err != nil {
			return fmt.Errorf("swa: validation: %w", err)
		}
		msg += fmt.Sprintf("; validation loss %.4f, accuracy %.2f%%", sc.Loss, 100*sc.Acc)
	}
	return t.notice("swa", msg, 0)
}

// updateBN recomputes the running statistics of the BatchNormalization layers that the
// current stage trains, as PyTorch's swa_utils.update_bn does: one pass of the training
// data (the last epoch's batches) in training mode, each layer's running mean and
// variance the plain average of the batches' (PyTorch's momentum None). Each batch's
// statistics are read from the running statistics the training forward pass updates
// from zero: (1 - momentum) x the batch's. It returns the number of layers.
func (t *Trainer) updateBN(ctx context.Context) (int, error) {
	type layer struct {
		mean, variance string
		momentum       float64
		sumMean        []float64
		sumVar         []float64
	}
	var layers []*layer
	var trainBN []string // the scales and shifts the pass's program "trains"
	for _, n := range t.model.IR().Graph.Nodes {
		if n.OpType != "BatchNormalization" || len(n.Inputs) < 5 || !contains(t.trained, n.Inputs[1]) && !contains(t.trained, n.Inputs[2]) {
			continue
		}
		l := &layer{mean: n.Inputs[3], variance: n.Inputs[4], momentum: float64(n.AttrFloat("momentum", 0.9))}
		l.sumMean, l.sumVar = make([]float64, len(t.model.Param(l.mean))), make([]float64, len(t.model.Param(l.variance)))
		layers = append(layers, l)
		trainBN = append(trainBN, n.Inputs[1])
	}
	if len(layers) == 0 {
		return 0, nil
	}
	t.ckpt.waitRead()
	programs := map[int]*backend.Program{}
	batches := 0
	for b, err := range t.trainLoader.Epoch(t.loaderContext(ctx), max(t.progress.Epoch-1, 0)) {
		if err != nil {
			return 0, err
		}
		if b.N == 0 {
			continue
		}
		prog, ok := programs[b.N]
		if !ok {
			var err error
			if prog, err = t.model.Program(backend.Options{Batch: b.N, Training: true, Trainable: trainBN, Loss: t.lossKind()}); err != nil {
				return 0, err
			}
			programs[b.N] = prog
		}
		for _, l := range layers {
			clear(t.model.Param(l.mean))
			clear(t.model.Param(l.variance))
		}
		prog.Reseed(mix(t.cfg.Seed, uint64(batches)))
		target := make([]float32, b.N*t.cfg.Head.Classes)
		if err := prog.Run([][]float32{b.Images[:b.N*t.data.Preprocess.Size()]}, target); err != nil {
			return 0, err
		}
		for _, l := range layers {
			for i, v := range t.model.Param(l.mean) {
				l.sumMean[i] += float64(v) / (1 - l.momentum)
			}
			for i, v := range t.model.Param(l.variance) {
				l.sumVar[i] += float64(v) / (1 - l.momentum)
			}
		}
		batches++
	}
	if batches == 0 {
		return 0, nil
	}
	for _, l := range layers {
		for i := range l.sumMean {
			t.model.Param(l.mean)[i] = float32(l.sumMean[i] / float64(batches))
			t.model.Param(l.variance)[i] = float32(l.sumVar[i] / float64(batches))
		}
	}
	if err := t.syncRunningStats(); err != nil {
		return 0, err
	}
	t.cache.invalidate()
	return len(layers), nil
}

// lossKind is the training loss of the task (the BatchNorm pass needs one to build a
// training program; its gradients are not used).
func (t *Trainer) lossKind() backend.Loss {
	if t.multi {
		return backend.BinaryCrossEntropy
	}
	return backend.CrossEntropy
}

// averagingError checks ema and the stages' swa, returning the key at fault: the decay
// in [0, 1), swa within its stage's epochs, and not both (one average at a time).
func (c *Config) averagingError() (string, error) {
	if d := c.EMA.Decay; !(d >= 0 && d < 1) {
		return "ema.decay", fmt.Errorf("%v; want 0 (off) or a decay in (0, 1), such as 0.999", d)
	}
	for i, st := range c.Stages {
		key := fmt.Sprintf("stages[%d].swa", i)
		if st.SWA < 0 || st.SWA > st.Epochs {
			return key, fmt.Errorf("%d; want 0 (off) or a number of the stage's last epochs, at most its %d", st.SWA, st.Epochs)
		}
		if st.SWA > 0 && c.EMA.Decay > 0 {
			return key, fmt.Errorf("with ema: one weight average at a time; remove ema or the stage's swa")
		}
	}
	return "", nil
}
