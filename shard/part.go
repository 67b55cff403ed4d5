package shard

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"toolkit/internal/atomicfile"
)

// Header describes a part: the command and shard that wrote it, the examples it holds,
// and its JSON sections and arrays (see the package's doc).
type Header struct {
	Command string `json:"command"` // the toolkit command: evaluate, predict, extract
	Shard   Spec   `json:"shard"`
	// Lo and Hi bound the examples the part holds, of Total in the job.
	Lo    int `json:"lo"`
	Hi    int `json:"hi"`
	Total int `json:"total"`
	// Job is what the command line asked, the same in every part and in the merge.
	Job json.RawMessage `json:"job"`
	// Shared is what the shard found of the whole input, the same in every part.
	Shared json.RawMessage `json:"shared"`
	// Own is the part's own results that are not arrays.
	Own json.RawMessage `json:"own,omitempty"`
	// Arrays follow the header in this order.
	Arrays []Array `json:"arrays,omitempty"`
}

// Array is one of a part's binary arrays: Len values of Type (float32 or float64),
// little-endian.
type Array struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Len  int    `json:"len"`
}

// The array types.
const (
	Float32 = "float32"
	Float64 = "float64"
)

func (a Array) bytes() (int64, error) {
	switch a.Type {
	case Float32:
		return 4 * int64(a.Len), nil
	case Float64:
		return 8 * int64(a.Len), nil
	}
	return 0, fmt.Errorf("array %s: unknown type %q", a.Name, a.Type)
}

// magic starts every part file (version 1 of the format).
var magic = []byte("toolkit part 1\n")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Path is the part file of shard s of command in dir: dir/COMMAND-I-of-N.part.
func Path(dir, command string, s Spec) string {
	return filepath.Join(dir, fmt.Sprintf("%s-%d-of-%d.part", command, s.Index, s.Count))
}

// Write writes a part to path, atomically (internal/atomicfile: the path holds the whole
// part or what it held before): h, then the arrays h.Arrays declares, which fill writes
// through w in their order.
func Write(path string, h Header, fill func(w *Writer) error) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, a := range h.Arrays {
		if _, err := a.bytes(); err != nil || a.Len < 0 {
			return fmt.Errorf("%s: array %s of %d %s values", path, a.Name, a.Len, a.Type)
		}
	}
	return atomicfile.Write(path, func(f *os.File) error {
		buf := bufio.NewWriterSize(f, 1<<20)
		w := &Writer{crc: crc32.New(castagnoli), arrays: h.Arrays}
		w.out = io.MultiWriter(buf, w.crc)
		w.out.Write(magic)
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(raw)))
		w.out.Write(n[:])
		w.out.Write(raw)
		if err := fill(w); err != nil {
			return err
		}
		if w.err != nil {
			return w.err
		}
		if w.advance(); w.cur < len(w.arrays) {
			a := w.arrays[w.cur]
			return fmt.Errorf("array %s: %d of its %d values written", a.Name, w.done, a.Len)
		}
		var sum [4]byte
		binary.LittleEndian.PutUint32(sum[:], w.crc.Sum32())
		buf.Write(sum[:])
		return buf.Flush()
	})
}

// Writer writes a part's arrays, in the order its header declares them.
type Writer struct {
	out    io.Writer
	crc    hash.Hash32
	arrays []Array
	cur    int // the array being written
	done   int // its values written
	err    error
	b      []byte
}

// advance moves past the arrays that are complete.
func (w *Writer) advance() {
	for w.cur < len(w.arrays) && w.done == w.arrays[w.cur].Len {
		w.cur, w.done = w.cur+1, 0
	}
}

// next checks that n values of typ may be written now, into the first array that is
// not complete.
func (w *Writer) next(typ string, n int) error {
	if w.err != nil || n == 0 {
		return w.err
	}
	w.advance()
	if w.cur >= len(w.arrays) {
		w.err = fmt.Errorf("%d %s values more than the part's arrays hold", n, typ)
		return w.err
	}
	a := w.arrays[w.cur]
	if a.Type != typ || w.done+n > a.Len {
		w.err = fmt.Errorf("array %s: %d %s values after %d of its %d %s values", a.Name, n, typ, w.done, a.Len, a.Type)
		return w.err
	}
	w.done += n
	return nil
}

// Float32s writes values of a float32 array.
func (w *Writer) Float32s(v []float32) error {
	if err := w.next(Float32, len(v)); err != nil {
		return err
	}
	w.b = slices.Grow(w.b[:0], 4*len(v))[:4*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint32(w.b[4*i:], math.Float32bits(x))
	}
	_, w.err = w.out.Write(w.b)
	return w.err
}

// Float64s writes values of a float64 array.
func (w *Writer) Float64s(v []float64) error {
	if err := w.next(Float64, len(v)); err != nil {
		return err
	}
	w.b = slices.Grow(w.b[:0], 8*len(v))[:8*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint64(w.b[8*i:], math.Float64bits(x))
	}
	_, w.err = w.out.Write(w.b)
	return w.err
}

