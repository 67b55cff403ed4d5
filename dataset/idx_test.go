package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"image"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"toolkit/internal/testref"
)

const fmnistDir = "/usr/share/datasets/fashion-mnist"

func needFashionMNIST(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(fmnistDir, "train-images-idx3-ubyte.gz")); err != nil {
		testref.Missing(t, "Fashion-MNIST not installed (Debian package dataset-fashion-mnist): %v", err)
	}
}

var (
	fmnistMu    sync.Mutex
	fmnistCache = map[string]*Source{}
)

// fashionMNIST opens (once per test binary) the "train" or "t10k" part through Open's prefix
// form. Tests must not rename its classes.
func fashionMNIST(t testing.TB, part string) *Source {
	t.Helper()
	needFashionMNIST(t)
	fmnistMu.Lock()
	defer fmnistMu.Unlock()
	if s, ok := fmnistCache[part]; ok {
		return s
	}
	s, err := Open("idx", filepath.Join(fmnistDir, part), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmnistCache[part] = s
	return s
}

// TestFashionMNIST checks the real files against facts computed independently with Python's
// gzip and numpy (and, for the first training label, the dataset's documentation: the first
// training image is an ankle boot, class 9).
func TestFashionMNIST(t *testing.T) {
	needFashionMNIST(t)
	for _, tc := range []struct {
		prefix     string
		n          int
		first      []int
		pixSum0    int
		row14      []byte // image 0, row 14, columns 10..17
		perClass   int
		viaPrefix  bool
		imagesFile string
	}{
		{"train", 60000, []int{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, 76247, []byte{0, 0, 237, 226, 217, 223, 222, 219}, 6000, true, ""},
		{"t10k", 10000, []int{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, 33456, []byte{0, 0, 98, 136, 110, 109, 110, 162}, 1000, false, "t10k-images-idx3-ubyte.gz"},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			var s *Source
			if tc.viaPrefix {
				s = fashionMNIST(t, tc.prefix)
			} else {
				var err error
				if s, err = Open("idx", filepath.Join(fmnistDir, tc.imagesFile), Options{}); err != nil {
					t.Fatal(err)
				}
			}
			if s.Len() != tc.n {
				t.Fatalf("Len %d, want %d", s.Len(), tc.n)
			}
			if s.NumClasses() != 10 {
				t.Fatalf("%d classes, want 10", s.NumClasses())
			}
			for i, want := range tc.first {
				if got := s.Label(i); got != want {
					t.Errorf("label %d = %d, want %d", i, got, want)
				}
			}
			counts := make([]int, 10)
			for i := range s.Len() {
				counts[s.Label(i)]++
			}
			for c, n := range counts {
				if n != tc.perClass {
					t.Errorf("class %d has %d examples, want %d", c, n, tc.perClass)
				}
			}
			img, err := s.Image(0)
			if err != nil {
				t.Fatal(err)
			}
			g := img.(*image.Gray)
			if g.Bounds() != image.Rect(0, 0, 28, 28) {
				t.Fatalf("bounds %v", g.Bounds())
			}
			sum := 0
			for _, v := range g.Pix {
				sum += int(v)
			}
			if sum != tc.pixSum0 {
				t.Errorf("image 0 pixel sum %d, want %d", sum, tc.pixSum0)
			}
			if row := g.Pix[14*28+10 : 14*28+18]; !bytes.Equal(row, tc.row14) {
				t.Errorf("image 0 row 14 [10:18] = %v, want %v", row, tc.row14)
			}
			named := *s
			if err := named.SetClasses(FashionMNISTClasses); err != nil {
				t.Fatal(err)
			}
			if c := named.Classes()[named.Label(0)]; c != "Ankle boot" {
				t.Errorf("first class %q, want Ankle boot", c)
			}
			if name := s.Name(3); name != filepath.Join(fmnistDir, tc.prefix+"-images-idx3-ubyte.gz")+"[3]" {
				t.Errorf("Name(3) = %q", name)
			}
		})
	}
}

// idxBytes builds IDX image and label files.
func idxBytes(n, rows, cols int, labels []byte) (images, labs []byte) {
	images = make([]byte, 16+n*rows*cols)
	binary.BigEndian.PutUint32(images, idxImagesMagic)
	binary.BigEndian.PutUint32(images[4:], uint32(n))
	binary.BigEndian.PutUint32(images[8:], uint32(rows))
	binary.BigEndian.PutUint32(images[12:], uint32(cols))
	for i := range images[16:] {
		images[16+i] = byte(i * 7)
	}
	labs = make([]byte, 8+len(labels))
	binary.BigEndian.PutUint32(labs, idxLabelsMagic)
	binary.BigEndian.PutUint32(labs[4:], uint32(len(labels)))
	copy(labs[8:], labels)
	return images, labs
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestIDXSmall(t *testing.T) {
	dir := t.TempDir()
	im, lb := idxBytes(3, 2, 4, []byte{2, 0, 4})
	writeFile(t, filepath.Join(dir, "a-images-idx3-ubyte"), im)
	writeFile(t, filepath.Join(dir, "a-labels-idx1-ubyte"), lb)
	writeFile(t, filepath.Join(dir, "b-images-idx3-ubyte.gz"), gz(im))
	writeFile(t, filepath.Join(dir, "b-labels-idx1-ubyte.gz"), gz(lb))
	a, err := Open("idx", filepath.Join(dir, "a"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenIDX(filepath.Join(dir, "b-images-idx3-ubyte.gz"), filepath.Join(dir, "b-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	// Mixed: gzipped images, plain labels, found from the prefix.
	writeFile(t, filepath.Join(dir, "c-images-idx3-ubyte.gz"), gz(im))
	writeFile(t, filepath.Join(dir, "c-labels-idx1-ubyte"), lb)
	c, err := Open("idx", filepath.Join(dir, "c"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Source{a, b, c} {
		if s.Len() != 3 || s.NumClasses() != 5 || s.Label(2) != 4 {
			t.Fatalf("Len %d, classes %v, label(2) %d", s.Len(), s.Classes(), s.Label(2))
		}
		img, _ := s.Image(1)
		g := img.(*image.Gray)
		if g.Bounds().Dx() != 4 || g.Bounds().Dy() != 2 || g.GrayAt(1, 1).Y != byte((8+5)*7) {
			t.Fatalf("image 1: %v %v", g.Bounds(), g.Pix)
		}
	}
	if err := a.SetClasses([]string{"x"}); err == nil {
		t.Fatal("SetClasses accepted the wrong number of names")
	}
}

func TestIDXErrors(t *testing.T) {
	dir := t.TempDir()
	good, goodLab := idxBytes(3, 2, 2, []byte{0, 1, 2})
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, b)
		return p
	}
	gi := write("good-images", good)
	gl := write("good-labels", goodLab)
	if _, err := OpenIDX(gi, gl); err != nil {
		t.Fatal(err)
	}

	mod := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	_, twoLab := idxBytes(2, 2, 2, []byte{0, 1})
	for _, tc := range []struct {
		name           string
		images, labels string
		mention        []string
	}{
		{"swapped", gl, gi, []string{gl, "magic", "label file"}},
		{"bad image magic", write("m.img", mod(good, func(b []byte) []byte { b[3] = 0x02; return b })), gl, []string{"m.img", "magic number 0x00000802"}},
		{"bad label magic", gi, write("m.lab", mod(goodLab, func(b []byte) []byte { b[2] = 0x0d; return b })), []string{"m.lab", "magic"}},
		{"zero rows", write("z.img", mod(good, func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 0); return b })), gl, []string{"z.img", "image size 0x2"}},
		{"truncated images", write("t.img", good[:len(good)-1]), gl, []string{"t.img", "truncated"}},
		{"trailing images", write("x.img", append(bytes.Clone(good), 1, 2)), gl, []string{"x.img", "2 bytes after"}},
		{"short header", write("h.img", good[:10]), gl, []string{"h.img", "too short"}},
		{"truncated labels", gi, write("t.lab", goodLab[:len(goodLab)-1]), []string{"t.lab", "truncated"}},
		{"count mismatch", gi, write("two.lab", twoLab), []string{"two.lab", "2 labels", gi, "3 images"}},
		{"truncated gzip", write("g.img.gz", gz(good)[:20]), gl, []string{"g.img.gz", "gzip"}},
		{"missing", filepath.Join(dir, "nope"), gl, []string{filepath.Join(dir, "nope")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenIDX(tc.images, tc.labels)
			contains(t, err, tc.mention...)
		})
	}
	_, err := Open("idx", filepath.Join(dir, "absent"), Options{})
	contains(t, err, "no IDX images", "absent")
	_, err = Open("tfrecord", dir, Options{})
	contains(t, err, "unknown data format", "imagefolder, csv, idx")
}
