package extract

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"toolkit/dataset"
	"toolkit/internal/atomicfile"
	"toolkit/npy"
	"toolkit/shard"
)

// Options tune an extraction.
type Options struct {
	BatchSize int // 0: 32
	Workers   int // image decoders; 0: the loader's default
	// OnBadImage is what a file that does not decode does: fail (the default, naming it)
	// or skip (it is left out and listed in Result.Skipped).
	OnBadImage string
}

func (o Options) batch() int {
	if o.BatchSize <= 0 {
		return 32
	}
	return o.BatchSize
}

// The files Extract writes in its output folder.
const (
	FeaturesFile = "features.npy"
	FilesFile    = "files.txt"
)

// Skipped is a file left out because it does not decode.
type Skipped struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// Result is what an extraction wrote.
type Result struct {
	Features, Files string // the paths of features.npy and files.txt
	Images          int
	Shape           []int // one image's features'
	Skipped         []Skipped
	Notes           []string
}

// job is an extraction as it was asked for: every shard of it and its merge agree.
type job struct {
	From       string `json:"from"` // the model file or the recipe
	Data       string `json:"data"`
	BatchSize  int    `json:"batch_size"`
	OnBadImage string `json:"on_bad_image"`
}

func newJob(from, data string, opts Options) job {
	return job{From: from, Data: data, BatchSize: opts.batch(), OnBadImage: opts.OnBadImage}
}

// shared is what every shard of an extraction finds of the base and the folder.
type shared struct {
	Output     string             `json:"output"`
	Shape      []int              `json:"shape"`
	Preprocess dataset.Preprocess `json:"preprocess"`
	Skipped    []Skipped          `json:"skipped"`
	Notes      []string           `json:"notes"`
}

// own is what a part keeps by image besides its features.
type own struct {
	Files []string `json:"files"`
}

// source is the images of an extraction: all of them, and the names files.txt gives
// them.
type source struct {
	images dataset.Examples
	names  []string // relative to the folder
	shared shared
}

// open lists and checks the images under dir.
func open(e *Extractor, dir string, opts Options) (*source, error) {
	files, err := dataset.ImageFiles([]string{dir})
	if err != nil {
		return nil, err
	}
	src, err := dataset.OpenFiles(files, dataset.Options{OnBadImage: opts.OnBadImage, Workers: opts.Workers})
	if err != nil {
		return nil, fmt.Errorf("%w; --on-bad-image skip leaves such files out (and lists them)", err)
	}
	s := &source{images: src, shared: shared{Output: e.Output, Shape: e.Shape, Preprocess: e.Preprocess, Notes: e.Notes}}
	for _, b := range src.Skipped() {
		s.shared.Skipped = append(s.shared.Skipped, Skipped{File: b.Path, Error: b.Err.Error()})
	}
	for i := range src.Len() {
		rel, err := filepath.Rel(dir, src.Name(i))
		if err != nil {
			return nil, err
		}
		if strings.ContainsAny(rel, "\n\r") {
			return nil, fmt.Errorf("%q: a file name with a line break cannot be listed in %s, one per line: rename it", src.Name(i), FilesFile)
		}
		s.names = append(s.names, filepath.ToSlash(rel))
	}
	return s, nil
}

// run computes the features of images [lo, hi) in batches, passing each batch's to emit.
func (e *Extractor) run(ctx context.Context, s *source, lo, hi int, opts Options, emit func([]float32) error) error {
	if hi == lo {
		return nil
	}
	loader, err := dataset.NewLoader(dataset.NewView(s.images, span(lo, hi)), dataset.LoaderOptions{BatchSize: opts.batch(), Workers: opts.Workers, Preprocess: e.Preprocess})
	if err != nil {
		return err
	}
	for b, err := range loader.Epoch(ctx, 0) {
		if err != nil {
			return err
		}
		out, err := e.Features(b.Images, b.N)
		if err != nil {
			return err
		}
		if err := emit(out); err != nil {
			return err
		}
	}
	return nil
}

func span(lo, hi int) []int {
	out := make([]int, hi-lo)
	for i := range out {
		out[i] = lo + i
	}
	return out
}

