package dataset

import "testing"

func TestResizeBilinearErrors(t *testing.T) {
	if _, err := ResizeBilinear(make([]float32, 5), 1, 2, 3, 4, 4); err == nil {
		t.Fatal("length mismatch accepted")
	}
	if _, err := ResizeBilinear(nil, 1, 0, 3, 4, 4); err == nil {
		t.Fatal("zero size accepted")
	}
}

// Hand-checked values: upscaling [0, 10] to 4 samples at -0.25, 0.25, 0.75, 1.25, clamped
// to [0, 1] of the input: 0, 2.5, 7.5, 10.
func TestResizeBilinearHand(t *testing.T) {
	got, err := ResizeBilinear([]float32{0, 10}, 1, 1, 2, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 2.5, 7.5, 10}
	if d, _ := maxAbsDiff(got, want); d > 1e-6 {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Downscaling 4 -> 2 without antialias samples at 0.5 and 2.5: the means of pairs.
	got, _ = ResizeBilinear([]float32{0, 4, 8, 100}, 1, 1, 4, 1, 2)
	want = []float32{2, 54}
	if d, _ := maxAbsDiff(got, want); d > 1e-6 {
		t.Fatalf("got %v, want %v", got, want)
	}
}
