package finetune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"toolkit/finetune/lrfind"
	"toolkit/finetune/schedule"
)

// LRFindResult is a range test of one stage.
type LRFindResult struct {
	Stage      string
	StageIndex int
	Trained    []string
	// Ratios are the trained groups' rates relative to the fastest one (the stage's lr
	// spec keeps them); the sweep's rate is that group's.
	Ratios   map[string]float64
	Recorder *lrfind.Recorder
	Valley   lrfind.Suggestion
	Steep    lrfind.Suggestion
	// Line is the stage's recipe line with its rates scaled to the valley suggestion.
	Line string
}

// LRFind runs the learning-rate range test on a stage of cfg (by name; "" for the first)
// after training the stages before it, as the run would, so that the sweep starts from
// the state the stage starts from. The trainer's weights, optimizer states and position
// are restored afterwards; nothing is written.
func LRFind(ctx context.Context, cfg Config, stage string, opts lrfind.Options, options ...Option) (*LRFindResult, *Trainer, error) {
	i, err := stageIndex(cfg.Stages, stage)
	if err != nil {
		return nil, nil, err
	}
	if tr := cfg.Stages[i].Train; !tr.All && tr.Groups != nil && len(tr.Groups) == 0 {
		return nil, nil, fmt.Errorf("lr-find: stage %s (stages[%d]) trains nothing (train: []): a range test needs a trained group, e.g. train: [head] or train: all",
			cfg.Stages[i].Name, i)
	}
	if err := opts.Validate(); err != nil {
		return nil, nil, err
	}
	cfg.Diagnostics.Repair = false
	t, err := New(cfg, append([]Option{WithoutDefaultHooks()}, options...)...)
	if err != nil {
		return nil, nil, err
	}
	res, err := t.LRFind(ctx, i, opts)
	return res, t, err
}

// stageIndex finds a stage by name ("" is the first).
func stageIndex(stages []StageConfig, name string) (int, error) {
	if len(stages) == 0 {
		return 0, fmt.Errorf("lr-find: the recipe has no stages")
	}
	if name == "" {
		return 0, nil
	}
	var names []string
	for i, s := range stages {
		if s.Name == name {
			return i, nil
		}
		names = append(names, s.Name)
	}
	return 0, fmt.Errorf("lr-find: no stage %q; the stages are: %s", name, strings.Join(names, ", "))
}

// LRFind runs the range test on stage i from the trainer's state, training the stages
// before it first if the run has not reached it. Everything is restored afterwards.
func (t *Trainer) LRFind(ctx context.Context, i int, opts lrfind.Options) (out *LRFindResult, err error) {
	if i < 0 || i >= len(t.stages) {
		return nil, fmt.Errorf("lr-find: stage %d: the recipe has %d stages", i, len(t.stages))
	}
	if t.progress.Stage < i {
		all := t.stages
		t.stages = all[:i]
		err = t.runStages(ctx)
		t.stages = all
		if err != nil {
			return nil, fmt.Errorf("lr-find: training the stages before %s: %w", all[i].cfg.Name, err)
		}
		t.progress = Progress{Stage: i, Epoch: t.progress.Epoch, Step: t.progress.Step}
	}
	saved, err := t.capture()
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := t.restore(saved); rerr != nil && err == nil {
			err = rerr
		}
		clear(t.trainPrograms)
	}()
	st := t.stages[i]
	e, err := t.planEpoch(st)
	if err != nil {
		return nil, err
	}
	if len(e.trained) == 0 || len(t.trained) == 0 {
		return nil, fmt.Errorf("lr-find: stage %s trains no parameter", st.cfg.Name)
	}
	top := slices.Max(e.rates)
	out = &LRFindResult{Stage: st.cfg.Name, StageIndex: i, Trained: e.trained, Ratios: map[string]float64{}}
	base := slices.Clone(e.rates)
	for j, g := range groupNames(t.groups) {
		if base[j] > 0 {
			out.Ratios[g] = base[j] / top
		}
	}
	// The sweep: a constant schedule, every group at its ratio of the swept rate.
	e.stage.schedule = schedule.Constant{}
	rec := lrfind.NewRecorder(opts)
	size := t.data.Preprocess.Size()
	epoch := t.progress.Epoch
sweep:
	for step := 0; ; epoch++ {
		for b, err := range t.trainLoader.Epoch(ctx, epoch) {
			if err != nil {
				return nil, err
			}
			lr := opts.Rate(step)
			for j := range e.rates {
				e.rates[j] = base[j] / top * lr
			}
			r, err := t.step(e, trainBatch{Images: b.Images[:b.N*size], Labels: b.Labels[:b.N], N: b.N, Index: b.Index})
			loss := 0.0
			var nf *NonFiniteError
			switch {
			case errors.As(err, &nf):
				loss = nf.Value
				if nf.What != "loss" {
					loss = r.Loss + nf.Value // NaN or Inf: the gradient diverged
				}
			case err != nil:
				return nil, err
			default:
				loss = r.Loss
			}
			t.progress.Step++
			step++
			if rec.Add(lr, loss) || step >= opts.Steps {
				break sweep
			}
		}
	}
	out.Recorder = rec
	if out.Valley, out.Steep, err = rec.Suggest(); err != nil {
		return out, err
	}
	out.Line = StageLine(t.SuggestedStage(i, out.Valley.LR))
	return out, nil
}
