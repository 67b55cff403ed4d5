package finetune

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"toolkit/finetune/optim"
	"toolkit/onnx"
)

// snapshot is a trainer's whole state at one moment: a checkpoint in memory.
type snapshot struct {
	params   map[string][]float32
	optims   map[string]*optim.State
	progress Progress
	stages   []StageConfig
	log      []Record
	hooks    map[string]json.RawMessage
	// sets are the weight sets (weightsets.go).
	sets map[string]map[string][]float32
}

// capture copies the trainer's state.
func (t *Trainer) capture() (*snapshot, error) {
	s := &snapshot{params: map[string][]float32{}, optims: map[string]*optim.State{}, progress: t.progress,
		stages: slices.Clone(t.cfg.Stages), log: slices.Clone(t.log), sets: cloneSets(t.sets)}
	for _, name := range t.model.ParamNames() {
		s.params[name] = slices.Clone(t.model.Param(name))
	}
	for name, o := range t.optims {
		s.optims[name] = o.State()
	}
	var err error
	if s.hooks, err = t.hookStates(); err != nil {
		return nil, err
	}
	return s, nil
}

// restore puts a captured state back.
func (t *Trainer) restore(s *snapshot) error {
	t.ckpt.waitRead() // a checkpoint being written reads the state restore changes
	// Everything is checked before anything changes, in a fixed order (the model's
	// parameters, then the recipe's groups), so that the first mismatch reported is
	// always the same.
	for _, name := range t.model.ParamNames() {
		v, ok := s.params[name]
		if !ok {
			return fmt.Errorf("the model's parameter %q is not in it: the checkpoint is of another recipe", name)
		}
		if dst := t.model.Param(name); len(dst) != len(v) {
			return fmt.Errorf("parameter %q has %d values, the model %d: the checkpoint is of another recipe", name, len(v), len(dst))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.optims)) {
		if _, ok := t.optims[name]; !ok {
			return fmt.Errorf("optimizer state of group %q, which the recipe does not have: the checkpoint is of another recipe", name)
		}
	}
	for _, set := range slices.Sorted(maps.Keys(s.sets)) {
		for _, name := range slices.Sorted(maps.Keys(s.sets[set])) {
			if dst := t.model.Param(name); len(dst) != len(s.sets[set][name]) {
				return fmt.Errorf("weight set %s: parameter %q has %d values, the model %d: the checkpoint is of another recipe", set, name, len(s.sets[set][name]), len(dst))
			}
		}
	}
	for _, name := range t.model.ParamNames() {
		copy(t.model.Param(name), s.params[name])
	}
	t.cache.invalidate()
	for _, g := range t.groups {
		if st, ok := s.optims[g.Name]; ok {
			if err := t.optims[g.Name].Load(st); err != nil {
				return fmt.Errorf("group %s: %w", g.Name, err)
			}
		}
	}
	if len(s.stages) > 0 && !slices.EqualFunc(s.stages, t.cfg.Stages, func(a, b StageConfig) bool { return StageLine(a) == StageLine(b) }) {
		plans, err := planStages(s.stages, t.groups)
		if err != nil {
			return fmt.Errorf("the stages saved: %w", err)
		}
		t.cfg.Stages, t.stages = slices.Clone(s.stages), plans
	}
	t.progress = s.progress
	t.log = slices.Clone(s.log)
	t.sets = cloneSets(s.sets)
	return t.setHookStates(s.hooks)
}

// SaveCheckpoint writes the trainer's state into dir (replacing what is there). It
// writes the live weights and optimizer state as they are (no copy of them in memory).
func (t *Trainer) SaveCheckpoint(dir string) error {
	if err := t.StartSave(dir, ""); err != nil {
		return err
	}
	return t.ckpt.Wait()
}

// StartSave saves, in the background, the trainer's state into the checkpoint folder dir
// and the model into the ONNX file model (either may be "" for none), from the live
// weights and optimizer state: no copy of them in memory. The writing overlaps the next
// epoch's first forward and backward pass, the sync (a quarter to half a second for
// VGG19's 240 MB) the rest of it, instead of leaving both cores idle; the next step's
// update waits until the files are written, the next save, an interruption and the end
// of Run until the whole save is done. For hooks (the run folder's checkpoints).
func (t *Trainer) StartSave(dir, model string) error {
	if err := t.ckpt.Wait(); err != nil {
		return err
	}
	var write func() error // the model file, or nil
	if model != "" {
		m, err := t.liveModel()
		if err != nil {
			return err
		}
		write = func() error { return onnx.Write(model, m) }
	}
	var weights *onnx.Model
	var s *snapshot
	if dir != "" {
		s = &snapshot{params: map[string][]float32{}, optims: map[string]*optim.State{}, progress: t.progress,
			stages: slices.Clone(t.cfg.Stages), log: slices.Clone(t.log), sets: t.sets}
		for _, name := range t.model.ParamNames() {
			s.params[name] = t.model.Param(name)
		}
		for name, o := range t.optims {
			s.optims[name] = o.StateView()
		}
		var err error
		if s.hooks, err = t.hookStates(); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		weights = t.exportIR(s.params)
	}
	return t.ckpt.start(dir, weights, s, write)
}

// writeSnapshot writes a captured state as a checkpoint folder.
func (t *Trainer) writeSnapshot(dir string, s *snapshot) error {
	return t.ckpt.write(dir, t.exportIR(s.params), s)
}

// LoadCheckpoint restores weights, optimizer states, position, stages, log and hook
// states from dir (or from the previous checkpoint, if a save was cut short while
// swapping folders).
func (t *Trainer) LoadCheckpoint(dir string) error {
	s, err := t.readSnapshot(dir)
	if err != nil {
		return err
	}
	if err := t.restore(s); err != nil {
		return fmt.Errorf("checkpoint: %s: %w", dir, err)
	}
	return nil
}

// readSnapshot reads a checkpoint folder of this trainer's model.
func (t *Trainer) readSnapshot(dir string) (*snapshot, error) {
	return readCheckpoint(dir, func(name string) bool { return t.model.Param(name) != nil })
}
