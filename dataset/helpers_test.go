package dataset

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"toolkit/internal/testref"
)

// debianPython is Debian's interpreter, which has torch, numpy and PIL; the python3 first on
// PATH may not.
const debianPython = "/usr/bin/python3"

var (
	pyOnce    sync.Once
	pyMissing string // why the reference cannot run, or ""
)

// needTorch skips the test when Debian's Python with torch, numpy and PIL is missing.
func needTorch(t testing.TB) {
	t.Helper()
	pyOnce.Do(func() {
		out, err := exec.Command(debianPython, "-c", "import torch, numpy, PIL").CombinedOutput()
		if err != nil {
			pyMissing = fmt.Sprintf("%s cannot import torch, numpy and PIL (install Debian's python3-torch): %v: %s",
				debianPython, err, strings.TrimSpace(string(out)))
		}
	})
	if pyMissing != "" {
		testref.Missing(t, "%s", "reference unavailable: "+pyMissing)
	}
}

// runPython runs script with Debian's Python and args, failing the test on error.
func runPython(t testing.TB, script string, args ...string) string {
	t.Helper()
	needTorch(t)
	f := filepath.Join(t.TempDir(), "ref.py")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(debianPython, append([]string{f}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("reference script failed: %v\n%s", err, out)
	}
	return string(out)
}

func writeF32(t testing.TB, path string, v []float32) {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF32(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// maxAbsDiff is the largest |a-b|, and where.
func maxAbsDiff(a, b []float32) (float64, int) {
	m, at := 0.0, -1
	for i := range a {
		if d := math.Abs(float64(a[i]) - float64(b[i])); d > m || math.IsNaN(d) {
			m, at = d, i
		}
	}
	return m, at
}

// randomRGB is a w x h image of seeded random colours.
func randomRGB(seed uint64, w, h int) *image.NRGBA {
	r := rand.New(rand.NewPCG(seed, 1))
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255
	}
	return m
}

// randomGray is a w x h grayscale image of seeded random values.
func randomGray(seed uint64, w, h int) *image.Gray {
	r := rand.New(rand.NewPCG(seed, 2))
	m := image.NewGray(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(r.IntN(256))
	}
	return m
}

// smoothRGB is a w x h image whose colours vary smoothly, so that JPEG keeps it close.
func smoothRGB(w, h int, phase float64) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			m.SetNRGBA(x, y, color.NRGBA{
				uint8(127 + 120*math.Sin(6*fx+phase)),
				uint8(127 + 120*math.Cos(5*fy+phase)),
				uint8(127 + 120*math.Sin(4*(fx+fy)+phase)),
				255,
			})
		}
	}
	return m
}

func writePNG(t testing.TB, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeJPEG(t testing.TB, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeFolder writes an image folder: perClass images (28x28 PNGs, alternating grey and
// colour, some as JPEG) for each class.
func makeFolder(t testing.TB, classes []string, perClass int) string {
	t.Helper()
	dir := t.TempDir()
	for ci, c := range classes {
		for k := range perClass {
			seed := uint64(ci*1000 + k)
			switch k % 3 {
			case 0:
				writePNG(t, filepath.Join(dir, c, fmt.Sprintf("img%03d.png", k)), randomGray(seed, 28, 28))
			case 1:
				writePNG(t, filepath.Join(dir, c, fmt.Sprintf("img%03d.png", k)), randomRGB(seed, 30, 26))
			default:
				writeJPEG(t, filepath.Join(dir, c, fmt.Sprintf("img%03d.jpg", k)), smoothRGB(40, 36, float64(seed)))
			}
		}
	}
	return dir
}

func contains(t testing.TB, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error mentioning %q, got nil", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
}

func decodeForTest(t testing.TB, path string) image.Image {
	t.Helper()
	img, err := DecodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imageList is an Examples of in-memory images, all labelled 0.
type imageList []image.Image

func (l imageList) Len() int                         { return len(l) }
func (l imageList) Label(int) int                    { return 0 }
func (l imageList) Name(i int) string                { return fmt.Sprintf("image%d", i) }
func (l imageList) Image(i int) (image.Image, error) { return l[i], nil }

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
