package kernels

import "math/rand/v2"

// DropoutMask fills mask with inverted-dropout multipliers: each element is
// independently 0 with probability ratio and 1/(1-ratio) otherwise, drawn
// from rng (a caller-seeded generator, e.g. rand.New(rand.NewPCG(seed, seq)),
// so that runs are reproducible). ratio must lie in [0, 1]; ratio 0 gives all
// ones and ratio 1 all zeros. The mask is kept for [DropoutBackward]; a
// boolean ONNX mask output is mask != 0.
func DropoutMask[T Float](rng *rand.Rand, ratio float64, mask []T) {
	if !(ratio >= 0 && ratio <= 1) {
		panic("kernels: DropoutMask: ratio outside [0, 1]")
	}
	if ratio == 0 {
		fill(mask, 1)
		return
	}
	if ratio == 1 {
		clear(mask)
		return
	}
	keep := T(1 / (1 - ratio))
	for i := range mask {
		if rng.Float64() < ratio {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
	}
}

// DropoutForward sets y = x*mask (training mode; in inference dropout is
// the identity and needs no kernel). y may alias x.
func DropoutForward[T Float](x, mask, y []T) {
	need2("DropoutForward", x, mask)
	need2("DropoutForward", x, y)
	for i, v := range x {
		y[i] = v * mask[i]
	}
}

// DropoutBackward sets dx = dy*mask with the forward pass's mask. dx may
// alias dy.
func DropoutBackward[T Float](dy, mask, dx []T) {
	DropoutForward(dy, mask, dx)
}
