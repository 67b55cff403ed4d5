package dataset

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// csvImages writes n small PNGs, img0.png ... , into dir/images and returns dir.
func csvImages(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		writePNG(t, filepath.Join(dir, "images", fmt.Sprintf("img%d.png", i)), randomGray(uint64(i), 8, 8))
	}
	return dir
}

func writeCSV(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	writeFile(t, p, []byte(text))
	return p
}

func labelSets(s *Source) [][]int {
	var out [][]int
	for i := range s.Len() {
		out = append(out, s.LabelSet(i))
	}
	return out
}

// TestOpenCSV reads both forms of a labels CSV, single- and multi-label: the files
// relative to the CSV's folder, the classes sorted (label lists) or in the header's
// order (label columns), a validation CSV read against the training classes, blank
// lines and a byte-order mark ignored, and the label sets kept through a split.
func TestOpenCSV(t *testing.T) {
	dir := csvImages(t, 4)
	single := writeCSV(t, dir, "single.csv", "\ufefffile,label\nimages/img0.png,dog\nimages/img1.png, cat \n\nimages/img2.png,dog\n"+filepath.Join(dir, "images", "img3.png")+",bird\n")
	s, err := OpenCSV(single, CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Classes(); !slices.Equal(got, []string{"bird", "cat", "dog"}) {
		t.Errorf("classes %v", got)
	}
	if s.MultiLabel() || s.Len() != 4 || s.Name(1) != filepath.Join(dir, "images", "img1.png") {
		t.Errorf("multi-label %v, %d images, the second %s", s.MultiLabel(), s.Len(), s.Name(1))
	}
	for i, want := range []int{2, 1, 2, 0} {
		if s.Label(i) != want {
			t.Errorf("image %d: label %d, want %d", i, s.Label(i), want)
		}
	}
	if _, err := s.Image(2); err != nil {
		t.Error(err)
	}
	same, err := Open("csv", single, Options{})
	if err != nil || same.Len() != 4 {
		t.Errorf("Open(csv): %v", err)
	}

	multi := writeCSV(t, dir, "multi.csv", "file,labels\nimages/img0.png,dog;cat\nimages/img1.png,\nimages/img2.png,bird ; dog;dog\nimages/img3.png,cat\n")
	m, err := OpenCSV(multi, CSVOptions{MultiLabel: true})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{1, 2}, {}, {0, 2}, {1}}
	if !m.MultiLabel() || !slices.EqualFunc(labelSets(m), want, slices.Equal) {
		t.Errorf("label sets %v, want %v", labelSets(m), want)
	}
	if m.Label(0) != 1 || m.Label(1) != 0 {
		t.Errorf("labels %d %d, want the lowest of each set (0 for none)", m.Label(0), m.Label(1))
	}

	cols := writeCSV(t, dir, "cols.csv", "file,zebra,ant,cow\nimages/img0.png,1,0,1\nimages/img1.png,0,0,0\nimages/img2.png,0,1,0\n")
	c, err := OpenCSV(cols, CSVOptions{MultiLabel: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Classes(); !slices.Equal(got, []string{"zebra", "ant", "cow"}) {
		t.Errorf("classes %v, want the header's order", got)
	}
	if want := [][]int{{0, 2}, {}, {1}}; !slices.EqualFunc(labelSets(c), want, slices.Equal) {
		t.Errorf("label sets %v, want %v", labelSets(c), want)
	}
	// A validation CSV against the training classes: its columns in another order.
	val := writeCSV(t, dir, "val.csv", "file,cow,zebra,ant\nimages/img3.png,1,1,0\n")
	v, err := OpenCSV(val, CSVOptions{MultiLabel: true, Options: Options{Classes: c.Classes()}})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.LabelSet(0); !slices.Equal(got, []int{0, 2}) {
		t.Errorf("validation label set %v, want [0 2]", got)
	}
	tr, va := Split(m, 0.5, 1)
	for i := range va.Len() {
		if got, want := va.LabelSet(i), m.LabelSet(va.Indices()[i]); !slices.Equal(got, want) {
			t.Errorf("split: %v, want %v", got, want)
		}
	}
	if tr.Len()+va.Len() != 4 || !slices.Equal(LabelSet(tr, 0), m.LabelSet(tr.Indices()[0])) {
		t.Errorf("split: %d + %d", tr.Len(), va.Len())
	}
	if got := LabelSet(s, 0); !slices.Equal(got, []int{2}) {
		t.Errorf("a single-label source's label set %v", got)
	}
}

// TestOpenCSVErrors checks that every mistake in a labels CSV names the file and its
// line: a missing image, an unknown label or label column, an empty label, cells
// missing, values other than 0 and 1, and a single-label row without one label.
func TestOpenCSVErrors(t *testing.T) {
	dir := csvImages(t, 2)
	for _, c := range []struct {
		name, text string
		opts       CSVOptions
		want       string
	}{
		{"missing file", "file,label\nimages/img0.png,a\nimages/nope.png,b\n", CSVOptions{}, "x.csv:3: stat " + filepath.Join(dir, "images", "nope.png") + ": no such file"},
		{"empty label", "file,label\nimages/img0.png,a\nimages/img1.png,\n", CSVOptions{}, "x.csv:3: an empty label; every image needs one"},
		{"empty label in a list", "file,labels\nimages/img0.png,a;;b\n", CSVOptions{MultiLabel: true}, `x.csv:2: an empty label in "a;;b"`},
		{"two labels, single-label", "file,label\nimages/img0.png,a;b\n", CSVOptions{}, "x.csv:2: 2 labels (a;b); a single-label task takes one (head.task: multilabel"},
		{"unknown label", "file,labels\nimages/img0.png,a\nimages/img1.png,c;a\n", CSVOptions{MultiLabel: true, Options: Options{Classes: []string{"a", "b"}}}, `x.csv:3: unknown label "c"; the labels are a, b`},
		{"unknown label column", "file,a,c\nimages/img0.png,1,0\n", CSVOptions{MultiLabel: true, Options: Options{Classes: []string{"a", "b"}}}, `x.csv:1: unknown label column "c" (column 3); the labels are a, b`},
		{"missing label column", "file,a,b\nimages/img0.png,1,0\n", CSVOptions{MultiLabel: true, Options: Options{Classes: []string{"a", "b", "d"}}}, "x.csv:1: no column for label d"},
		{"column named twice", "file,a,a\nimages/img0.png,1,0\n", CSVOptions{MultiLabel: true}, `x.csv:1: label column "a" is named twice (columns 2 and 3)`},
		{"cells", "file,a,b\nimages/img0.png,1\n", CSVOptions{MultiLabel: true}, "x.csv:2: 2 cells; the header has 3"},
		{"value", "file,a,b\nimages/img0.png,1,yes\n", CSVOptions{MultiLabel: true}, `x.csv:2: label column "b" holds "yes"; want 1`},
		{"one-hot", "file,a,b\nimages/img0.png,1,1\n", CSVOptions{}, "x.csv:2: 2 labels marked 1; a single-label task takes exactly one"},
		{"no file", "file,label\n ,a\n", CSVOptions{}, "x.csv:2: no file in the first column"},
		{"header only", "file,label\n", CSVOptions{}, "x.csv lists no images (only its header)"},
		{"empty", "", CSVOptions{}, "x.csv: empty; want a header line"},
		{"one column", "file\nimages/img0.png\n", CSVOptions{}, "x.csv:1: the header has 1 column"},
		{"quote", "file,label\nimages/img0.png,\"a\n", CSVOptions{}, "x.csv:2: extraneous or missing \" in quoted-field"},
		{"a folder", "file,label\nimages,a\n", CSVOptions{}, "x.csv:2: " + filepath.Join(dir, "images") + " is not a file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := OpenCSV(writeCSV(t, dir, "x.csv", c.text), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v\nwant an error containing %q", err, c.want)
			}
		})
	}
	writeFile(t, filepath.Join(dir, "images", "bad.png"), []byte("not a png"))
	p := writeCSV(t, dir, "bad.csv", "file,label\nimages/img0.png,a\nimages/bad.png,b\n")
	if _, err := OpenCSV(p, CSVOptions{}); err == nil || !strings.Contains(err.Error(), "bad.png") {
		t.Errorf("an undecodable image: %v", err)
	}
	s, err := OpenCSV(p, CSVOptions{Options: Options{OnBadImage: BadImageSkip}})
	if err != nil || s.Len() != 1 || len(s.Skipped()) != 1 {
		t.Errorf("skip: %v", err)
	}
}
