package dataset

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// MeanStd computes the per-channel mean and (population) standard deviation of data's pixels
// on the 0-1 scale, as torchvision's ToTensor gives them: the numbers to put in a torch-mode
// Preprocess's Mean and Std. Images are taken at their own size (not resized), converted to
// channels channels (1: grayscale or luma; 3: RGB, grayscale replicated) as Preprocess does.
// Images are decoded by GOMAXPROCS goroutines; the result does not depend on their number.
func MeanStd(ctx context.Context, data Examples, channels int) (mean, std []float64, err error) {
	if channels != 1 && channels != 3 {
		return nil, nil, fmt.Errorf("dataset: MeanStd: %d channels, want 1 or 3", channels)
	}
	n := data.Len()
	if n == 0 {
		return nil, nil, fmt.Errorf("dataset: MeanStd: no examples")
	}
	// Per-example sums, combined in example order afterwards, keep the result independent
	// of scheduling.
	type sums struct {
		s, ss [3]float64
		count float64
	}
	per := make([]sums, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			var pic picture
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				img, err := data.Image(i)
				if err != nil {
					errs[i] = err
					cancel()
					return
				}
				pic.fromImage(img, channels == 1)
				k, hw := pic.c, pic.w*pic.h
				var r sums
				for p := range k {
					var s, ss float64
					for _, v := range pic.plane(p) {
						x := float64(v) / 255
						s += x
						ss += x * x
					}
					r.s[p], r.ss[p] = s, ss
				}
				if k == 1 {
					for p := 1; p < channels; p++ {
						r.s[p], r.ss[p] = r.s[0], r.ss[0]
					}
				}
				r.count = float64(hw)
				per[i] = r
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, nil, e
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var tot sums
	for _, r := range per {
		for c := range channels {
			tot.s[c] += r.s[c]
			tot.ss[c] += r.ss[c]
		}
		tot.count += r.count
	}
	mean = make([]float64, channels)
	std = make([]float64, channels)
	for c := range channels {
		m := tot.s[c] / tot.count
		mean[c] = m
		std[c] = math.Sqrt(max(tot.ss[c]/tot.count-m*m, 0))
	}
	return mean, std, nil
}
