package jpeg

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var scales = []int{1, 2, 4, 8}

// testFiles returns the JPEGs of testdata (see testdata/gen.sh) that pass
// the filter.
func testFiles(t testing.TB, keep func(name string) bool) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.jpg")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test JPEGs in testdata (run testdata/gen.sh): %v", err)
	}
	var out []string
	for _, f := range files {
		if keep(filepath.Base(f)) {
			out = append(out, f)
		}
	}
	return out
}

// isCMYK: ImageMagick made the 4-component files, which djpeg cannot
// write as RGB the way Pillow converts them.
func isCMYK(name string) bool { return strings.HasPrefix(name, "im_") }

func isUnsupported(name string) bool { return name == "cj_arith.jpg" }

func threeOrOneComponent(name string) bool { return !isCMYK(name) && !isUnsupported(name) }

// TestMatchesDjpeg decodes every test file at every scale and compares
// with djpeg -dct int -scale 1/N, byte for byte. One Decoder and one
// Image serve every decode, so that state left by one file would show in
// the next.
func TestMatchesDjpeg(t *testing.T) {
	djpegPath(t)
	var d Decoder
	var m Image
	for _, file := range testFiles(t, threeOrOneComponent) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, scale := range scales {
			want, err := djpeg(t, file, scale)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Decode(data, Options{Scale: scale}, &m); err != nil {
				t.Errorf("%s at 1/%d: %v", file, scale, err)
				continue
			}
			if desc, _, _ := imageDiff(&m, want, image.Rectangle{}); desc != "" {
				t.Errorf("%s at 1/%d: %s", file, scale, desc)
			}
		}
	}
}

// goEncoded makes photo-like test images with Go's encoder (4:2:0 for
// colour): a smooth field plus noise, at sizes that are not multiples of
// the MCU.
func goEncoded(t testing.TB) map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	out := map[string][]byte{}
	for _, sz := range [][2]int{{1, 1}, {8, 8}, {13, 7}, {100, 75}, {257, 129}} {
		for _, q := range []int{50, 90, 100} {
			w, h := sz[0], sz[1]
			rgb := image.NewRGBA(image.Rect(0, 0, w, h))
			gray := image.NewGray(rgb.Rect)
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					n := func(a float64) uint8 {
						v := a + rng.NormFloat64()*8
						return uint8(min(max(v, 0), 255))
					}
					fx, fy := float64(x)/float64(w), float64(y)/float64(h)
					rgb.Set(x, y, color.RGBA{n(255 * fx), n(255 * fy), n(128 + 100*(fx-fy)), 255})
					gray.SetGray(x, y, color.Gray{n(200*fx*fy + 30)})
				}
			}
			for _, m := range []image.Image{rgb, gray} {
				var buf bytes.Buffer
				if err := stdjpeg.Encode(&buf, m, &stdjpeg.Options{Quality: q}); err != nil {
					t.Fatal(err)
				}
				kind := "rgb"
				if m == gray {
					kind = "gray"
				}
				out[fmt.Sprintf("go_%s_%dx%d_q%d.jpg", kind, w, h, q)] = buf.Bytes()
			}
		}
	}
	return out
}

// TestMatchesDjpegGoEncoded does the same for files from Go's encoder.
func TestMatchesDjpegGoEncoded(t *testing.T) {
	djpegPath(t)
	dir := t.TempDir()
	var d Decoder
	var m Image
	files := goEncoded(t)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, scale := range scales {
			want, err := djpeg(t, file, scale)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Decode(data, Options{Scale: scale}, &m); err != nil {
				t.Errorf("%s at 1/%d: %v", name, scale, err)
				continue
			}
			if desc, _, _ := imageDiff(&m, want, image.Rectangle{}); desc != "" {
				t.Errorf("%s at 1/%d: %s", name, scale, desc)
			}
		}
	}
}

// TestRegionMatchesDjpeg decodes regions (edges, corners, odd offsets,
// single pixels) and compares the pixels inside them with djpeg's whole
// image.
func TestRegionMatchesDjpeg(t *testing.T) {
	djpegPath(t)
	rng := rand.New(rand.NewPCG(3, 4))
	var d Decoder
	var m Image
	files := testFiles(t, func(n string) bool {
		return threeOrOneComponent(n) && (strings.Contains(n, "q90") || strings.Contains(n, "prog") ||
			strings.HasPrefix(n, "cj_4") || strings.Contains(n, "mixed") || strings.Contains(n, "rgb"))
	})
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, scale := range scales {
			want, err := djpeg(t, file, scale)
			if err != nil {
				t.Fatal(err)
			}
			w, h := want.Width, want.Height
			regions := []image.Rectangle{
				image.Rect(0, 0, 1, 1), image.Rect(w-1, h-1, w, h),
				image.Rect(0, 0, w, 1), image.Rect(0, h-1, w, h), image.Rect(w/2, 0, w/2+1, h),
			}
			for i := 0; i < 12; i++ {
				x0, y0 := rng.IntN(w), rng.IntN(h)
				regions = append(regions, image.Rect(x0, y0, x0+1+rng.IntN(w-x0), y0+1+rng.IntN(h-y0)))
			}
			for _, r := range regions {
				if err := d.Decode(data, Options{Scale: scale, Region: r}, &m); err != nil {
					t.Errorf("%s at 1/%d, region %v: %v", file, scale, r, err)
					continue
				}
				if desc, _, _ := imageDiff(&m, want, r); desc != "" {
					t.Errorf("%s at 1/%d, region %v: %s", file, scale, r, desc)
				}
			}
		}
	}
}

