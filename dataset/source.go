package dataset

import (
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Examples is a labelled image collection: a Source, a View, or anything a caller builds.
// Image and Label must be safe for concurrent use; the Loader calls them from its workers.
type Examples interface {
	// Len is the number of examples.
	Len() int
	// Label is the class index of example i, in [0, number of classes).
	Label(i int) int
	// Image decodes example i. The result must not be modified: it may share memory with
	// the collection.
	Image(i int) (image.Image, error)
	// Name identifies example i in messages: a file path, or "file[i]" for IDX data.
	Name(i int) string
}

// What Options.OnBadImage accepts.
const (
	BadImageFail = "fail" // the default: opening fails, naming the first bad file
	BadImageSkip = "skip" // bad files are dropped and listed by Source.Skipped
)

// Options controls OpenImageFolder. The zero value is ready to use.
type Options struct {
	// OnBadImage is what to do with a file that does not decode (with Quick, whose header
	// does not): "fail" (the default, also for "") or "skip".
	OnBadImage string
	// Quick checks only each file's header while opening instead of decoding it whole. It
	// saves a decoding pass over the folder (a JPEG's check decodes it at 1/8 scale, a few
	// milliseconds for a phone photo), but a truncated or corrupt file then passes the
	// check and fails when a loader reaches it.
	Quick bool
	// Classes, when set, is the exact class list the folder must have, in label order:
	// open the validation and test folders with the training source's Classes so that the
	// label indices agree. A folder whose class subfolders differ is an error.
	Classes []string
	// Workers is the number of goroutines checking files; 0 means GOMAXPROCS.
	Workers int
}

// BadImage is a file that OpenImageFolder dropped under OnBadImage "skip".
type BadImage struct {
	Path string
	Err  error
}

// maxPixels bounds the images accepted at open time (a guard against decompression bombs).
const maxPixels = 1 << 27

type sourceKind int

const (
	kindFolder sourceKind = iota
	kindIDX
)

// Source is a labelled image collection read from an image folder or IDX files.
// Image folders are decoded lazily, one file per Image call; IDX pixels are held in memory.
// A Source is safe for concurrent use.
type Source struct {
	kind    sourceKind
	root    string // folder, or the IDX images file
	classes []string
	labels  []int32

	// image folder (and CSV)
	paths   []string
	skipped []BadImage
	quick   bool // opened with Options.Quick
	// sets are a multi-label CSV's label sets (nil otherwise).
	sets [][]int32

	// IDX
	pix        []byte
	rows, cols int
}

// Len is the number of examples.
func (s *Source) Len() int { return len(s.labels) }

// Label is the class index of example i; of a multi-label source, its lowest label (0
// for an example without labels: what a stratified split groups it by).
func (s *Source) Label(i int) int { return int(s.labels[i]) }

// Classes are the class names in label order: the subfolder names sorted for an image folder,
// "0", "1", ... for IDX data (see SetClasses).
func (s *Source) Classes() []string { return slices.Clone(s.classes) }

// NumClasses is len(Classes()).
func (s *Source) NumClasses() int { return len(s.classes) }

// SetClasses renames the classes, for IDX data whose files carry no names
// (see FashionMNISTClasses). names must have one entry per class.
func (s *Source) SetClasses(names []string) error {
	if len(names) != len(s.classes) {
		return fmt.Errorf("dataset: %s has %d classes, got %d names", s.root, len(s.classes), len(names))
	}
	s.classes = slices.Clone(names)
	return nil
}

// Skipped lists the files dropped under OnBadImage "skip", in path order.
func (s *Source) Skipped() []BadImage { return slices.Clone(s.skipped) }

// Root is the folder, or the IDX images file, the source was opened from.
func (s *Source) Root() string { return s.root }

// Name is the file path of example i, or "imagesfile[i]" for IDX data.
func (s *Source) Name(i int) string {
	if s.kind == kindIDX {
		return fmt.Sprintf("%s[%d]", s.root, i)
	}
	return s.paths[i]
}

// Image decodes example i, upright (its EXIF orientation applied), as 8-bit grey
// (*image.Gray) or RGB (*image.RGBA). For IDX data the result is an *image.Gray sharing the
// source's memory: do not modify it.
func (s *Source) Image(i int) (image.Image, error) {
	if s.kind == kindIDX {
		n := s.rows * s.cols
		return &image.Gray{Pix: s.pix[i*n : (i+1)*n : (i+1)*n], Stride: s.cols, Rect: image.Rect(0, 0, s.cols, s.rows)}, nil
	}
	img, err := DecodeFile(s.paths[i])
	if err != nil && s.quick {
		return nil, fmt.Errorf("dataset: %w (the folder %s was opened with Quick, which checks only headers: "+
			"the file is probably truncated or corrupt)", err, s.root)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	return img, nil
}

// File is the image file of example i, or "" for IDX data (see Files).
func (s *Source) File(i int) string {
	if s.kind == kindIDX {
		return ""
	}
	return s.paths[i]
}

// Files is implemented by collections whose examples are image files (a Source of an
// image folder, a View of one, FileList). A Loader reads such files itself, which lets it
// decode a JPEG at the reduced scale its crop needs; File returns "" for an example that
// is not a file, which the loader then gets from Image.
type Files interface {
	File(i int) string
}

// DecodeFile decodes an image file (JPEG, PNG, GIF, BMP, TIFF or WebP), upright: the
// EXIF orientation of a JPEG is applied as Pillow's ImageOps.exif_transpose does. The
// result is an *image.Gray for grey files and an *image.RGBA (opaque: alpha is dropped,
// as Pillow's convert("RGB") does) otherwise. Errors name the file.
func DecodeFile(path string) (image.Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d decoder
	p, err := d.decodeWhole(data, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p.image(), nil
}

// checkFile reads path's header, and with verify decodes the whole file (a JPEG at 1/8
// scale: every byte of its scan is still read and checked).
func checkFile(path string, verify bool, d *decoder) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	h, err := readHeader(data)
	if err != nil || !verify {
		return err
	}
	_, _, err = d.decode(data, h, 8, image.Rectangle{}, false)
	return err
}

// IsImageFile reports whether a file's name has an image extension an image folder
// accepts (see ImageExtensions).
func IsImageFile(name string) bool {
	return slices.Contains(imageExtensions, strings.ToLower(filepath.Ext(name)))
}

// ImageExtensions lists the file name extensions of image files (in any case).
func ImageExtensions() []string { return slices.Clone(imageExtensions) }

func isHidden(name string) bool { return strings.HasPrefix(name, ".") }

// isDir reports whether the entry is a directory, following a symbolic link.
func isDir(dir string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		return err == nil && st.IsDir()
	}
	return false
}

func checkBadImageOption(v string) (string, error) {
	switch v {
	case "", BadImageFail:
		return BadImageFail, nil
	case BadImageSkip:
		return BadImageSkip, nil
	}
	return "", fmt.Errorf("dataset: unknown OnBadImage %q (valid: %q, %q)", v, BadImageFail, BadImageSkip)
}

// OpenImageFolder opens dir, which holds one subfolder per class (named after the class) with
// PNG and JPEG files in it (.png, .jpg, .jpeg in any case; nested folders are searched too,
// without following symbolic links below the class folders).
// Classes are the subfolder names sorted bytewise; files are in walk order within a class
// (filepath.WalkDir: lexical by name in each folder). Hidden files
// and folders (names starting with ".") and files with other extensions are ignored.
//
// Every file's header is checked with image.DecodeConfig (or fully decoded with Verify), in
// parallel; what happens to files that fail depends on OnBadImage. Images are decoded again
// on demand by Image.
func OpenImageFolder(dir string, opts Options) (*Source, error) {
	onBad, err := checkBadImageOption(opts.OnBadImage)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: opening image folder: %w", err)
	}
	var classes []string
	for _, e := range entries {
		if !isHidden(e.Name()) && isDir(dir, e) {
			classes = append(classes, e.Name())
		}
	}
	slices.Sort(classes)
	if len(classes) == 0 {
		return nil, fmt.Errorf("dataset: image folder %s has no class folders (it needs one subfolder per class, holding that class's images)", dir)
	}
	if opts.Classes != nil {
		if err := sameClasses(dir, classes, opts.Classes); err != nil {
			return nil, err
		}
		classes = slices.Clone(opts.Classes)
	}

	s := &Source{kind: kindFolder, root: dir, classes: classes, quick: opts.Quick}
	var paths []string
	var labels []int32
	for label, c := range classes {
		cdir := filepath.Join(dir, c)
		n := 0
		// WalkDir does not follow a symbolic link at its root: walk the link's target and
		// name files under the class folder.
		walkRoot, err := filepath.EvalSymlinks(cdir)
		if err != nil {
			return nil, fmt.Errorf("dataset: reading class folder %s: %w", cdir, err)
		}
		err = filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == walkRoot {
				return nil
			}
			if rel, err := filepath.Rel(walkRoot, p); err == nil {
				p = filepath.Join(cdir, rel)
			}
			if isHidden(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				st, err := os.Stat(p)
				if err != nil || !st.Mode().IsRegular() {
					return nil
				}
			} else if !d.Type().IsRegular() {
				return nil
			}
			if IsImageFile(d.Name()) {
				paths = append(paths, p)
				labels = append(labels, int32(label))
				n++
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dataset: reading class folder %s: %w", cdir, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("dataset: class folder %s has no images (.png, .jpg or .jpeg)", cdir)
		}
	}

	good, bad := checkFiles(paths, opts)
	if len(bad) > 0 && onBad == BadImageFail {
		return nil, &BadImagesError{Bad: bad}
	}
	counts := make([]int, len(classes))
	for _, i := range good {
		s.paths = append(s.paths, paths[i])
		s.labels = append(s.labels, labels[i])
		counts[labels[i]]++
	}
	s.skipped = bad
	for label, n := range counts {
		if n == 0 {
			return nil, fmt.Errorf("dataset: class folder %s has no decodable images (all were skipped as bad)",
				filepath.Join(dir, classes[label]))
		}
	}
	return s, nil
}

