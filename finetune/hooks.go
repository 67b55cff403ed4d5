package finetune

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Hook attaches callbacks to the training loop, the way GoMLX attaches them to its train
// loop and fastai its callbacks: each field is one point of the loop, and a nil field is
// a point the hook does not use. Because the points are typed fields, a misspelled one
// does not compile (a method named OnStpe on an interface-typed hook would silently never
// run).
//
// The loop calls hooks in a fixed order (one dispatch, fire, calls them all). First its
// own, always present:
//
//	metrics         the epoch's running totals (loss, accuracy, gradient norms, speed)
//	validation      the validation loss and accuracy after each epoch
//	diagnostics     detectors of failing runs (see Finding), sampled every few steps
//	best            the best epoch so far by output.best (EpochMetrics.Best, Trainer.Best)
//	early_stopping  ends a stage whose validation loss stopped improving
//	history         records the epoch (History, Log) and moves the position past it
//
// then the run folder's hooks (metrics.jsonl and curves.png, best.onnx, checkpoint/,
// model.onnx; left out by WithoutDefaultHooks), then the caller's hooks (WithHooks) in
// the order given.
type Hook struct {
	// Name identifies the hook in errors and, for a hook with State, in checkpoints.
	Name string

	// Start is called once before the first step (also when resuming).
	Start func(t *Trainer) error
	// EpochStart is called before each training epoch; info.Batch is the number of
	// batches already done (non-zero when resuming mid-epoch).
	EpochStart func(t *Trainer, info StepInfo) error
	// BeforeUpdate is called in every step once its gradients are computed, before the
	// optimizers update the weights: it may change the update's rates and momentum.
	BeforeUpdate func(t *Trainer, u *Update) error
	// AfterUpdate is called in every step after the optimizers updated the weights.
	AfterUpdate func(t *Trainer, u *Update) error
	// Step is called after every optimizer step. Hooks before this one may have filled
	// in info (the metrics hook sets the running loss and accuracy).
	Step func(t *Trainer, info *StepInfo) error
	// Epoch is called after every epoch; hooks earlier in the order fill m in.
	Epoch func(t *Trainer, m *EpochMetrics) error
	// Finding is called when diagnostics report a finding, at the step it is seen.
	Finding func(t *Trainer, f Finding) error
	// Repair is called when a repair rewrites the recipe (diagnostics: {repair: true}),
	// after the trainer has returned to the start of the failing stage.
	Repair func(t *Trainer, r Repair) error
	// Notice is called when the trainer reports a decision (the feature cache), once
	// per stage.
	Notice func(t *Trainer, n Notice) error
	// Interrupt is called when the run's context is cancelled, with the position
	// reached (Trainer.Progress) consistent with the weights.
	Interrupt func(t *Trainer) error
	// End is called once after the last stage, with the test metrics.
	End func(t *Trainer, r *Result) error
	// nonFinite is called when a step meets a NaN or Inf; the first hook that returns
	// an error gives the run's error (diagnostics report it, and may repair).
	nonFinite func(t *Trainer, e *NonFiniteError) error

	// State, when not nil, is a pointer to the hook's state: it is saved as JSON in every
	// checkpoint under Name, restored by Resume, and reset with the rest of the run when
	// a repair returns to the start of a stage.
	State any
}

// none is the argument of the points that take none but the trainer.
type none struct{}

// The points of a Hook as fire takes them: each returns the hook's callback there (nil
// for none), in the one signature func(*Trainer, A) error.
func (h Hook) onStart() func(*Trainer, none) error           { return noArg(h.Start) }
func (h Hook) onEpochStart() func(*Trainer, StepInfo) error  { return h.EpochStart }
func (h Hook) onStep() func(*Trainer, *StepInfo) error       { return h.Step }
func (h Hook) onBeforeUpdate() func(*Trainer, *Update) error { return h.BeforeUpdate }
func (h Hook) onAfterUpdate() func(*Trainer, *Update) error  { return h.AfterUpdate }
func (h Hook) onNonFinite() func(*Trainer, *NonFiniteError) error {
	return h.nonFinite
}
func (h Hook) onEpoch() func(*Trainer, *EpochMetrics) error { return h.Epoch }
func (h Hook) onFinding() func(*Trainer, Finding) error     { return h.Finding }
func (h Hook) onRepair() func(*Trainer, Repair) error       { return h.Repair }
func (h Hook) onNotice() func(*Trainer, Notice) error       { return h.Notice }
func (h Hook) onInterrupt() func(*Trainer, none) error      { return noArg(h.Interrupt) }
func (h Hook) onEnd() func(*Trainer, *Result) error         { return h.End }