// TestMatchesPillow checks, at full size, that Pillow's
// Image.open(f).convert("RGB") gives the same pixels as this decoder (and
// so as djpeg), for every supported test file; for CMYK and YCCK files it
// is the reference (Pillow's own CMYK conversion).
func TestMatchesPillow(t *testing.T) {
	files := testFiles(t, func(n string) bool { return !isUnsupported(n) })
	want := pillowRGB(t, files)
	var d Decoder
	var m Image
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Decode(data, Options{}, &m); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		got := &m
		if m.Channels == 1 {
			got = greyToRGB(&m)
		}
		if desc, _, _ := imageDiff(got, want[i], image.Rectangle{}); desc != "" {
			t.Errorf("%s: %s", file, desc)
		}
	}
}

// pillowRGB runs Debian's Python with Pillow (9.4) once over the files and
// returns what Image.open(f).convert("RGB") gives for each.
func pillowRGB(t testing.TB, files []string) []*Image {
	t.Helper()
	const script = `
import sys
from PIL import Image
for f in sys.argv[1:]:
    m = Image.open(f).convert("RGB")
    sys.stdout.buffer.write(b"%d %d\n" % m.size)
    sys.stdout.buffer.write(m.tobytes())
`
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		missingRef(t, "/usr/bin/python3 not found: apt-get install python3-pil")
	}
	cmd := exec.Command(py, append([]string{"-c", script}, files...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "No module named") {
			missingRef(t, "Pillow not importable by /usr/bin/python3: apt-get install python3-pil")
		}
		t.Fatalf("Pillow: %v: %s", err, stderr.String())
	}
	b := out.Bytes()
	var imgs []*Image
	for range files {
		var w, h int
		i := bytes.IndexByte(b, '\n')
		if _, err := fmt.Sscan(string(b[:i]), &w, &h); err != nil {
			t.Fatalf("Pillow output: %v", err)
		}
		b = b[i+1:]
		imgs = append(imgs, interleavedToPlanar(b[:w*h*3], w, h, 3))
		b = b[w*h*3:]
	}
	return imgs
}

func greyToRGB(m *Image) *Image {
	n := m.Width * m.Height
	out := &Image{Width: m.Width, Height: m.Height, Channels: 3, Pix: make([]uint8, 3*n)}
	for c := 0; c < 3; c++ {
		copy(out.Pix[c*n:], m.Pix[:n])
	}
	return out
}

// TestCMYKMatchesDjpeg checks the CMYK that 4-component files decode to,
// before the RGB conversion, at every scale: djpeg writes CMYK as PPM
// through cmyk_to_rgb (cmyk.h), which the test applies to ours.
func TestCMYKMatchesDjpeg(t *testing.T) {
	djpegPath(t)
	d := Decoder{rawCMYK: true}
	var m Image
	for _, file := range testFiles(t, isCMYK) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, scale := range scales {
			want, err := djpeg(t, file, scale)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Decode(data, Options{Scale: scale}, &m); err != nil {
				t.Errorf("%s at 1/%d: %v", file, scale, err)
				continue
			}
			if m.Channels != 4 {
				t.Fatalf("%s: %d channels in raw CMYK mode", file, m.Channels)
			}
			n := m.Width * m.Height
			got := &Image{Width: m.Width, Height: m.Height, Channels: 3, Pix: make([]uint8, 3*n)}
			for i := 0; i < n; i++ {
				k := float64(m.Pix[3*n+i])
				for c := 0; c < 3; c++ {
					got.Pix[c*n+i] = uint8(float64(m.Pix[c*n+i])*k/255.0 + 0.5)
				}
			}
			if desc, _, _ := imageDiff(got, want, image.Rectangle{}); desc != "" {
				t.Errorf("%s at 1/%d: %s", file, scale, desc)
			}
			// And a region of it, decoded on its own.
			r := image.Rect(m.Width/3, m.Height/4, m.Width/3+max(m.Width/2, 1), m.Height/4+max(m.Height/3, 1))
			full := append([]uint8(nil), m.Pix...)
			if err := d.Decode(data, Options{Scale: scale, Region: r}, &m); err != nil {
				t.Errorf("%s at 1/%d, region %v: %v", file, scale, r, err)
				continue
			}
			wantRegion := &Image{Width: m.Width, Height: m.Height, Channels: 4, Pix: full}
			if desc, _, _ := imageDiff(&m, wantRegion, r); desc != "" {
				t.Errorf("%s at 1/%d, region %v: %s", file, scale, r, desc)
			}
		}
	}
}