// BadImagesError is the error of opening files of which some do not decode, with
// OnBadImage fail.
type BadImagesError struct {
	Bad []BadImage // in path order
}

func (e *BadImagesError) Error() string {
	more := ""
	if len(e.Bad) > 1 {
		more = fmt.Sprintf(" (and %d more files that do not decode)", len(e.Bad)-1)
		if len(e.Bad) == 2 {
			more = " (and 1 more file that does not decode)"
		}
	}
	return fmt.Sprintf("dataset: %s: not a decodable image: %v%s", e.Bad[0].Path, e.Bad[0].Err, more)
}

// checkFiles checks every file in parallel (checkFile; results land by index, so the
// outcome does not depend on timing) and returns the indices of the good ones and the bad
// ones with their errors, both in paths' order.
func checkFiles(paths []string, opts Options) (good []int, bad []BadImage) {
	errs := make([]error, len(paths))
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(paths)) {
		wg.Go(func() {
			var d decoder
			for {
				i := int(next.Add(1) - 1)
				if i >= len(paths) {
					return
				}
				errs[i] = checkFile(paths[i], !opts.Quick, &d)
			}
		})
	}
	wg.Wait()
	for i, e := range errs {
		if e != nil {
			bad = append(bad, BadImage{Path: paths[i], Err: e})
		} else {
			good = append(good, i)
		}
	}
	return good, bad
}

