package dataset

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
)

// TestMeanStdFashionMNIST: numpy gives mean 0.2860405969887955 and population std
// 0.35302424451492237 over the 60000 training images scaled to 0-1.
func TestMeanStdFashionMNIST(t *testing.T) {
	src := fashionMNIST(t, "train")
	mean, std, err := MeanStd(context.Background(), src, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(mean[0]-0.2860405969887955) > 1e-9 || math.Abs(std[0]-0.35302424451492237) > 1e-9 {
		t.Fatalf("mean %v std %v", mean, std)
	}
	mean3, std3, err := MeanStd(context.Background(), NewView(src, []int{0, 1, 2, 3}), 3)
	if err != nil {
		t.Fatal(err)
	}
	if mean3[0] != mean3[2] || std3[1] != std3[2] {
		t.Fatalf("grey replicated to 3 channels: %v %v", mean3, std3)
	}
}

func TestMeanStd(t *testing.T) {
	// Two 2x1 RGB images: R values 10, 255, 20, 30.
	a := twoPixels()
	b := twoPixels()
	b.Pix[0], b.Pix[4] = 20, 30
	src := imageList{a, b}
	mean, std, err := MeanStd(context.Background(), src, 3)
	if err != nil {
		t.Fatal(err)
	}
	rs := []float64{10, 255, 20, 30}
	m, ss := 0.0, 0.0
	for _, v := range rs {
		m += v / 255 / 4
	}
	for _, v := range rs {
		ss += (v/255 - m) * (v/255 - m) / 4
	}
	if math.Abs(mean[0]-m) > 1e-12 || math.Abs(std[0]-math.Sqrt(ss)) > 1e-12 {
		t.Fatalf("R: mean %v std %v, want %v %v", mean[0], std[0], m, math.Sqrt(ss))
	}
	if math.Abs(mean[1]-100.0/255/2) > 1e-12 || math.Abs(mean[2]-250.0/255/2) > 1e-12 {
		t.Fatalf("G, B means %v", mean)
	}
	if _, _, err := MeanStd(context.Background(), src, 2); err == nil {
		t.Fatal("2 channels accepted")
	}
	calls := &atomic.Int64{}
	_, _, err = MeanStd(context.Background(), slowExamples{fakeExamples{make([]int, 20)}, 0, calls, 7}, 1)
	contains(t, err, "fake[7]")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := MeanStd(ctx, src, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
