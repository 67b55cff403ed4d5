package dataset

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Mixup and Cutmix over a batch, as torchvision's classification references
// (references/classification/transforms.py: RandomMixup, RandomCutmix, with p = 1, picked
// at random when both are on) and timm's Mixup do them: each image is blended with the
// one before it in the batch (batch.roll(1)), with one weight for the whole batch.

// purposeMix separates the batch-level draws from the per-example ones.
const purposeMix uint64 = 0x4d4958 // "MIX"

// mixBatch blends the n images of the batch (size floats each, c x h x w) in place with the
// draws of key, and returns how. save is scratch of at least size floats.
func (a Augment) mixBatch(images []float32, labels []int, n, c, h, w int, key uint64, save []float32) *Mix {
	r := newPCG(key)
	cut := a.Cutmix > 0
	if a.Mixup > 0 && a.Cutmix > 0 {
		cut = r.Uint64()>>63 == 1
	}
	alpha := a.Mixup
	if cut {
		alpha = a.Cutmix
	}
	lam := distuv.Beta{Alpha: alpha, Beta: alpha, Src: r}.Rand()
	size := c * h * w
	m := &Mix{Lambda: lam, PartnerLabels: make([]int, n), Cutmix: cut}
	for i := range n {
		m.PartnerLabels[i] = labels[(i+n-1)%n]
	}
	// Image i takes from image i-1 as it was: go from the last image down, keeping the
	// last one's original for the first.
	copy(save[:size], images[(n-1)*size:n*size])
	partner := func(i int) []float32 {
		if i == 0 {
			return save[:size]
		}
		return images[(i-1)*size : i*size]
	}
	if !cut {
		l, k := float32(lam), float32(1-lam)
		for i := n - 1; i >= 0; i-- {
			x, y := images[i*size:(i+1)*size], partner(i)
			for j := range x {
				x[j] = x[j]*l + y[j]*k
			}
		}
		return m
	}
	rx := bounded(r.Uint64(), w)
	ry := bounded(r.Uint64(), h)
	rr := 0.5 * math.Sqrt(1-lam)
	rw, rh := int(rr*float64(w)), int(rr*float64(h))
	x1, y1 := max(rx-rw, 0), max(ry-rh, 0)
	x2, y2 := min(rx+rw, w), min(ry+rh, h)
	for i := n - 1; i >= 0; i-- {
		x, y := images[i*size:(i+1)*size], partner(i)
		for ch := range c {
			for yy := y1; yy < y2; yy++ {
				o := ch*h*w + yy*w
				copy(x[o+x1:o+x2], y[o+x1:o+x2])
			}
		}
	}
	m.Lambda = 1 - float64((x2-x1)*(y2-y1))/float64(w*h)
	return m
}