// OpenFiles opens a list of image files as a collection of one unnamed class (label 0),
// in the list's order: images to classify. Each file is checked as OpenImageFolder checks
// them, and opts.OnBadImage says what a bad one does.
func OpenFiles(paths []string, opts Options) (*Source, error) {
	onBad, err := checkBadImageOption(opts.OnBadImage)
	if err != nil {
		return nil, err
	}
	good, bad := checkFiles(paths, opts)
	if len(bad) > 0 && onBad == BadImageFail {
		return nil, &BadImagesError{Bad: bad}
	}
	s := &Source{kind: kindFolder, root: "", classes: []string{""}, quick: opts.Quick, skipped: bad}
	for _, i := range good {
		s.paths = append(s.paths, paths[i])
		s.labels = append(s.labels, 0)
	}
	return s, nil
}

func sameClasses(dir string, found, want []string) error {
	var missing, extra []string
	for _, c := range want {
		if !slices.Contains(found, c) {
			missing = append(missing, c)
		}
	}
	for _, c := range found {
		if !slices.Contains(want, c) {
			extra = append(extra, c)
		}
	}
	if len(missing) == 0 && len(extra) == 0 && len(found) == len(want) {
		return nil
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		parts = append(parts, "unexpected "+strings.Join(extra, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "duplicate names in the expected list")
	}
	return fmt.Errorf("dataset: image folder %s has class folders %v, want %v: %s", dir, found, want, strings.Join(parts, "; "))
}

// Open opens a data set in the config's format: "imagefolder" (path is the folder),
// "csv" (path is a CSV of single-label images: see OpenCSV) or "idx" (path is the
// images file, whose labels file is found by replacing "images-idx3" with "labels-idx1"
// in its name, or a prefix P such that P-images-idx3-ubyte[.gz] and
// P-labels-idx1-ubyte[.gz] exist, like .../fashion-mnist/train or .../t10k). opts
// applies to image folders and CSVs; for IDX data, Options.Classes (if set) renames the
// classes.
func Open(format, path string, opts Options) (*Source, error) {
	switch format {
	case "imagefolder":
		return OpenImageFolder(path, opts)
	case "csv":
		return OpenCSV(path, CSVOptions{Options: opts})
	case "idx":
		images, labels, err := idxPaths(path)
		if err != nil {
			return nil, err
		}
		s, err := OpenIDX(images, labels)
		if err != nil {
			return nil, err
		}
		if opts.Classes != nil {
			if err := s.SetClasses(opts.Classes); err != nil {
				return nil, err
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("dataset: unknown data format %q (valid: imagefolder, csv, idx)", format)
}

func idxPaths(path string) (images, labels string, err error) {
	base := filepath.Base(path)
	if strings.Contains(base, "images-idx3") {
		if fileExists(path) {
			return path, filepath.Join(filepath.Dir(path), strings.Replace(base, "images-idx3", "labels-idx1", 1)), nil
		}
	}
	for _, suffix := range []string{"", ".gz"} {
		im := path + "-images-idx3-ubyte" + suffix
		if fileExists(im) {
			// The labels with the same suffix, else with the other one.
			lab := path + "-labels-idx1-ubyte" + suffix
			alt := strings.TrimSuffix(lab, ".gz")
			if suffix == "" {
				alt = lab + ".gz"
			}
			if !fileExists(lab) && fileExists(alt) {
				lab = alt
			}
			return im, lab, nil
		}
	}
	return "", "", fmt.Errorf("dataset: no IDX images at %s (give the images file, or a prefix P with P-images-idx3-ubyte[.gz] and P-labels-idx1-ubyte[.gz])", path)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