// Part is a part file as Open read it: its header, and where its arrays are.
type Part struct {
	Path string
	Header
	offsets []int64 // of each array in the file
}

// Open reads a part's header and checks the file: its format, its length against the
// arrays its header declares, and its checksum.
func Open(path string) (*Part, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: not a whole part file: %s", path, fmt.Sprintf(format, args...))
	}
	crc := crc32.New(castagnoli)
	br := bufio.NewReaderSize(f, 1<<20)
	r := io.TeeReader(br, crc) // the checksum covers everything before it
	head := make([]byte, len(magic)+8)
	if _, err := io.ReadFull(r, head); err != nil || !bytes.Equal(head[:len(magic)], magic) {
		return nil, fmt.Errorf("%s: not a part file of the toolkit (no %q at its start)", path, strings.TrimSpace(string(magic)))
	}
	n := binary.LittleEndian.Uint64(head[len(magic):])
	if n > uint64(st.Size()) {
		return nil, bad("a header of %d bytes in a file of %d", n, st.Size())
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, bad("%v", err)
	}
	p := &Part{Path: path}
	if err := json.Unmarshal(raw, &p.Header); err != nil {
		return nil, bad("its header: %v", err)
	}
	off := int64(len(head)) + int64(n)
	for _, a := range p.Arrays {
		b, err := a.bytes()
		if err != nil || a.Len < 0 {
			return nil, bad("array %s of %d %s values", a.Name, a.Len, a.Type)
		}
		p.offsets = append(p.offsets, off)
		off += b
	}
	if off+4 != st.Size() {
		return nil, bad("%d bytes, where its header declares %d", st.Size(), off+4)
	}
	if _, err := io.CopyN(io.Discard, r, off-int64(len(head))-int64(n)); err != nil {
		return nil, bad("%v", err)
	}
	want := crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return nil, bad("%v", err)
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("%s: its checksum does not match its content (CRC-32C %08x, stored %08x): the file is damaged; run its shard again", path, want, got)
	}
	if p.Lo < 0 || p.Hi < p.Lo || p.Total < p.Hi {
		return nil, bad("examples %d to %d of %d", p.Lo, p.Hi, p.Total)
	}
	return p, nil
}

// array finds the named array of type typ.
func (p *Part) array(name, typ string) (Array, int64, error) {
	for i, a := range p.Arrays {
		if a.Name == name {
			if a.Type != typ {
				return a, 0, fmt.Errorf("%s: array %s holds %s values, not %s", p.Path, name, a.Type, typ)
			}
			return a, p.offsets[i], nil
		}
	}
	return Array{}, 0, fmt.Errorf("%s: no array %s", p.Path, name)
}

// section opens the bytes of the named array.
func (p *Part) section(name, typ string) (*os.File, io.Reader, Array, error) {
	a, off, err := p.array(name, typ)
	if err != nil {
		return nil, nil, a, err
	}
	f, err := os.Open(p.Path)
	if err != nil {
		return nil, nil, a, err
	}
	size, _ := a.bytes()
	return f, io.NewSectionReader(f, off, size), a, nil
}

// Float32s reads a float32 array.
func (p *Part) Float32s(name string) ([]float32, error) {
	f, r, a, err := p.section(name, Float32)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]float32, a.Len)
	if err := binary.Read(bufio.NewReader(r), binary.LittleEndian, out); err != nil {
		return nil, fmt.Errorf("%s: array %s: %w", p.Path, name, err)
	}
	return out, nil
}

// Float64s reads a float64 array.
func (p *Part) Float64s(name string) ([]float64, error) {
	f, r, a, err := p.section(name, Float64)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]float64, a.Len)
	if err := binary.Read(bufio.NewReader(r), binary.LittleEndian, out); err != nil {
		return nil, fmt.Errorf("%s: array %s: %w", p.Path, name, err)
	}
	return out, nil
}

// CopyFloat32s copies a float32 array's little-endian bytes to w, without holding the
// array in memory.
func (p *Part) CopyFloat32s(name string, w io.Writer) error {
	f, r, _, err := p.section(name, Float32)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("%s: array %s: %w", p.Path, name, err)
	}
	return nil
}

var partName = regexp.MustCompile(`^(.+)-(\d+)-of-(\d+)\.part$`)

