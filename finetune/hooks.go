package finetune

// Hooks attach to a run the way GoMLX attaches them to its training loop: a hook
// implements any of the interfaces below and is called at those points. Progress
// display, metrics.jsonl, curves.png, checkpoints and the best model are hooks.

// Hook is any value implementing one or more of the hook interfaces.
type Hook any

// StartHook is called once before the first step (also when resuming).
type StartHook interface {
	OnStart(t *Trainer) error
}

// EpochStartHook is called before each training epoch; info.Batch is the number of
// batches already done (non-zero when resuming mid-epoch).
type EpochStartHook interface {
	OnEpochStart(t *Trainer, info StepInfo) error
}

// StepHook is called after every optimizer step.
type StepHook interface {
	OnStep(t *Trainer, info StepInfo) error
}

// EpochHook is called after every epoch with its metrics.
type EpochHook interface {
	OnEpoch(t *Trainer, m EpochMetrics) error
}

// InterruptHook is called when the run's context is cancelled, with the position
// reached (Trainer.Progress) consistent with the weights.
type InterruptHook interface {
	OnInterrupt(t *Trainer) error
}

// EndHook is called once after the last stage, with the test metrics.
type EndHook interface {
	OnEnd(t *Trainer, r *Result) error
}

// Progress returns where the run stands.
func (t *Trainer) Progress() Progress { return t.progress }
