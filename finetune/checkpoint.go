package finetune

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"toolkit/finetune/optim"
	"toolkit/internal/atomicfile"
	"toolkit/onnx"
)

// A checkpoint is a folder: weights.onnx (the whole model, base and head, with the
// current weights and running statistics; each layer group's parameters in a file of
// external data beside it, weights-N-GROUP.bin), optimizer.bin (each group's optimizer
// state) and state.json (the position and the metrics history). It is written into a
// temporary folder that then replaces the previous checkpoint, so an interruption at
// any moment leaves one complete checkpoint. A group's weights that have not changed
// since the checkpoint the folder holds (a frozen base, every epoch of a head-only
// stage) are linked from it rather than written and synced again.

const (
	checkpointWeights   = "weights.onnx"
	checkpointOptimizer = "optimizer.bin"
	checkpointState     = "state.json"
)

// checkpointVersion 2: the position only in progress, the hooks' states beside it, the
// log (epochs, findings, repairs) and the stages as run (a repair rewrites them).
// Version 3: optimizer state as a header then one value per parameter, so that neither
// writing nor reading holds a second copy of all the optimizer state in memory.
// Version 4: the per-parameter state as raw float32 bytes (gob's encoding value by value
// took 1.6 s for VGG19's Adam state).
// Version 5: optimizer.bin, the gob header then the raw bytes themselves, unframed (gob's
// framing of 160 MB of Adam state cost a copy through its buffer: 0.5-0.9 s a checkpoint
// against 0.1 s); each group's weights in a data file beside weights.onnx.
// Version 6: the best hook's state is the best epoch by output.best (val_loss by
// default), not the best validation accuracy.
// Version 7: sets.bin, the weight sets (EMA, SWA, restore_best); the best epoch and
// early stopping by output.best's metric and mode.
const checkpointVersion = 7

// optimHeader begins optimizer.bin: each group's optimizer and, per parameter, its step
// and the lengths of its state's buffers (-1 for none). The buffers follow the header
// as raw little-endian float32 values, parameter by parameter in this order, each
// parameter's momentum buffer, exp_avg and exp_avg_sq.
type optimHeader struct {
	Groups []optimGroup
}

type optimGroup struct {
	Name      string
	Optimizer string
	Hyper     optim.Hyper
	Params    []optimParam
}

type optimParam struct {
	Name                             string
	Step                             int64
	MomentumBuffer, ExpAvg, ExpAvgSq int
}

// stateLen is a buffer's length in optimParam: -1 for nil.
func stateLen(f []float32) int {
	if f == nil {
		return -1
	}
	return len(f)
}

type checkpointFile struct {
	Version  int                        `json:"version"`
	Progress Progress                   `json:"progress"`
	Stages   []StageConfig              `json:"stages"`
	Log      []Record                   `json:"log"`
	Hooks    map[string]json.RawMessage `json:"hooks"`
}

// dataRecord says which weights the external data files of one checkpoint folder hold,
// as a fingerprint per file (under seed, the folder's own); committed is the record of
// the folder on disk, pending that of the folder being written beside it.
type dataRecord struct {
	seed               maphash.Seed
	committed, pending map[string]uint64
}

// dataFiles places each layer group's parameters in a file of external data.
func dataFiles(weights *onnx.Model, groups []Group) []onnx.ExternalFile {
	var files []onnx.ExternalFile
	for i, g := range groups {
		f := onnx.ExternalFile{Location: dataFileName(i, g.Name)}
		for _, p := range g.Params {
			if init := weights.Graph.Initializer(p); init != nil && init.DataType.IsFloat() {
				f.Tensors = append(f.Tensors, p)
			}
		}
		if len(f.Tensors) > 0 {
			files = append(files, f)
		}
	}
	return files
}

// dataFileName names the data file of the i-th group (from 0).
func dataFileName(i int, group string) string {
	return fmt.Sprintf("weights-%d-%s.bin", i+1, fileSafe(group))
}

