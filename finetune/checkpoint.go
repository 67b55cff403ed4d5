package finetune

import (
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"toolkit/finetune/optim"
	"toolkit/internal/atomicfile"
	"toolkit/onnx"
)

// A checkpoint is a folder: weights.onnx (the whole model, base and head, with the
// current weights and running statistics), optimizer.gob (each group's optimizer
// state) and state.json (the position and the metrics history). It is written into a
// temporary folder that then replaces the previous checkpoint, so an interruption at
// any moment leaves one complete checkpoint.

const (
	checkpointWeights   = "weights.onnx"
	checkpointOptimizer = "optimizer.gob"
	checkpointState     = "state.json"
)

type checkpointFile struct {
	Version  int            `json:"version"`
	Progress Progress       `json:"progress"`
	History  []EpochMetrics `json:"history"`
}

// SaveCheckpoint writes the trainer's state into dir (replacing what is there).
func (t *Trainer) SaveCheckpoint(dir string) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := onnx.Write(filepath.Join(tmp, checkpointWeights), t.model.Export()); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	states := map[string]*optim.State{}
	for name, o := range t.optims {
		states[name] = o.State()
	}
	if err := writeFileWith(filepath.Join(tmp, checkpointOptimizer), func(f *os.File) error {
		return gob.NewEncoder(f).Encode(states)
	}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	state := checkpointFile{Version: 1, Progress: t.progress, History: t.history}
	if err := writeFileWith(filepath.Join(tmp, checkpointState), func(f *os.File) error {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(state)
	}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	old := dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return os.RemoveAll(old)
}

// LoadCheckpoint restores weights, optimizer states, position and history from dir
// (or from the previous checkpoint, if a save was cut short while swapping folders).
func (t *Trainer) LoadCheckpoint(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, errOld := os.Stat(dir + ".old"); errOld == nil {
			dir += ".old"
		}
	}
	var state checkpointFile
	raw, err := os.ReadFile(filepath.Join(dir, checkpointState))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		return fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, checkpointState), err)
	}
	weights, err := onnx.Read(filepath.Join(dir, checkpointWeights))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	loaded := map[string]bool{}
	for _, init := range weights.Graph.Initializers {
		dst := t.model.Param(init.Name)
		if dst == nil {
			continue
		}
		loaded[init.Name] = true
		if len(dst) != len(init.Floats) {
			return fmt.Errorf("checkpoint: %s: parameter %q has %d values, the model %d: the checkpoint is of another recipe",
				dir, init.Name, len(init.Floats), len(dst))
		}
		copy(dst, init.Floats)
	}
	for _, name := range t.model.ParamNames() {
		if !loaded[name] {
			return fmt.Errorf("checkpoint: %s: the model's parameter %q is not in it: the checkpoint is of another recipe", dir, name)
		}
	}
	f, err := os.Open(filepath.Join(dir, checkpointOptimizer))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	states := map[string]*optim.State{}
	if err := gob.NewDecoder(f).Decode(&states); err != nil {
		return fmt.Errorf("checkpoint: %s: %w", f.Name(), err)
	}
	for _, name := range slices.Sorted(maps.Keys(states)) {
		if _, ok := t.optims[name]; !ok {
			return fmt.Errorf("checkpoint: optimizer state of group %q, which the recipe does not have: the checkpoint is of another recipe", name)
		}
	}
	// In the recipe's group order, so that the first mismatch reported is always the same.
	for _, g := range t.groups {
		if s, ok := states[g.Name]; ok {
			if err := t.optims[g.Name].Load(s); err != nil {
				return fmt.Errorf("checkpoint: group %s: %w", g.Name, err)
			}
		}
	}
	t.progress = state.Progress
	t.history = state.History
	return nil
}

// writeFileWith writes a file through a temporary file and a rename (mode 0666 less
// the umask).
func writeFileWith(path string, write func(*os.File) error) error {
	return atomicfile.Write(path, write)
}
