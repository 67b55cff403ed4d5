package finetune

import (
	"fmt"

	"toolkit/backend"
)

// memoryNotice tells, when a stage's training program for the recipe's batch size is
// built (before its first step), the memory the run holds at its peak as planned: the
// arena of the activations and gradients the model's programs share (the backend's
// plan), the weights, their gradients and the optimizer's state.
func (t *Trainer) memoryNotice(p *backend.Program, batch int) error {
	m := t.model
	arena := m.ArenaBytes()
	own := p.Memory().Own
	weights := int64(m.NumParams()) * 4
	grads := m.GradBytes()
	var trained int64
	for _, name := range t.trained {
		trained += int64(len(m.Param(name)))
	}
	state := trained * 4 * int64(optimizerSlots(t.cfg.Optimizer))
	total := arena + own + weights + grads + state
	msg := fmt.Sprintf("memory: planned peak %s at batch %d (activations and gradients %s, weights %s, their gradients %s, optimizer state %s)",
		bytesString(total), batch, bytesString(arena+own), bytesString(weights), bytesString(grads), bytesString(state))
	return t.notice("memory", msg, 0)
}

// optimizerSlots is the number of values the optimizer keeps per trained weight.
func optimizerSlots(c OptimizerConfig) int {
	switch {
	case c.Name == "adam" || c.Name == "adamw":
		return 2
	case c.Name == "sgd" && c.Momentum != 0:
		return 1
	}
	return 0
}

func bytesString(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.0f kB", float64(n)/1e3)
}