// fileSafe keeps the letters, digits, '-' and '_' of a group name for a file name.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_') {
			return r
		}
		return '_'
	}, name)
}

// fingerprint identifies the contents of a data file: its tensors' names, shapes and
// values.
func fingerprint(seed maphash.Seed, weights *onnx.Model, f onnx.ExternalFile) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, name := range f.Tensors {
		init := weights.Graph.Initializer(name)
		h.WriteString(name)
		for _, d := range init.Dims {
			maphash.WriteComparable(&h, d)
		}
		h.Write(float32Bytes(nil, init.Floats))
	}
	return h.Sum64()
}

// writeOptimizers writes the optimizer states: the length of the gob-encoded
// optimHeader as 8 little-endian bytes, the header, then every parameter's buffers, in
// the recipe's group order, straight from where they are.
func writeOptimizers(w io.Writer, groups []Group, states map[string]*optim.State) error {
	var h optimHeader
	for _, g := range groups {
		st, ok := states[g.Name]
		if !ok {
			continue
		}
		og := optimGroup{Name: g.Name, Optimizer: st.Optimizer, Hyper: st.Hyper}
		for _, name := range slices.Sorted(maps.Keys(st.Params)) {
			ps := st.Params[name]
			og.Params = append(og.Params, optimParam{Name: name, Step: ps.Step,
				MomentumBuffer: stateLen(ps.MomentumBuffer), ExpAvg: stateLen(ps.ExpAvg), ExpAvgSq: stateLen(ps.ExpAvgSq)})
		}
		h.Groups = append(h.Groups, og)
	}
	if err := writeHeader(w, h); err != nil {
		return err
	}
	var buf []byte // reused on big-endian hosts; on little-endian ones each buffer's own memory
	for _, g := range h.Groups {
		for _, p := range g.Params {
			ps := states[g.Name].Params[p.Name]
			for _, f := range [][]float32{ps.MomentumBuffer, ps.ExpAvg, ps.ExpAvgSq} {
				buf = float32Bytes(buf, f)
				if _, err := w.Write(buf); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readOptimizers reads what writeOptimizers wrote.
func readOptimizers(f *os.File) (map[string]*optim.State, error) {
	var h optimHeader
	r, left, err := readHeader(f, &h, "an optimizer state file")
	if err != nil {
		return nil, err
	}
	out := map[string]*optim.State{}
	for _, g := range h.Groups {
		st := &optim.State{Optimizer: g.Optimizer, Hyper: g.Hyper, Params: map[string]optim.ParamState{}}
		for _, p := range g.Params {
			ps := optim.ParamState{Step: p.Step}
			for _, b := range []struct {
				dst  *[]float32
				n    int
				what string
			}{{&ps.MomentumBuffer, p.MomentumBuffer, "momentum"}, {&ps.ExpAvg, p.ExpAvg, "exp_avg"}, {&ps.ExpAvgSq, p.ExpAvgSq, "exp_avg_sq"}} {
				if b.n < 0 {
					continue
				}
				v, err := readClaimed(r, &left, b.n)
				if err != nil {
					return nil, fmt.Errorf("group %s, parameter %s, %s: %w", g.Name, p.Name, b.what, err)
				}
				*b.dst = v
			}
			st.Params[p.Name] = ps
		}
		out[g.Name] = st
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return nil, errors.New("bytes after the last parameter's state")
	}
	return out, nil
}

// writeSnapshotFiles writes the files of the checkpoint for dir into the folder dir.tmp
// (made anew), without syncing them (commitSnapshot does): the model with the
// snapshot's weights, each group's in a data file (linked from dir where saved says it
// holds the same weights), the optimizer states in the groups' order, the rest of the
// state. saved.pending records the data files written.
func writeSnapshotFiles(dir string, weights *onnx.Model, groups []Group, s *snapshot, saved *dataRecord) error {
	tmp := dir + ".tmp"
	saved.pending = nil
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	// The two large files are written side by side, one per core.
	var weightsErr error
	var wg sync.WaitGroup
	wg.Go(func() { weightsErr = writeWeights(dir, weights, groups, saved) })
	optimErr := createFile(filepath.Join(tmp, checkpointOptimizer), func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<20) // the small tensors' state in few writes
		if err := writeOptimizers(w, groups, s.optims); err != nil {
			return err
		}
		return w.Flush()
	})
	wg.Wait()
	if err := errors.Join(weightsErr, optimErr); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if len(s.sets) > 0 {
		if err := createFile(filepath.Join(tmp, checkpointSets), func(f *os.File) error {
			w := bufio.NewWriterSize(f, 1<<20)
			if err := writeSets(w, s.sets); err != nil {
				return err
			}
			return w.Flush()
		}); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	state := checkpointFile{Version: checkpointVersion, Progress: s.progress, Stages: s.stages, Log: s.log, Hooks: s.hooks}
	if err := createFile(filepath.Join(tmp, checkpointState), func(f *os.File) error {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(state)
	}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// writeWeights writes weights.onnx into dir.tmp and each group's weights into its data
// file there, or links the file from dir where saved says dir holds the same weights.
func writeWeights(dir string, weights *onnx.Model, groups []Group, saved *dataRecord) error {
	tmp := dir + ".tmp"
	files := dataFiles(weights, groups)
	pending := map[string]uint64{}
	for _, f := range files {
		fp := fingerprint(saved.seed, weights, f)
		pending[f.Location] = fp
		if old, ok := saved.committed[f.Location]; ok && old == fp &&
			os.Link(filepath.Join(dir, f.Location), filepath.Join(tmp, f.Location)) == nil {
			continue
		}
		if err := createFile(filepath.Join(tmp, f.Location), func(w *os.File) error {
			return onnx.WriteExternalData(w, weights, f)
		}); err != nil {
			return err
		}
	}
	saved.pending = pending
	return createFile(filepath.Join(tmp, checkpointWeights), func(w *os.File) error {
		return onnx.WriteToExternal(w, weights, files)
	})
}

// commitSnapshot makes the files writeSnapshotFiles put in dir.tmp durable and swaps
// that folder in for dir: dir moves to dir.old, dir.tmp to dir, and dir.old goes, so
// that at every moment one complete checkpoint is on disk (readSnapshot falls back on
// dir.old). saved's pending record becomes the committed one.
func commitSnapshot(dir string, saved *dataRecord) error {
	tmp := dir + ".tmp"
	saved.committed = nil // until the swap is done, dir holds nothing known
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	for _, e := range entries {
		if err := atomicfile.Sync(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	if err := atomicfile.Sync(tmp); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	old := dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	// The renames themselves; not every system can sync a folder.
	atomicfile.Sync(filepath.Dir(dir))
	saved.committed, saved.pending = saved.pending, nil
	return nil
}

// createFile writes a new file (mode 0666 less the umask) with what write puts in it.
func createFile(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeFileWith writes a file through a temporary file and a rename (mode 0666 less
// the umask).
func writeFileWith(path string, write func(*os.File) error) error {
	return atomicfile.Write(path, write)
}

// checkpointWriter writes checkpoint folders in the format above, one save at a time in
// the background (start): the save writes its files from the live state while the
// training goes on, so nothing may change that state until waitRead returns (the step
// waits before its optimizer update, before its forward pass where BatchNormalization
// updates running statistics there, a restore before putting a state back); it then
// syncs them and swaps the folder in for the previous checkpoint until Wait returns
// (the next save, an interruption and the end of the run wait).
type checkpointWriter struct {
	groups []Group
	// saved records, by checkpoint folder, the weights its data files hold.
	saved map[string]*dataRecord
	// reading is closed when the save under way has written its files; done then
	// delivers its result. Both are nil when no save is under way.
	reading chan struct{}
	done    chan error
}

func newCheckpointWriter(groups []Group) *checkpointWriter {
	return &checkpointWriter{groups: groups, saved: map[string]*dataRecord{}}
}

// start saves, on a goroutine, the state s with the model weights into the checkpoint
// folder dir (none for "") and runs model (a model file's writing; nil for none) beside
// it, after waiting for the save before. What the save reads of the trainer is s and
// weights, which share the live values, and dir's record of data files, which nothing
// else touches until the save is waited for.
func (w *checkpointWriter) start(dir string, weights *onnx.Model, s *snapshot, model func() error) error {
	if err := w.Wait(); err != nil {
		return err
	}
	var saved *dataRecord
	if dir != "" {
		saved = w.record(dir)
	}
	reading, done := make(chan struct{}), make(chan error, 1)
	go func() {
		var modelErr, err error
		var wg sync.WaitGroup
		if model != nil {
			wg.Go(func() { modelErr = model() })
		}
		if dir != "" {
			err = writeSnapshotFiles(dir, weights, w.groups, s, saved)
		}
		wg.Wait()
		close(reading)
		if err == nil && dir != "" {
			err = commitSnapshot(dir, saved)
		}
		done <- errors.Join(modelErr, err)
	}()
	w.reading, w.done = reading, done
	return nil
}

// write saves the state s with the model weights into dir now, beside any save under
// way (into another folder).
func (w *checkpointWriter) write(dir string, weights *onnx.Model, s *snapshot) error {
	saved := w.record(dir)
	if err := writeSnapshotFiles(dir, weights, w.groups, s, saved); err != nil {
		return err
	}
	return commitSnapshot(dir, saved)
}

// record returns the record of the data files that the checkpoint in dir holds.
func (w *checkpointWriter) record(dir string) *dataRecord {
	r, ok := w.saved[dir]
	if !ok {
		r = &dataRecord{seed: maphash.MakeSeed()}
		w.saved[dir] = r
	}
	return r
}

// waitRead waits until the save under way no longer reads the trainer's state.
func (w *checkpointWriter) waitRead() {
	if w.reading != nil {
		<-w.reading
		w.reading = nil
	}
}

// Wait waits for the save under way, if any, and returns its error.
func (w *checkpointWriter) Wait() error {
	w.waitRead()
	if w.done == nil {
		return nil
	}
	err := <-w.done
	w.done = nil
	return err
}

// readCheckpoint reads a checkpoint folder (or the previous checkpoint, dir.old, if a
// save was cut short while swapping folders); params keeps the values of the weights
// whose names it accepts.
func readCheckpoint(dir string, param func(name string) bool) (*snapshot, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, errOld := os.Stat(dir + ".old"); errOld == nil {
			dir += ".old"
		}
	}
	var state checkpointFile
	raw, err := os.ReadFile(filepath.Join(dir, checkpointState))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, checkpointState), err)
	}
	if state.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint: %s is version %d; this toolkit reads version %d (start the run again)",
			filepath.Join(dir, checkpointState), state.Version, checkpointVersion)
	}
	weights, err := onnx.Read(filepath.Join(dir, checkpointWeights))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	s := &snapshot{params: map[string][]float32{}, optims: map[string]*optim.State{}, progress: state.Progress,
		stages: state.Stages, log: state.Log, hooks: state.Hooks}
	for _, init := range weights.Graph.Initializers {
		if param(init.Name) {
			s.params[init.Name] = init.Floats
		}
	}
	f, err := os.Open(filepath.Join(dir, checkpointOptimizer))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	if s.optims, err = readOptimizers(f); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", f.Name(), err)
	}
	sf, err := os.Open(filepath.Join(dir, checkpointSets))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("checkpoint: %w", err)
	default:
		defer sf.Close()
		if s.sets, err = readSets(sf); err != nil {
			return nil, fmt.Errorf("checkpoint: %s: %w", sf.Name(), err)
		}
	}
	return s, nil
}
