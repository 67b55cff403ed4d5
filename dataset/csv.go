package dataset

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// CSVOptions controls OpenCSV.
type CSVOptions struct {
	// Options are an image folder's: OnBadImage, Quick, Workers, and Classes, which for a
	// validation or test CSV must be the training CSV's classes (label names outside them
	// are errors).
	Options
	// MultiLabel lets a row hold any number of labels (none included); without it every
	// row holds exactly one.
	MultiLabel bool
}

// LabelDelimiter separates the labels of a row in a CSV's label column.
const LabelDelimiter = ";"

// OpenCSV opens the images a CSV file lists with their labels, as fastai's
// ImageDataLoaders.from_csv and Keras' flow_from_dataframe read a table. Its first row
// is a header; the first column holds each image's file, relative to the CSV's folder
// (or absolute); the labels come in one of two forms:
//
//	file,labels                  one label column: a label, or with MultiLabel several
//	a.jpg,cat                    separated by ";" (an empty cell: no label)
//	b.jpg,cat;dog
//
//	file,cat,dog,bird            one column per label, named in the header: 1 where the
//	a.jpg,1,0,0                  image has the label, 0 where not (with MultiLabel any
//	b.jpg,1,1,0                  number of 1s, else exactly one)
//
// A header of two columns is the first form, of more the second. The classes are the
// label names sorted (the first form) or the label columns in the header's order (the
// second), unless opts.Classes gives them. Every mistake is an error naming the file and
// the line: a missing image file, a label not among opts.Classes (or a label column
// not among them), an empty label, a row of more or fewer cells than the header, a
// value other than 0 or 1, a single-label row with no label or several. The images
// are checked as OpenImageFolder checks them.
func OpenCSV(path string, opts CSVOptions) (*Source, error) {
	onBad, err := checkBadImageOption(opts.OnBadImage)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1 // checked here, with a message of ours
	header, err := r.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("dataset: %s: empty; want a header line such as file,labels", path)
	}
	if err != nil {
		return nil, csvError(path, err)
	}
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("dataset: %s:1: the header has %d column; want the file's and a label column (file,labels), or one column per label (file,cat,dog,...)", path, len(header))
	}
	c := csvTable{path: path, dir: filepath.Dir(path), multi: opts.MultiLabel, header: header, classes: opts.Classes}
	if len(header) > 2 {
		if err := c.labelColumns(); err != nil {
			return nil, err
		}
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(path, err)
		}
		line, _ := r.FieldPos(0)
		if err := c.row(rec, line); err != nil {
			return nil, err
		}
	}
	if len(c.files) == 0 {
		return nil, fmt.Errorf("dataset: %s lists no images (only its header)", path)
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	good, bad := checkFiles(c.files, opts.Options)
	if len(bad) > 0 && onBad == BadImageFail {
		return nil, &BadImagesError{Bad: bad}
	}
	s := &Source{kind: kindFolder, root: path, classes: c.classes, quick: opts.Quick, skipped: bad}
	for _, i := range good {
		s.paths = append(s.paths, c.files[i])
		set := c.sets[i]
		label := int32(0) // a multi-label row without labels: the lowest label (Label's doc)
		if len(set) > 0 {
			label = set[0]
		}
		s.labels = append(s.labels, label)
		if opts.MultiLabel {
			s.sets = append(s.sets, set)
		}
	}
	if opts.MultiLabel && s.sets == nil {
		s.sets = [][]int32{}
	}
	return s, nil
}

// csvError puts the reader's own errors (a quote out of place) in our form.
func csvError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("dataset: %s:%d: %v", path, pe.Line, pe.Err)
	}
	return fmt.Errorf("dataset: %s: %w", path, err)
}

// csvTable is a CSV being read: its rows' files and label sets by name, then by index.
type csvTable struct {
	path, dir string
	multi     bool
	header    []string
	// classes are the given classes (nil: found); columns maps a label column to its
	// class, in the one-column-per-label form.
	classes []string
	columns []int
	files   []string
	names   [][]string // each row's labels by name (the first form, before finish)
	lines   []int
	sets    [][]int32
}

// labelColumns reads the header of the one-column-per-label form.
func (c *csvTable) labelColumns() error {
	names := c.header[1:]
	for i, n := range names {
		if n == "" {
			return fmt.Errorf("dataset: %s:1: column %d has no name; in a CSV with one column per label, the header names each label", c.path, i+2)
		}
		if j := slices.Index(names[:i], n); j >= 0 {
			return fmt.Errorf("dataset: %s:1: label column %q is named twice (columns %d and %d)", c.path, n, j+2, i+2)
		}
	}
	if c.classes == nil {
		c.classes = slices.Clone(names)
	}
	for i, n := range names {
		k := slices.Index(c.classes, n)
		if k < 0 {
			return fmt.Errorf("dataset: %s:1: unknown label column %q (column %d); the labels are %s", c.path, n, i+2, strings.Join(c.classes, ", "))
		}
		c.columns = append(c.columns, k)
	}
	if len(names) != len(c.classes) {
		var missing []string
		for _, k := range c.classes {
			if !slices.Contains(names, k) {
				missing = append(missing, k)
			}
		}
		return fmt.Errorf("dataset: %s:1: no column for label %s", c.path, strings.Join(missing, ", "))
	}
	return nil
}