// Gather reads the parts of command in dir and checks that they make one job: the
// shards of one count, each once; every part made for job (compared with the JSON of
// each part's Job) and with the same Shared facts; their examples following each other
// from 0 to the job's total. It returns them in shard order.
func Gather(dir, command string, job any) ([]*Part, error) {
	want, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no parts to merge: %w", err)
		}
		return nil, err
	}
	var parts []*Part
	for _, e := range entries {
		m := partName.FindStringSubmatch(e.Name())
		if m == nil || m[1] != command || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		p, err := Open(path)
		if err != nil {
			return nil, err
		}
		i, _ := strconv.Atoi(m[2])
		n, _ := strconv.Atoi(m[3])
		if p.Command != command || p.Shard != (Spec{Index: i, Count: n}) {
			return nil, fmt.Errorf("%s: holds shard %s of toolkit %s, not what its name says: was it renamed?", path, p.Shard, p.Command)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%s holds no parts of toolkit %s (%s-I-of-N.part, which toolkit %s --shard I/N --parts %s writes)", dir, command, command, command, dir)
	}
	sort.Slice(parts, func(a, b int) bool {
		if parts[a].Shard.Count != parts[b].Shard.Count {
			return parts[a].Shard.Count < parts[b].Shard.Count
		}
		return parts[a].Shard.Index < parts[b].Shard.Index
	})
	count := parts[0].Shard.Count
	if last := parts[len(parts)-1]; last.Shard.Count != count {
		return nil, fmt.Errorf("%s holds the parts of jobs of %d and %d shards (%s, %s): remove the other job's parts",
			dir, count, last.Shard.Count, filepath.Base(parts[0].Path), filepath.Base(last.Path))
	}
	var missing []string
	for i, j := 0, 0; i < count; i++ {
		if j < len(parts) && parts[j].Shard.Index == i {
			j++
			continue
		}
		missing = append(missing, strconv.Itoa(i))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: shard %s of %d missing (no %s): have those tasks finished?",
			dir, strings.Join(missing, ", "), count, filepath.Base(Path(dir, command, Spec{Index: mustAtoi(missing[0]), Count: count})))
	}
	first := parts[0]
	for _, p := range parts {
		if !bytes.Equal(p.Job, want) {
			return nil, fmt.Errorf("%s (shard %s) was made for another job: %s", p.Path, p.Shard, Differences(p.Job, want, "this merge"))
		}
		if !bytes.Equal(p.Shared, first.Shared) || p.Total != first.Total {
			return nil, fmt.Errorf("%s (shard %s) saw other input than shard %s (%s): %s; did the data change between the shards? run them again",
				p.Path, p.Shard, first.Shard, filepath.Base(first.Path), Differences(p.Shared, first.Shared, "shard "+first.Shard.String()))
		}
	}
	prev := 0
	for _, p := range parts {
		if p.Lo != prev {
			return nil, fmt.Errorf("%s (shard %s) holds examples %d to %d, where the shard before ends at %d", p.Path, p.Shard, p.Lo, p.Hi, prev)
		}
		prev = p.Hi
	}
	if prev != first.Total {
		return nil, fmt.Errorf("the parts in %s hold %d of the job's %d examples", dir, prev, first.Total)
	}
	return parts, nil
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Differences says how two JSON objects differ, key by key: "tta true (this merge
// false)"; other is how to name b.
func Differences(a, b json.RawMessage, other string) string {
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return fmt.Sprintf("%s (%s %s)", a, other, b)
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	show := func(v any, ok bool) string {
		if !ok {
			return "none"
		}
		raw, _ := json.Marshal(v)
		if len(raw) > 80 {
			return string(raw[:77]) + "..."
		}
		return string(raw)
	}
	var out []string
	for _, k := range names {
		va, oka := ma[k]
		vb, okb := mb[k]
		ra, _ := json.Marshal(va)
		rb, _ := json.Marshal(vb)
		if oka != okb || !bytes.Equal(ra, rb) {
			out = append(out, fmt.Sprintf("%s %s (%s %s)", k, show(va, oka), other, show(vb, okb)))
		}
	}
	if len(out) == 0 {
		return "the same values in another form"
	}
	return strings.Join(out, ", ")
}

// Written is what a shard wrote: its part file and the examples it holds.
type Written struct {
	Path          string
	Shard         Spec
	Lo, Hi, Total int
}

func (w Written) String() string {
	if w.Lo == w.Hi {
		return fmt.Sprintf("shard %s: none of the %d images (more shards than batches): wrote %s", w.Shard, w.Total, w.Path)
	}
	return fmt.Sprintf("shard %s: images %d to %d of %d: wrote %s", w.Shard, w.Lo, w.Hi-1, w.Total, w.Path)
}

// WritePart writes the part of h.Shard of h.Command in dir (Path), creating dir if
// need be, as Write does.
func WritePart(dir string, h Header, fill func(w *Writer) error) (Written, error) {
	if err := h.Shard.Validate(); err != nil {
		return Written{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Written{}, err
	}
	path := Path(dir, h.Command, h.Shard)
	if err := Write(path, h, fill); err != nil {
		return Written{}, err
	}
	return Written{Path: path, Shard: h.Shard, Lo: h.Lo, Hi: h.Hi, Total: h.Total}, nil
}
