package dataset

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// meter reports images per second of wall time and, because the benchmark machines are
// shared, CPU milliseconds per image (user+system time of the whole process, GC included),
// which other load disturbs less.
type meter struct {
	start time.Time
	cpu   time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startMeter() meter { return meter{time.Now(), cpuTime()} }

func (m meter) report(b *testing.B, images int) {
	b.ReportMetric(float64(images)/time.Since(m.start).Seconds(), "images/s")
	b.ReportMetric(float64(cpuTime()-m.cpu)/float64(time.Millisecond)/float64(images), "cpu-ms/image")
}

// benchPipeline decodes encoded images from memory and preprocesses them on one goroutine.
func benchPipeline(b *testing.B, files [][]byte, p Preprocess, a Augment) {
	tr, err := p.compile(a)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, p.Size())
	var s scratch
	i := 0
	m := startMeter()
	for b.Loop() {
		img, _, err := image.Decode(bytes.NewReader(files[i%len(files)]))
		if err != nil {
			b.Fatal(err)
		}
		tr.apply(dst, img, &s, tr.draw(uint64(i)))
		i++
	}
	m.report(b, i)
}

func encodedPNGs(b *testing.B, n, w, h int) [][]byte {
	var out [][]byte
	for k := range n {
		var buf bytes.Buffer
		if err := png.Encode(&buf, randomGray(uint64(k), w, h)); err != nil {
			b.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

func encodedJPEGs(b *testing.B, n, w, h int) [][]byte {
	var out [][]byte
	for k := range n {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, smoothRGB(w, h, float64(k)), &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// One goroutine: 28x28 grey PNG (Fashion-MNIST-like) to 3x32x32, torch mode, augmented.
func BenchmarkPNG28To3x32(b *testing.B) {
	benchPipeline(b, encodedPNGs(b, 64, 28, 28),
		Preprocess{Mode: ModeTorch, Mean: []float64{0.286}, Std: []float64{0.353}, Channels: 3, Height: 32, Width: 32},
		Augment{HFlip: true, PadCrop: 4})
}

// One goroutine: 224x224 colour JPEG to 3x224x224, caffe mode (no resize).
func BenchmarkJPEG224To3x224(b *testing.B) {
	benchPipeline(b, encodedJPEGs(b, 16, 224, 224), Preprocess{Mode: ModeCaffe, Channels: 3, Height: 224, Width: 224}, Augment{HFlip: true})
}

// One goroutine: 500x375 colour JPEG resized to 3x224x224.
func BenchmarkJPEG500To3x224(b *testing.B) {
	benchPipeline(b, encodedJPEGs(b, 16, 500, 375), Preprocess{Mode: ModeTorch, Channels: 3, Height: 224, Width: 224}, Augment{})
}

// The Loader end to end from files on disk with GOMAXPROCS workers.
func benchLoader(b *testing.B, dir string, p Preprocess, a Augment) {
	src, err := OpenImageFolder(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := NewLoader(src, LoaderOptions{BatchSize: 32, Shuffle: true, Preprocess: p, Augment: a})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	epoch := 0
	m := startMeter()
	for b.Loop() {
		for batch, err := range l.Epoch(context.Background(), epoch) {
			if err != nil {
				b.Fatal(err)
			}
			n += batch.N
		}
		epoch++
	}
	m.report(b, n)
}

func BenchmarkLoaderPNG28To3x32(b *testing.B) {
	dir := b.TempDir()
	for k, data := range encodedPNGs(b, 512, 28, 28) {
		writeFile(b, filepath.Join(dir, fmt.Sprint(k%10), fmt.Sprintf("%04d.png", k)), data)
	}
	benchLoader(b, dir, Preprocess{Mode: ModeTorch, Mean: []float64{0.286}, Std: []float64{0.353}, Channels: 3, Height: 32, Width: 32},
		Augment{HFlip: true, PadCrop: 4})
}

func BenchmarkLoaderJPEG224To3x224(b *testing.B) {
	dir := b.TempDir()
	for k, data := range encodedJPEGs(b, 96, 224, 224) {
		writeFile(b, filepath.Join(dir, fmt.Sprint(k%4), fmt.Sprintf("%04d.jpg", k)), data)
	}
	benchLoader(b, dir, Preprocess{Mode: ModeCaffe, Channels: 3, Height: 224, Width: 224}, Augment{HFlip: true})
}

// IDX in memory (no decoding): the loader's own overhead plus preprocessing.
func BenchmarkLoaderIDXTo3x32(b *testing.B) {
	needFashionMNIST(b)
	src, err := Open("idx", filepath.Join(fmnistDir, "t10k"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := NewLoader(src, LoaderOptions{BatchSize: 64, Shuffle: true,
		Preprocess: Preprocess{Mode: ModeTorch, Mean: []float64{0.286}, Std: []float64{0.353}, Channels: 3, Height: 32, Width: 32},
		Augment:    Augment{HFlip: true, PadCrop: 4}})
	if err != nil {
		b.Fatal(err)
	}
	n, epoch := 0, 0
	m := startMeter()
	for b.Loop() {
		for batch, err := range l.Epoch(context.Background(), epoch) {
			if err != nil {
				b.Fatal(err)
			}
			n += batch.N
		}
		epoch++
	}
	m.report(b, n)
}

// phonePhoto is a 12-megapixel JPEG like a phone's: the file TOOLKIT_BENCH_PHOTO names,
// else the 640x480 fixture enlarged bilinearly to 4000x3000 with Gaussian noise of
// sigma 8 (grain and detail), encoded at quality 90, 4:2:0: about 3-4 MB, as phone photos
// are. The Pillow side of BENCHMARKS.md reads the same bytes (tools/bench/photo_bench.py).
func phonePhoto(b *testing.B) []byte {
	b.Helper()
	if p := os.Getenv("TOOLKIT_BENCH_PHOTO"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	src := decodeFixture(&testing.T{}, filepath.Join(photos, "face_640x480.jpg"), false)
	const W, H = 4000, 3000
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	r := rand.New(rand.NewPCG(8, 8))
	for y := range H {
		sy := min(float64(y)*float64(src.h)/H, float64(src.h-1))
		y0 := int(sy)
		y1 := min(y0+1, src.h-1)
		fy := sy - float64(y0)
		for x := range W {
			sx := min(float64(x)*float64(src.w)/W, float64(src.w-1))
			x0 := int(sx)
			x1 := min(x0+1, src.w-1)
			fx := sx - float64(x0)
			for c := range 3 {
				p := src.plane(c)
				v := (float64(p[y0*src.w+x0])*(1-fx)+float64(p[y0*src.w+x1])*fx)*(1-fy) +
					(float64(p[y1*src.w+x0])*(1-fx)+float64(p[y1*src.w+x1])*fx)*fy
				img.Pix[img.PixOffset(x, y)+c] = uint8(min(max(v+r.NormFloat64()*8, 0), 255))
			}
			img.Pix[img.PixOffset(x, y)+3] = 255
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	if p := os.Getenv("TOOLKIT_BENCH_PHOTO_OUT"); p != "" {
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return buf.Bytes()
}

// benchPhoto runs one example's whole path on one goroutine, from the file's bytes to the
// normalised input: header, crop draw, decoding (at reduced scale with draft), resampling,
// augmentation, normalisation.
func benchPhoto(b *testing.B, p Preprocess, a Augment, train, draft bool) {
	data := phonePhoto(b)
	tr, err := p.compile(a)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, p.Size())
	var s scratch
	i := 0
	m := startMeter()
	for b.Loop() {
		if err := tr.run(dst, input{data: data}, deriveKey(uint64(i)), train, draft, &s); err != nil {
			b.Fatal(err)
		}
		i++
	}
	m.report(b, i)
	b.ReportMetric(float64(len(data))/1e6, "MB/file")
}

var imagenet224 = Preprocess{Mode: ModeTorch, Channels: 3, Height: 224, Width: 224, Resize: ResizeCrop}

// A 12-MP phone photo to a 224x224 training input: RandomResizedCrop + hflip, DCT-domain
// reduction on (the default) and off; and to the evaluation input (Resize(256) +
// CenterCrop(224), full decode).
func BenchmarkPhoto12MPTrainDraft(b *testing.B) {
	benchPhoto(b, imagenet224, Augment{RandomResizedCrop: &DefaultRandomResizedCrop, HFlip: true}, true, true)
}

func BenchmarkPhoto12MPTrainFull(b *testing.B) {
	benchPhoto(b, imagenet224, Augment{RandomResizedCrop: &DefaultRandomResizedCrop, HFlip: true}, true, false)
}

func BenchmarkPhoto12MPTrainTrivialAugment(b *testing.B) {
	benchPhoto(b, imagenet224, Augment{RandomResizedCrop: &DefaultRandomResizedCrop, HFlip: true, TrivialAugment: true}, true, true)
}

func BenchmarkPhoto12MPEval(b *testing.B) {
	benchPhoto(b, imagenet224, Augment{}, false, false)
}

// The resampler alone: a 4000x3000 picture to the 341x256 grid of Resize(256), its
// 224x224 centre (the evaluation transform's work after decoding).
func BenchmarkResample12MPTo224(b *testing.B) {
	src := &picture{}
	src.reset(3, 4000, 3000)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range src.pix {
		src.pix[i] = uint8(r.IntN(256))
	}
	dst := make([]uint8, 3*224*224)
	var rs resampler
	pl := evalPlacement(ResizeCrop, DefaultCropPct, 4000, 3000, 224, 224)
	m := startMeter()
	n := 0
	for b.Loop() {
		rs.resample(dst, src, pl.src, InterpBilinear, pl.outW, pl.outH, pl.ox, pl.oy, pl.ow, pl.oh)
		n++
	}
	m.report(b, n)
}

// The Loader over the photo folder TOOLKIT_BENCH_FOLDER (tools/bench/photos_bench.sh):
// RandomResizedCrop + hflip to 224, with JPEG draft decoding, GOMAXPROCS workers, one epoch
// per iteration.
func BenchmarkLoaderFolder(b *testing.B) {
	dir := os.Getenv("TOOLKIT_BENCH_FOLDER")
	if dir == "" {
		b.Skip("TOOLKIT_BENCH_FOLDER names no photo folder (tools/bench/photos_bench.sh sets it)")
	}
	src, err := OpenImageFolder(dir, Options{OnBadImage: BadImageSkip})
	if err != nil {
		b.Fatal(err)
	}
	l, err := NewLoader(src, LoaderOptions{BatchSize: 16, Shuffle: true, Draft: true, Preprocess: imagenet224,
		Augment: Augment{RandomResizedCrop: &DefaultRandomResizedCrop, HFlip: true}})
	if err != nil {
		b.Fatal(err)
	}
	n, epoch := 0, 0
	m := startMeter()
	for b.Loop() {
		for batch, err := range l.Epoch(context.Background(), epoch) {
			if err != nil {
				b.Fatal(err)
			}
			n += batch.N
		}
		epoch++
	}
	m.report(b, n)
}