// row reads one row.
func (c *csvTable) row(rec []string, line int) error {
	if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
		return nil // a blank line
	}
	if len(rec) != len(c.header) {
		return fmt.Errorf("dataset: %s:%d: %d cells; the header has %d", c.path, line, len(rec), len(c.header))
	}
	file := strings.TrimSpace(rec[0])
	if file == "" {
		return fmt.Errorf("dataset: %s:%d: no file in the first column", c.path, line)
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(c.dir, filepath.FromSlash(file))
	}
	if st, err := os.Stat(file); err != nil {
		return fmt.Errorf("dataset: %s:%d: %w", c.path, line, err)
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("dataset: %s:%d: %s is not a file", c.path, line, file)
	}
	c.files = append(c.files, file)
	c.lines = append(c.lines, line)
	if c.columns == nil {
		return c.labelList(rec[1], line)
	}
	var set []int32
	for i, cell := range rec[1:] {
		switch strings.TrimSpace(cell) {
		case "1":
			set = append(set, int32(c.columns[i]))
		case "0":
		default:
			return fmt.Errorf("dataset: %s:%d: label column %q holds %q; want 1 (the image has the label) or 0", c.path, line, c.header[i+1], cell)
		}
	}
	slices.Sort(set)
	if !c.multi && len(set) != 1 {
		return fmt.Errorf("dataset: %s:%d: %d labels marked 1; a single-label task takes exactly one (head.task: multilabel takes any number)", c.path, line, len(set))
	}
	c.sets = append(c.sets, set)
	return nil
}

// labelList reads a label cell of the first form.
func (c *csvTable) labelList(cell string, line int) error {
	cell = strings.TrimSpace(cell)
	var names []string
	if cell != "" {
		for _, n := range strings.Split(cell, LabelDelimiter) {
			n = strings.TrimSpace(n)
			if n == "" {
				return fmt.Errorf("dataset: %s:%d: an empty label in %q", c.path, line, cell)
			}
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	switch {
	case !c.multi && len(names) == 0:
		return fmt.Errorf("dataset: %s:%d: an empty label; every image needs one", c.path, line)
	case !c.multi && len(names) > 1:
		return fmt.Errorf("dataset: %s:%d: %d labels (%s); a single-label task takes one (head.task: multilabel takes several, separated by %q)", c.path, line, len(names), cell, LabelDelimiter)
	}
	c.names = append(c.names, names)
	return nil
}

// finish turns the first form's label names into class indices.
func (c *csvTable) finish() error {
	if c.columns != nil {
		return nil
	}
	if c.classes == nil {
		for _, row := range c.names {
			for _, n := range row {
				if !slices.Contains(c.classes, n) {
					c.classes = append(c.classes, n)
				}
			}
		}
		slices.Sort(c.classes)
		if len(c.classes) == 0 {
			return fmt.Errorf("dataset: %s: no row has a label", c.path)
		}
	}
	for r, row := range c.names {
		var set []int32
		for _, n := range row {
			k := slices.Index(c.classes, n)
			if k < 0 {
				return fmt.Errorf("dataset: %s:%d: unknown label %q; the labels are %s", c.path, c.lines[r], n, strings.Join(c.classes, ", "))
			}
			set = append(set, int32(k))
		}
		slices.Sort(set)
		c.sets = append(c.sets, set)
	}
	return nil
}

// MultiLabel reports whether the source was opened for multi-label data (OpenCSV with
// MultiLabel): each example has a set of labels (LabelSet).
func (s *Source) MultiLabel() bool { return s.sets != nil }

// LabelSet returns example i's labels, ascending: of a multi-label source, the set the
// CSV gives it (perhaps empty); otherwise its one label.
func (s *Source) LabelSet(i int) []int {
	if s.sets == nil {
		return []int{s.Label(i)}
	}
	out := make([]int, len(s.sets[i]))
	for j, l := range s.sets[i] {
		out[j] = int(l)
	}
	return out
}

// LabelSet returns example i's labels, ascending, for any collection: a multi-label
// source's (or a View of one) set, else its one label.
func LabelSet(ex Examples, i int) []int {
	if m, ok := ex.(interface{ LabelSet(int) []int }); ok {
		return m.LabelSet(i)
	}
	return []int{ex.Label(i)}
}

// LabelSet returns the labels of the view's example i (see the package's LabelSet).
func (v View) LabelSet(i int) []int { return LabelSet(v.base, v.idx[i]) }
