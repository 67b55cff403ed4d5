package finetune

import (
	"fmt"
	"slices"
	"strings"

	"toolkit/finetune/schedule"
)

// plateauState is the plateau hook's state: the stage it is of, and the schedule's.
type plateauState struct {
	Stage    int                   `json:"stage"`
	Schedule schedule.PlateauState `json:"schedule"`
}

// newPlateauHook runs schedule: plateau (PyTorch's ReduceLROnPlateau): after each
// validated epoch of a stage with that schedule it feeds the monitored metric
// (output.best) to the stage's schedule.Plateau, which lowers the rates after patience
// epochs without improvement; planEpoch then takes the rates it keeps.
func newPlateauHook() Hook {
	s := &plateauState{Stage: -1}
	return Hook{
		Name:  "plateau",
		State: s,
		Epoch: func(t *Trainer, m *EpochMetrics) error {
			p, ok := t.stages[m.StageIndex].schedule.(schedule.Plateau)
			if !ok || t.plan == nil {
				return nil
			}
			mon := t.cfg.Output.Best
			v, ok := mon.value(m)
			if !ok {
				return nil
			}
			if s.Stage != m.StageIndex || m.StageEpoch == 1 {
				*s = plateauState{Stage: m.StageIndex}
			}
			if !p.Step(&s.Schedule, v, mon.Mode == "max", t.plan.rates) {
				return nil
			}
			var rates []string
			for i, g := range t.groups {
				if r := s.Schedule.Rates[i]; r > 0 {
					rates = append(rates, fmt.Sprintf("%s %.3g", g.Name, r))
				}
			}
			return t.notice("plateau", fmt.Sprintf("plateau: %s has not improved for %d epochs: the rates times %g, now %s",
				mon.Metric, p.Patience+1, p.Reduce, strings.Join(rates, ", ")), 0)
		},
	}
}

// plateauRates returns the rates a plateau schedule has set for the current stage (nil:
// none yet, the stage's own).
func (t *Trainer) plateauRates() []float64 {
	for _, h := range t.hooks {
		if s, ok := h.State.(*plateauState); ok && s.Stage == t.progress.Stage {
			return slices.Clone(s.Schedule.Rates)
		}
	}
	return nil
}

// checkPlateau checks the stages that use schedule: plateau: they need validation data
// (the metric they watch) and a fixed set of groups (not gradual).
func checkPlateau(stages []StageConfig, hasValidation bool) error {
	for i, st := range stages {
		if st.Schedule.Name != "plateau" {
			continue
		}
		if !hasValidation {
			return fmt.Errorf("stages[%d] (%s): schedule: plateau watches the validation metric of output.best: give validation data (data.val or data.val_split)", i, st.Name)
		}
		if st.Gradual {
			return fmt.Errorf("stages[%d] (%s): schedule: plateau lowers the rates of the groups it trains, which gradual changes every epoch: use another schedule, or gradual: false", i, st.Name)
		}
	}
	return nil
}
