package dataset

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestOpenImageFolder(t *testing.T) {
	dir := t.TempDir()
	// Classes written out of order; extensions in several cases; a nested folder.
	writePNG(t, filepath.Join(dir, "dog", "b.PNG"), randomRGB(1, 5, 4))
	writeJPEG(t, filepath.Join(dir, "dog", "a.Jpg"), smoothRGB(8, 6, 0))
	writeJPEG(t, filepath.Join(dir, "dog", "sub", "c.jpeg"), smoothRGB(6, 8, 1))
	writePNG(t, filepath.Join(dir, "cat", "x.png"), randomGray(2, 3, 3))
	writeJPEG(t, filepath.Join(dir, "bird", "y.JPEG"), smoothRGB(9, 9, 2))
	// Ignored: hidden files (even with image extensions and garbage content), hidden
	// folders, other extensions, files at the top level.
	writeFile(t, filepath.Join(dir, "dog", ".DS_Store"), []byte("junk"))
	writeFile(t, filepath.Join(dir, "dog", "._b.PNG"), []byte("AppleDouble junk"))
	writeFile(t, filepath.Join(dir, "cat", "notes.txt"), []byte("hello"))
	writeFile(t, filepath.Join(dir, "cat", "x.psd"), []byte("8BPS"))
	writePNG(t, filepath.Join(dir, "cat", ".hidden", "h.png"), randomGray(3, 3, 3))
	writePNG(t, filepath.Join(dir, ".trash", "z.png"), randomGray(3, 3, 3))
	writeFile(t, filepath.Join(dir, "README.md"), []byte("# data"))

	s, err := OpenImageFolder(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Classes(), []string{"bird", "cat", "dog"}; !slices.Equal(got, want) {
		t.Fatalf("classes %v, want %v", got, want)
	}
	wantFiles := []string{"bird/y.JPEG", "cat/x.png", "dog/a.Jpg", "dog/b.PNG", "dog/sub/c.jpeg"}
	wantLabels := []int{0, 1, 2, 2, 2}
	if s.Len() != len(wantFiles) {
		t.Fatalf("Len %d, want %d", s.Len(), len(wantFiles))
	}
	for i := range wantFiles {
		if s.Name(i) != filepath.Join(dir, wantFiles[i]) || s.Label(i) != wantLabels[i] {
			t.Errorf("example %d: %s label %d, want %s label %d", i, s.Name(i), s.Label(i), wantFiles[i], wantLabels[i])
		}
	}
	if len(s.Skipped()) != 0 {
		t.Fatalf("skipped %v", s.Skipped())
	}
	// Lazy decoding gives back what was written.
	img, err := s.Image(3)
	if err != nil {
		t.Fatal(err)
	}
	want := randomRGB(1, 5, 4)
	if b := img.Bounds(); b != want.Bounds() {
		t.Fatalf("bounds %v", b)
	}
	for y := range 4 {
		for x := range 5 {
			r1, g1, b1, _ := img.At(x, y).RGBA()
			r2, g2, b2, _ := want.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				t.Fatalf("pixel (%d,%d) differs", x, y)
			}
		}
	}
	if g, err := s.Image(1); err != nil || g.(*image.Gray).Pix[4] != randomGray(2, 3, 3).Pix[4] {
		t.Fatalf("grey image: %v", err)
	}
}

func TestOpenImageFolderLazy(t *testing.T) {
	// Files are read when asked for, not at open time: replace one after opening.
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "1.png")
	writePNG(t, p, randomGray(1, 4, 4))
	s, err := OpenImageFolder(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	writePNG(t, p, randomGray(9, 4, 4))
	img, err := s.Image(0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.(*image.Gray).Pix, randomGray(9, 4, 4).Pix) {
		t.Fatal("Image did not decode the file on demand")
	}
}

func TestOpenImageFolderNoClasses(t *testing.T) {
	empty := t.TempDir()
	_, err := OpenImageFolder(empty, Options{})
	contains(t, err, empty, "no class folders")

	flat := t.TempDir() // images directly in the folder, no class subfolders
	writePNG(t, filepath.Join(flat, "a.png"), randomGray(1, 2, 2))
	writePNG(t, filepath.Join(flat, ".hidden", "b.png"), randomGray(1, 2, 2))
	_, err = OpenImageFolder(flat, Options{})
	contains(t, err, flat, "no class folders")

	_, err = OpenImageFolder(filepath.Join(flat, "missing"), Options{})
	contains(t, err, filepath.Join(flat, "missing"))
}

func TestOpenImageFolderEmptyClass(t *testing.T) {
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "a", "1.png"), randomGray(1, 2, 2))
	writeFile(t, filepath.Join(dir, "b", "readme.txt"), []byte("no images here"))
	_, err := OpenImageFolder(dir, Options{})
	contains(t, err, filepath.Join(dir, "b"), "no images")
}

