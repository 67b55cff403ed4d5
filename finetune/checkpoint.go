package finetune

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
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
	"unsafe"

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
const checkpointVersion = 6

// float32Bytes returns the little-endian bytes of f (nil for nil f): on a
// little-endian CPU f's own memory, without a copy, elsewhere a conversion into
// buf[:0].
func float32Bytes(buf []byte, f []float32) []byte {
	if f == nil {
		return nil
	}
	if hostLittleEndian() {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
	}
	buf, _ = binary.Append(buf[:0], binary.LittleEndian, f) // a []float32 cannot fail
	return buf
}

func hostLittleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }

// readFloat32s reads n little-endian float32 values from r.
func readFloat32s(r io.Reader, n int) ([]float32, error) {
	f := make([]float32, n)
	if hostLittleEndian() {
		_, err := io.ReadFull(r, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*n))
		return f, err
	}
	return f, binary.Read(r, binary.LittleEndian, f)
}

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

// snapshot is a trainer's whole state at one moment: a checkpoint in memory.
type snapshot struct {
	params   map[string][]float32
	optims   map[string]*optim.State
	progress Progress
	stages   []StageConfig
	log      []Record
	hooks    map[string]json.RawMessage
}

// capture copies the trainer's state.
func (t *Trainer) capture() (*snapshot, error) {
	s := &snapshot{params: map[string][]float32{}, optims: map[string]*optim.State{}, progress: t.progress,
		stages: slices.Clone(t.cfg.Stages), log: slices.Clone(t.log)}
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
	t.waitCheckpointFiles() // a checkpoint being written reads the state restore changes
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
	for _, name := range t.model.ParamNames() {
		copy(t.model.Param(name), s.params[name])
	}
	t.weightsChanged()
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
	return t.setHookStates(s.hooks)
}

// SaveCheckpoint writes the trainer's state into dir (replacing what is there). It
// writes the live weights and optimizer state as they are (no copy of them in memory).
func (t *Trainer) SaveCheckpoint(dir string) error {
	if err := t.startSave(dir, ""); err != nil {
		return err
	}
	return t.waitCheckpoint()
}

// startSave saves, on a goroutine, the trainer's state into the checkpoint folder dir
// and the model into the ONNX file model (either may be "" for none). It writes the
// files from the live weights and optimizer state (no copy of them in memory), the
// model durably in place, then makes the checkpoint's files durable and puts the
// folder in place of the previous checkpoint (commitSnapshot). The writing overlaps the
// next epoch's first forward and backward pass, the sync (a quarter to half a second
// for VGG19's 240 MB) the rest of it, instead of leaving both cores idle. Until
// waitCheckpointFiles returns nothing may change the state: the step waits before its
// optimizer update (before its forward pass when BatchNormalization updates running
// statistics there), restore before putting a state back. waitCheckpoint waits for
// the whole save; the next save, an interruption and the end of the run do.
func (t *Trainer) startSave(dir, model string) error {
	if err := t.waitCheckpoint(); err != nil {
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
	var saved *dataRecord
	if dir != "" {
		s = &snapshot{params: map[string][]float32{}, optims: map[string]*optim.State{}, progress: t.progress,
			stages: slices.Clone(t.cfg.Stages), log: slices.Clone(t.log)}
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
		// What the writer reads of the trainer itself (the model's graph, the recipe's
		// groups) is fixed when the trainer is made; the state it reads is s, and of the
		// saved data files only dir's record, which nothing else touches until the save
		// is waited for.
		weights, saved = t.exportIR(s.params), t.savedData(dir)
	}
	written, done := make(chan struct{}), make(chan error, 1)
	go func() {
		var modelErr, err error
		var wg sync.WaitGroup
		if write != nil {
			wg.Go(func() { modelErr = write() })
		}
		if dir != "" {
			err = writeSnapshotFiles(dir, weights, t.groups, s, saved)
		}
		wg.Wait()
		close(written)
		if err == nil && dir != "" {
			err = commitSnapshot(dir, saved)
		}
		done <- errors.Join(modelErr, err)
	}()
	t.checkpointReading, t.committing = written, done
	return nil
}

// savedData returns the record of the data files that the checkpoint in dir holds.
func (t *Trainer) savedData(dir string) *dataRecord {
	if t.saved == nil {
		t.saved = map[string]*dataRecord{}
	}
	r, ok := t.saved[dir]
	if !ok {
		r = &dataRecord{seed: maphash.MakeSeed()}
		t.saved[dir] = r
	}
	return r
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

// waitCheckpointFiles waits until the checkpoint being saved no longer reads the
// trainer's state.
func (t *Trainer) waitCheckpointFiles() {
	if t.checkpointReading != nil {
		<-t.checkpointReading
		t.checkpointReading = nil
	}
}

// waitCheckpoint waits for the save startSave started, if any, and
// returns its error.
func (t *Trainer) waitCheckpoint() error {
	t.waitCheckpointFiles()
	if t.committing == nil {
		return nil
	}
	err := <-t.committing
	t.committing = nil
	return err
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
	var head bytes.Buffer
	if err := gob.NewEncoder(&head).Encode(h); err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, uint64(head.Len())); err != nil {
		return err
	}
	if _, err := w.Write(head.Bytes()); err != nil {
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

// maxOptimHeader bounds the header a checkpoint may claim (a model's parameter names
// and hyperparameters: kilobytes).
const maxOptimHeader = 1 << 26

// readOptimizers reads what writeOptimizers wrote.
func readOptimizers(f *os.File) (map[string]*optim.State, error) {
	r := bufio.NewReaderSize(f, 1<<20)
	var n uint64
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("header length: %w", err)
	}
	if n > maxOptimHeader {
		return nil, fmt.Errorf("header of %d bytes: not an optimizer state file", n)
	}
	var h optimHeader
	if err := gob.NewDecoder(io.LimitReader(r, int64(n))).Decode(&h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	left := fi.Size() - 8 - int64(n) // the bytes the header's buffers may claim
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
				if left -= 4 * int64(b.n); left < 0 {
					return nil, fmt.Errorf("group %s, parameter %s, %s: %d values claimed, more than the file holds: %w", g.Name, p.Name, b.what, b.n, io.ErrUnexpectedEOF)
				}
				v, err := readFloat32s(r, b.n)
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

// writeSnapshot writes a captured state as a checkpoint folder.
func (t *Trainer) writeSnapshot(dir string, s *snapshot) error {
	saved := t.savedData(dir)
	if err := writeSnapshotFiles(dir, t.exportIR(s.params), t.groups, s, saved); err != nil {
		return err
	}
	return commitSnapshot(dir, saved)
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

// readSnapshot reads a checkpoint folder.
func (t *Trainer) readSnapshot(dir string) (*snapshot, error) {
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
		if t.model.Param(init.Name) != nil {
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
	return s, nil
}

// writeFileWith writes a file through a temporary file and a rename (mode 0666 less
// the umask).
func writeFileWith(path string, write func(*os.File) error) error {
	return atomicfile.Write(path, write)
}
