package schedule

import (
	"fmt"
	"math"
)

// Plateau is PyTorch's ReduceLROnPlateau (Keras' ReduceLROnPlateau): the rates stay
// until the monitored metric has not improved for Patience epochs, then each group's
// rate is multiplied by Reduce, not below MinLR; Cooldown epochs after a reduction
// count no bad epochs. It is not a function of the step: its Factor is 1 and a
// PlateauState, fed each epoch's metric, carries the reductions.
type Plateau struct {
	Reduce   float64 // the factor of a reduction, in (0, 1) (the recipe's factor)
	Patience int     // epochs without improvement before a reduction
	Cooldown int     // epochs after a reduction before the count starts again
	MinLR    float64 // no group's rate goes below it
	// Threshold is the relative improvement that counts (PyTorch's threshold, mode
	// rel: better than best x (1 -/+ Threshold)).
	Threshold float64
}

// DefaultPlateau returns PyTorch's and Keras' defaults: factor 0.1, patience 10,
// cooldown 0, min_lr 0, threshold 1e-4.
func DefaultPlateau() Plateau {
	return Plateau{Reduce: 0.1, Patience: 10, Threshold: 1e-4}
}

// Validate checks the options.
func (p Plateau) Validate() error {
	if !(p.Reduce > 0 && p.Reduce < 1) {
		return fmt.Errorf("factor %v: must be in (0, 1)", p.Reduce)
	}
	if p.Patience < 0 {
		return fmt.Errorf("patience %d: must be >= 0", p.Patience)
	}
	if p.Cooldown < 0 {
		return fmt.Errorf("cooldown %d: must be >= 0", p.Cooldown)
	}
	if !(p.MinLR >= 0) || math.IsInf(p.MinLR, 0) {
		return fmt.Errorf("min_lr %v: must be finite and >= 0", p.MinLR)
	}
	if !(p.Threshold >= 0 && p.Threshold < 1) {
		return fmt.Errorf("threshold %v: must be in [0, 1)", p.Threshold)
	}
	return nil
}

// Factor is 1: the reductions are the PlateauState's.
func (Plateau) Factor(step, total int) float64 { return 1 }

// PlateauState is a Plateau's progress through a stage: the best metric so far, the
// bad epochs and the cooldown left, and each group's rate as reduced (nil until the
// first reduction: the stage's rates). It is JSON, for checkpoints.
type PlateauState struct {
	HasBest   bool      `json:"has_best"`
	Best      float64   `json:"best"`
	BadEpochs int       `json:"bad_epochs"`
	Cooldown  int       `json:"cooldown"`
	Rates     []float64 `json:"rates,omitempty"`
}

// Step takes an epoch's metric (lower is better with min, higher with max) and
// updates the state as ReduceLROnPlateau.step does, given the rates each group has now
// (rates, one per group, 0 for an untrained group). It reports whether it reduced them.
func (p Plateau) Step(s *PlateauState, metric float64, max bool, rates []float64) bool {
	better := metric < s.Best*(1-p.Threshold)
	if max {
		better = metric > s.Best*(1+p.Threshold)
	}
	if !s.HasBest || better {
		s.HasBest, s.Best, s.BadEpochs = true, metric, 0
	} else {
		s.BadEpochs++
	}
	if s.Cooldown > 0 {
		s.Cooldown--
		s.BadEpochs = 0
	}
	if s.BadEpochs <= p.Patience {
		return false
	}
	if s.Rates == nil {
		s.Rates = append([]float64(nil), rates...)
	}
	reduced := false
	for i, old := range s.Rates {
		if old == 0 {
			continue
		}
		if r := math.Max(old*p.Reduce, p.MinLR); old-r > 1e-8 {
			s.Rates[i], reduced = r, true
		}
	}
	s.Cooldown, s.BadEpochs = p.Cooldown, 0
	return reduced
}