func TestOpenImageFolderBadImages(t *testing.T) {
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "a", "1.png"), randomGray(1, 4, 4))
	writePNG(t, filepath.Join(dir, "a", "2.png"), randomGray(2, 4, 4))
	writeFile(t, filepath.Join(dir, "a", "bad.png"), []byte("this is not a PNG"))
	writeFile(t, filepath.Join(dir, "b", "bad.jpg"), []byte{0xff, 0xd8, 0xff, 0x00}) // a JPEG that stops at once
	writeJPEG(t, filepath.Join(dir, "b", "ok.jpg"), smoothRGB(8, 8, 0))

	_, err := OpenImageFolder(dir, Options{})
	contains(t, err, filepath.Join(dir, "a", "bad.png"), "1 more file that does not decode")
	var bie *BadImagesError
	if !errors.As(err, &bie) || len(bie.Bad) != 2 {
		t.Fatalf("want a BadImagesError listing 2 files, got %v", err)
	}
	_, err = OpenImageFolder(dir, Options{OnBadImage: "fail"})
	contains(t, err, filepath.Join(dir, "a", "bad.png"))
	_, err = OpenImageFolder(dir, Options{OnBadImage: "ignore"})
	contains(t, err, "OnBadImage", "fail", "skip")

	s, err := OpenImageFolder(dir, Options{OnBadImage: BadImageSkip})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 {
		t.Fatalf("Len %d, want 3", s.Len())
	}
	sk := s.Skipped()
	if len(sk) != 2 || sk[0].Path != filepath.Join(dir, "a", "bad.png") || sk[1].Path != filepath.Join(dir, "b", "bad.jpg") || sk[0].Err == nil {
		t.Fatalf("skipped %v", sk)
	}
	for i := range s.Len() {
		if _, err := s.Image(i); err != nil {
			t.Fatal(err)
		}
	}

	// A class whose only image is bad is an empty class.
	writeFile(t, filepath.Join(dir, "c", "bad.png"), []byte("junk"))
	_, err = OpenImageFolder(dir, Options{OnBadImage: BadImageSkip})
	contains(t, err, filepath.Join(dir, "c"), "no decodable images")
}

// A truncated PNG passes the header check: with Quick the failure comes when the image is
// decoded (clearly, naming the file); by default it is caught at open time.
func TestOpenImageFolderTruncated(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := png.Encode(&buf, randomRGB(5, 20, 20)); err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "a", "trunc.png")
	writeFile(t, trunc, buf.Bytes()[:buf.Len()/2])
	writePNG(t, filepath.Join(dir, "a", "ok.png"), randomRGB(6, 20, 20))
	writePNG(t, filepath.Join(dir, "b", "ok.png"), randomRGB(7, 20, 20))

	s, err := OpenImageFolder(dir, Options{Quick: true})
	if err != nil {
		t.Fatalf("the header check should pass a truncated file: %v", err)
	}
	_, err = s.Image(1) // a/trunc.png sorts after a/ok.png
	contains(t, err, trunc, "Quick", "truncated")

	l, err := NewLoader(s, LoaderOptions{BatchSize: 2, Workers: 2, Preprocess: Preprocess{Mode: ModeNone, Channels: 3, Height: 8, Width: 8}})
	if err != nil {
		t.Fatal(err)
	}
	var gotErr error
	batches := 0
	for _, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			gotErr = err
			break
		}
		batches++
	}
	contains(t, gotErr, trunc)
	if batches != 0 {
		t.Fatalf("%d batches before the error, want 0 (the bad file is in the first batch)", batches)
	}

	_, err = OpenImageFolder(dir, Options{})
	contains(t, err, trunc)
	s, err = OpenImageFolder(dir, Options{OnBadImage: BadImageSkip})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || len(s.Skipped()) != 1 || s.Skipped()[0].Path != trunc {
		t.Fatalf("Len %d, skipped %v", s.Len(), s.Skipped())
	}
}

func TestOpenImageFolderClasses(t *testing.T) {
	train := makeFolder(t, []string{"a", "b", "c"}, 1)
	val := makeFolder(t, []string{"a", "c"}, 1)
	tr, err := OpenImageFolder(train, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenImageFolder(train, Options{Classes: tr.Classes()}); err != nil {
		t.Fatal(err)
	}
	_, err = OpenImageFolder(val, Options{Classes: tr.Classes()})
	contains(t, err, val, "missing b")
	_, err = OpenImageFolder(train, Options{Classes: []string{"a", "c"}})
	contains(t, err, train, "unexpected b")
}

func TestOpenImageFolderSymlink(t *testing.T) {
	real := t.TempDir()
	writePNG(t, filepath.Join(real, "1.png"), randomGray(1, 2, 2))
	dir := t.TempDir()
	if err := os.Symlink(real, filepath.Join(dir, "linked")); err != nil {
		t.Skip("no symlinks:", err)
	}
	s, err := OpenImageFolder(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 || s.Classes()[0] != "linked" {
		t.Fatalf("Len %d classes %v", s.Len(), s.Classes())
	}
}