// Extract computes the features of every image under dir (dataset.ImageFiles) and
// writes them to out/features.npy, in the order out/files.txt lists the images.
func Extract(ctx context.Context, e *Extractor, dir, out string, opts Options) (*Result, error) {
	s, err := open(e, dir, opts)
	if err != nil {
		return nil, err
	}
	return finish(out, s.shared, s.names, func(w *npy.Writer) error {
		return e.run(ctx, s, 0, len(s.names), opts, w.Float32s)
	})
}

// finish writes the outputs of an extraction of the files names: features.npy from the
// rows that rows writes, in order, then files.txt; each atomically. One process's
// extraction and the merge of the parts of a sharded one both end here.
func finish(out string, sh shared, names []string, rows func(w *npy.Writer) error) (*Result, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	r := &Result{Features: filepath.Join(out, FeaturesFile), Files: filepath.Join(out, FilesFile), Images: len(names),
		Shape: sh.Shape, Skipped: sh.Skipped, Notes: sh.Notes}
	err := atomicfile.Write(r.Features, func(f *os.File) error {
		w, err := npy.NewWriter(f, append([]int{len(names)}, sh.Shape...))
		if err != nil {
			return err
		}
		if err := rows(w); err != nil {
			return err
		}
		return w.Close()
	})
	if err != nil {
		return nil, err
	}
	var list strings.Builder
	for _, n := range names {
		list.WriteString(n + "\n")
	}
	if err := atomicfile.WriteFile(r.Files, []byte(list.String())); err != nil {
		return nil, err
	}
	return r, nil
}

// command names the parts of an extraction (shard.Path).
const command = "extract"

// ExtractShard computes the features of the images of shard s's batches
// (shard.Spec.Range, in batches of opts.BatchSize) and writes them to the shard's part
// in parts (parts/extract-I-of-N.part), which Merge joins with the other shards'.
func ExtractShard(ctx context.Context, e *Extractor, dir string, opts Options, s shard.Spec, parts string) (shard.Written, error) {
	if err := s.Validate(); err != nil {
		return shard.Written{}, err
	}
	src, err := open(e, dir, opts)
	if err != nil {
		return shard.Written{}, err
	}
	n := len(src.names)
	lo, hi := s.Range(n, opts.batch())
	h := shard.Header{Command: command, Shard: s, Lo: lo, Hi: hi, Total: n,
		Arrays: []shard.Array{{Name: "features", Type: shard.Float32, Len: (hi - lo) * e.Size()}}}
	if h.Job, err = json.Marshal(newJob(e.Name, dir, opts)); err != nil {
		return shard.Written{}, err
	}
	if h.Shared, err = json.Marshal(src.shared); err != nil {
		return shard.Written{}, err
	}
	if h.Own, err = json.Marshal(own{Files: src.names[lo:hi]}); err != nil {
		return shard.Written{}, err
	}
	return shard.WritePart(parts, h, func(w *shard.Writer) error {
		return e.run(ctx, src, lo, hi, opts, w.Float32s)
	})
}

// Merge joins the parts in parts of the extraction from the model file or recipe from
// (as the extractor was named) of the images under dir with opts, as ExtractShard wrote
// them, into out/features.npy and out/files.txt, exactly as one process writes them.
// The features stream from the parts to the output, never all in memory.
func Merge(parts, from, dir, out string, opts Options) (*Result, error) {
	ps, err := shard.Gather(parts, command, newJob(from, dir, opts))
	if err != nil {
		return nil, err
	}
	var sh shared
	if err := json.Unmarshal(ps[0].Shared, &sh); err != nil {
		return nil, fmt.Errorf("%s: %w", ps[0].Path, err)
	}
	size := 1
	for _, d := range sh.Shape {
		size *= d
	}
	var names []string
	for _, p := range ps {
		var o own
		if err := json.Unmarshal(p.Own, &o); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Path, err)
		}
		if len(o.Files) != p.Hi-p.Lo || len(p.Arrays) != 1 || p.Arrays[0].Len != len(o.Files)*size {
			return nil, fmt.Errorf("%s: %d files and %v for images %d to %d of %d features each", p.Path, len(o.Files), p.Arrays, p.Lo, p.Hi, size)
		}
		names = append(names, o.Files...)
	}
	return finish(out, sh, slices.Clip(names), func(w *npy.Writer) error {
		for _, p := range ps {
			if err := p.CopyFloat32s("features", w); err != nil {
				return err
			}
		}
		return nil
	})
}
