package jpeg

import (
	"bytes"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// photoJPEG makes a w x h photo-like JPEG with Go's encoder (4:2:0): the
// testdata photo (scipy's raccoon) upscaled bilinearly, plus Gaussian
// noise of sigma 8, which gives a phone photo's file size (a 12-MP one at
// quality 90 is about 3.5 MB).
func photoJPEG(t testing.TB, w, h, quality int) []byte {
	t.Helper()
	src, err := stdjpeg.Decode(bytes.NewReader(readTestFile(t, "pil_420_q90_320x240.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	sb := src.Bounds()
	rgb := func(x, y int) [3]float64 {
		r, g, b, _ := src.At(sb.Min.X+min(x, sb.Dx()-1), sb.Min.Y+min(y, sb.Dy()-1)).RGBA()
		return [3]float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}
	}
	rng := rand.New(rand.NewPCG(9, 10))
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		fy := (float64(y)+0.5)*float64(sb.Dy())/float64(h) - 0.5
		y0 := max(int(fy), 0)
		ay := max(fy-float64(y0), 0)
		for x := 0; x < w; x++ {
			fx := (float64(x)+0.5)*float64(sb.Dx())/float64(w) - 0.5
			x0 := max(int(fx), 0)
			ax := max(fx-float64(x0), 0)
			p00, p10, p01, p11 := rgb(x0, y0), rgb(x0+1, y0), rgb(x0, y0+1), rgb(x0+1, y0+1)
			var c [3]uint8
			for i := range c {
				v := (p00[i]*(1-ax)+p10[i]*ax)*(1-ay) + (p01[i]*(1-ax)+p11[i]*ax)*ay + rng.NormFloat64()*8
				c[i] = uint8(min(max(v+0.5, 0), 255))
			}
			m.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
		}
	}
	var buf bytes.Buffer
	if err := stdjpeg.Encode(&buf, m, &stdjpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// benchInputs holds the benchmark JPEGs: a 12-MP photo (the file named by
// $JPEG_BENCH_FILE, e.g. a Pillow-encoded phone-like photo, else made by
// photoJPEG) and 500x375 and 224x224 photos.
type benchInputs struct{ big, mid, small []byte }

func loadBenchInputs(b testing.TB) benchInputs {
	var in benchInputs
	if f := os.Getenv("JPEG_BENCH_FILE"); f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		in.big = data
	} else {
		in.big = photoJPEG(b, 4000, 3000, 90)
	}
	in.mid = photoJPEG(b, 500, 375, 90)
	in.small = photoJPEG(b, 224, 224, 90)
	return in
}

// TestWriteBenchInputs writes the benchmark inputs to $JPEG_BENCH_OUT, so
// that other decoders (Pillow) can be timed on the same bytes.
func TestWriteBenchInputs(t *testing.T) {
	dir := os.Getenv("JPEG_BENCH_OUT")
	if dir == "" {
		t.Skip("set JPEG_BENCH_OUT to a folder to write the benchmark inputs")
	}
	in := loadBenchInputs(t)
	for name, data := range map[string][]byte{"big.jpg": in.big, "mid.jpg": in.mid, "small.jpg": in.small} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// cpuTime is the process's user+system CPU time: the benchmarks report
// CPU-ms per image, which other load on the machine disturbs less than
// wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchLoop(b *testing.B, data []byte, decode func() error) {
	b.SetBytes(int64(len(data)))
	t0 := cpuTime()
	for b.Loop() {
		if err := decode(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-t0)/1e6/float64(b.N), "cpu-ms/op")
}

func benchOurs(b *testing.B, data []byte, opts Options) {
	var d Decoder
	var m Image
	benchLoop(b, data, func() error { return d.Decode(data, opts, &m) })
}

func benchStd(b *testing.B, data []byte) {
	benchLoop(b, data, func() error {
		_, err := stdjpeg.Decode(bytes.NewReader(data))
		return err
	})
}

// BenchmarkDecode times this decoder and image/jpeg on the same bytes.
// The 12-MP regions: "region10pct" is a centred crop of about 10% of the
// image's area at scale 1/2, "region224" a 224x224 crop at 1/8.
func BenchmarkDecode(b *testing.B) {
	in := loadBenchInputs(b)
	h, err := DecodeHeader(in.big)
	if err != nil {
		b.Fatal(err)
	}
	w2, h2 := (h.Width+1)/2, (h.Height+1)/2
	r10 := image.Rect(w2/2-w2*16/100, h2/2-h2*16/100, w2/2+w2*16/100, h2/2+h2*16/100)
	w8, h8 := (h.Width+7)/8, (h.Height+7)/8
	r224 := image.Rect(w8/2-112, h8/2-112, w8/2+112, h8/2+112).Intersect(image.Rect(0, 0, w8, h8))
	b.Run("12MP/scale1", func(b *testing.B) { benchOurs(b, in.big, Options{Scale: 1}) })
	b.Run("12MP/scale2", func(b *testing.B) { benchOurs(b, in.big, Options{Scale: 2}) })
	b.Run("12MP/scale4", func(b *testing.B) { benchOurs(b, in.big, Options{Scale: 4}) })
	b.Run("12MP/scale8", func(b *testing.B) { benchOurs(b, in.big, Options{Scale: 8}) })
	b.Run("12MP/scale2-region10pct", func(b *testing.B) { benchOurs(b, in.big, Options{Scale: 2, Region: r10}) })
	b.Run("12MP/scale8-region224", func(b *testing.B) { benchOurs(b, in.big, Options{Scale: 8, Region: r224}) })
	b.Run("12MP/image-jpeg", func(b *testing.B) { benchStd(b, in.big) })
	b.Run("500x375/scale1", func(b *testing.B) { benchOurs(b, in.mid, Options{Scale: 1}) })
	b.Run("500x375/image-jpeg", func(b *testing.B) { benchStd(b, in.mid) })
	b.Run("224x224/scale1", func(b *testing.B) { benchOurs(b, in.small, Options{Scale: 1}) })
	b.Run("224x224/image-jpeg", func(b *testing.B) { benchStd(b, in.small) })
}