func noArg(f func(*Trainer) error) func(*Trainer, none) error {
	if f == nil {
		return nil
	}
	return func(t *Trainer, _ none) error { return f(t) }
}

// fire calls the callback that at picks of every hook that has one, in the hooks'
// order, with a, and stops at the first error, which names the hook (hookError).
func fire[A any](t *Trainer, at func(Hook) func(*Trainer, A) error, a A) error {
	for _, h := range t.hooks {
		if f := at(h); f != nil {
			if err := f(t, a); err != nil {
				return hookError(h, err)
			}
		}
	}
	return nil
}

// hookError wraps a hook's error with its name; the loop's own errors, a repair
// request and a NaN or Inf met in training, pass through as they are.
func hookError(h Hook, err error) error {
	var req *repairRequest
	var nf *NonFiniteError
	if errors.As(err, &req) || errors.As(err, &nf) {
		return err
	}
	return fmt.Errorf("hook %s: %w", h.Name, err)
}

// hookStates returns the JSON of every stateful hook's state, by name.
func (t *Trainer) hookStates() (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	for _, h := range t.hooks {
		if h.State == nil {
			continue
		}
		raw, err := json.Marshal(h.State)
		if err != nil {
			return nil, fmt.Errorf("hook %s: state: %w", h.Name, err)
		}
		out[h.Name] = raw
	}
	return out, nil
}

// setHookStates restores the states saved by hookStates. A hook whose state is missing
// starts from its zero state.
func (t *Trainer) setHookStates(states map[string]json.RawMessage) error {
	for _, h := range t.hooks {
		if h.State == nil {
			continue
		}
		v := reflect.ValueOf(h.State)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			return fmt.Errorf("hook %s: State must be a non-nil pointer, got %T", h.Name, h.State)
		}
		v.Elem().SetZero()
		raw, ok := states[h.Name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, h.State); err != nil {
			return fmt.Errorf("hook %s: state: %w", h.Name, err)
		}
	}
	return nil
}

// checkHooks rejects hooks that cannot be checkpointed: two with state under one name,
// or a state that is not a pointer.
func checkHooks(hooks []Hook) error {
	seen := map[string]bool{}
	for i, h := range hooks {
		if h.State == nil {
			continue
		}
		if h.Name == "" {
			return fmt.Errorf("hooks[%d]: a hook with State needs a Name (its key in checkpoints)", i)
		}
		if seen[h.Name] {
			return fmt.Errorf("hooks[%d]: two hooks with state are named %q", i, h.Name)
		}
		seen[h.Name] = true
		if v := reflect.ValueOf(h.State); v.Kind() != reflect.Pointer || v.IsNil() {
			return fmt.Errorf("hook %s: State must be a non-nil pointer, got %T", h.Name, h.State)
		}
	}
	return nil
}

// Progress returns where the run stands.
func (t *Trainer) Progress() Progress { return t.progress }

// Position says where the run stands in words, as a person counts: "at the start of
// stage all (2 of 2)" (a stage whose epochs are all done is over: the position is the
// start of the next), "at the start of epoch 3 of stage head (1 of 2)", "in epoch 3 of
// stage head (1 of 2), after batch 5 of 15", or "at the end of the run".
func (t *Trainer) Position() string {
	p := t.progress
	for p.Stage < len(t.stages) && p.Batch == 0 && p.StageEpoch >= t.stages[p.Stage].cfg.Epochs {
		p.Stage, p.StageEpoch = p.Stage+1, 0
	}
	if p.Done || p.Stage >= len(t.stages) {
		return "at the end of the run"
	}
	stage := fmt.Sprintf("stage %s (%d of %d)", t.stages[p.Stage].cfg.Name, p.Stage+1, len(t.stages))
	switch {
	case p.StageEpoch == 0 && p.Batch == 0:
		return "at the start of " + stage
	case p.Batch == 0:
		return fmt.Sprintf("at the start of epoch %d of %s", p.StageEpoch+1, stage)
	}
	return fmt.Sprintf("in epoch %d of %s, after batch %d of %d", p.StageEpoch+1, stage, p.Batch, t.trainLoader.Len())
}
