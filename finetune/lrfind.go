package finetune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"toolkit/finetune/lrfind"
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
// before it first if the run has not reached it. The sweep is a hook on the training
// loop, as fastai's LRFinder is a callback: the stage's epochs run with the sweep's
// hook alone (no validation, diagnostics or checkpoints), on the images (a feature
// cache would cost a pass over every training image for a sweep of a hundred batches),
// until the hook ends them. Everything is restored afterwards.
func (t *Trainer) LRFind(ctx context.Context, i int, opts lrfind.Options) (out *LRFindResult, err error) {
	if i < 0 || i >= len(t.stages) {
		return nil, fmt.Errorf("lr-find: stage %d: the recipe has %d stages", i, len(t.stages))
	}
	// On several ranks (WithComm) every rank starts from rank 0's weights, as Run does;
	// the sweep's steps then reduce their losses and gradients as training's do.
	if err := t.syncStart(); err != nil {
		return nil, err
	}
	if t.progress.Stage < i {
		if err := t.runStages(ctx, i); err != nil {
			return nil, fmt.Errorf("lr-find: training the stages before %s: %w", t.stages[i].cfg.Name, err)
		}
		t.progress = Progress{Stage: i, Epoch: t.progress.Epoch, Step: t.progress.Step}
	}
	saved, err := t.capture()
	if err != nil {
		return nil, err
	}
	hooks, cacheOff := t.hooks, t.cache.off
	defer func() {
		t.hooks, t.cache.off = hooks, cacheOff
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
	for j, g := range groupNames(t.groups) {
		if e.rates[j] > 0 {
			out.Ratios[g] = e.rates[j] / top
		}
	}
	sw := &sweep{opts: opts, rec: lrfind.NewRecorder(opts), ratios: out.Ratios}
	t.hooks, t.cache.off = []Hook{sw.hook()}, true
	t.progress.Batch = 0 // the sweep starts an epoch
	for err == nil {
		err = t.runEpoch(ctx, st)
	}
	if !errors.Is(err, errSweepDone) {
		return nil, err
	}
	out.Recorder = sw.rec
	if out.Valley, out.Steep, err = sw.rec.Suggest(); err != nil {
		return out, err
	}
	out.Line = StageLine(t.SuggestedStage(i, out.Valley.LR))
	return out, nil
}

// errSweepDone is how the sweep's hook ends the epochs of lr-find.
var errSweepDone = errors.New("the sweep is done")

// sweep is lr-find's hook: at step k every trained group learns at its ratio of the
// swept rate opts.Rate(k) (the schedule's momentum left as it is); each step's loss goes
// to the recorder, which says when to stop; the sweep's epochs follow each other in the
// loader's order, all planned as the stage's first.
type sweep struct {
	opts   lrfind.Options
	rec    *lrfind.Recorder
	ratios map[string]float64
	steps  int
}

func (s *sweep) hook() Hook {
	return Hook{
		Name: "lr_find",
		BeforeUpdate: func(t *Trainer, u *Update) error {
			lr := s.opts.Rate(s.steps)
			for i := range u.Groups {
				u.Groups[i].LR = s.ratios[u.Groups[i].Name] * lr
			}
			u.SetsMomentum = false
			return nil
		},
		Step:      func(t *Trainer, info *StepInfo) error { return s.add(info.StepLoss) },
		nonFinite: func(t *Trainer, nf *NonFiniteError) error { return s.add(nf.Value) },
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			t.progress.Epoch++
			t.progress.Batch = 0
			return nil
		},
	}
}

// add records a step's loss and ends the sweep when the recorder stops or the steps
// are done.
func (s *sweep) add(loss float64) error {
	lr := s.opts.Rate(s.steps)
	s.steps++
	if s.rec.Add(lr, loss) || s.steps >= s.opts.Steps {
		return errSweepDone
	}
	return nil
}
