package finetune

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
)

// Weight sets are copies of the model's values that the loop keeps beside the weights
// (Trainer.sets, by name): the EMA's averages ("ema"), SWA's running average ("swa"),
// the stage's best weights for early_stopping.restore_best ("restore_best"). A
// checkpoint holds them (sets.bin), so that a resumed run goes on with them exactly; a
// set is changed only after ckpt.waitRead, as the weights are.

// checkpointSets is the weight sets' file in a checkpoint folder (absent without sets).
const checkpointSets = "sets.bin"

// setsHeader begins sets.bin: each set's parameters and their lengths, the values
// following as raw little-endian float32, set by set, parameter by parameter.
type setsHeader struct {
	Sets []setHeader
}

type setHeader struct {
	Name   string
	Params []setParam
}

type setParam struct {
	Name string
	Len  int
}

// writeSets writes the sets (by name, then parameter, sorted): the gob header's length
// as 8 little-endian bytes, the header, the values.
func writeSets(w io.Writer, sets map[string]map[string][]float32) error {
	var h setsHeader
	for _, name := range slices.Sorted(maps.Keys(sets)) {
		sh := setHeader{Name: name}
		for _, p := range slices.Sorted(maps.Keys(sets[name])) {
			sh.Params = append(sh.Params, setParam{Name: p, Len: len(sets[name][p])})
		}
		h.Sets = append(h.Sets, sh)
	}
	if err := writeHeader(w, h); err != nil {
		return err
	}
	var buf []byte
	for _, sh := range h.Sets {
		for _, p := range sh.Params {
			buf = float32Bytes(buf, sets[sh.Name][p.Name])
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// readSets reads what writeSets wrote.
func readSets(f *os.File) (map[string]map[string][]float32, error) {
	var h setsHeader
	r, left, err := readHeader(f, &h, "a weight sets file")
	if err != nil {
		return nil, err
	}
	out := map[string]map[string][]float32{}
	for _, sh := range h.Sets {
		set := map[string][]float32{}
		for _, p := range sh.Params {
			if p.Len < 0 {
				return nil, fmt.Errorf("set %s, parameter %s: length %d", sh.Name, p.Name, p.Len)
			}
			v, err := readClaimed(r, &left, p.Len)
			if err != nil {
				return nil, fmt.Errorf("set %s, parameter %s: %w", sh.Name, p.Name, err)
			}
			set[p.Name] = v
		}
		out[sh.Name] = set
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return nil, errors.New("bytes after the last set")
	}
	return out, nil
}

// cloneSets deep-copies weight sets.
func cloneSets(sets map[string]map[string][]float32) map[string]map[string][]float32 {
	out := map[string]map[string][]float32{}
	for name, set := range sets {
		c := map[string][]float32{}
		for p, v := range set {
			c[p] = slices.Clone(v)
		}
		out[name] = c
	}
	return out
}

// keepWeights copies the model's current values into the set called name (made on
// first use), after a checkpoint being written has read the set.
func (t *Trainer) keepWeights(name string) {
	t.ckpt.waitRead()
	set := t.sets[name]
	if set == nil {
		set = map[string][]float32{}
		t.sets[name] = set
	}
	for _, p := range t.model.ParamNames() {
		v := t.model.Param(p)
		if dst, ok := set[p]; ok && len(dst) == len(v) {
			copy(dst, v)
		} else {
			set[p] = slices.Clone(v)
		}
	}
}

// loadWeights puts the set called name into the model (the values of every parameter
// it holds), as a restore does: the feature cache is rebuilt.
func (t *Trainer) loadWeights(name string) error {
	set, ok := t.sets[name]
	if !ok {
		return fmt.Errorf("no weight set %q to load", name)
	}
	t.ckpt.waitRead()
	for p, v := range set {
		dst := t.model.Param(p)
		if len(dst) != len(v) {
			return fmt.Errorf("weight set %s: parameter %q has %d values, the model %d", name, p, len(v), len(dst))
		}
		copy(dst, v)
	}
	t.cache.invalidate()
	return nil
}
