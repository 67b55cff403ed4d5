package dataset

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
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
