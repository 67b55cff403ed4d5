package dataset

import "fmt"

// axis holds, for each output position along one axis, the two input positions and their
// weights, computed exactly as PyTorch's upsample_bilinear2d (align_corners=False,
// antialias=False, output size given) computes them in float32:
//
//	scale = float32(in)/float32(out)
//	real  = max(float64(scale)*(dst+0.5) - 0.5, 0)     (float64)
//	i0    = floor(real); i1 = i0+1, or i0 at the last input position
//	w1    = float32(real - i0);   w0 = 1 - w1
type axis struct {
	i0, i1 []int32
	w0, w1 []float32
}

func (a *axis) compute(in, out int) {
	a.i0 = grow(a.i0, out)
	a.i1 = grow(a.i1, out)
	a.w0 = grow(a.w0, out)
	a.w1 = grow(a.w1, out)
	scale := float32(in) / float32(out)
	for d := range out {
		// As in PyTorch: the scale is a float, but dst+0.5 is a double, so the source
		// position and the weight are computed in float64; only the weight is rounded.
		real := float64(scale)*(float64(d)+0.5) - 0.5
		if real < 0 {
			real = 0
		}
		i0 := min(int(real), in-1)
		l := float32(min(max(real-float64(i0), 0), 1))
		i1 := i0
		if i0 < in-1 {
			i1 = i0 + 1
		}
		a.i0[d], a.i1[d] = int32(i0), int32(i1)
		a.w0[d], a.w1[d] = 1-l, l
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// resizer holds the scratch of one worker's bilinear resizes.
type resizer struct {
	x, y    axis
	tmp     []float32
	rowDone []bool
}

// plane resizes one h x w plane in src to oh x ow in dst, separably: each needed input row
// is interpolated horizontally (x0*wx0 + x1*wx1), then rows are combined vertically
// (r0*wy0 + r1*wy1), the same operations in the same order as PyTorch's kernel.
func (r *resizer) plane(dst, src []float32, h, w, oh, ow int) {
	r.x.compute(w, ow)
	r.y.compute(h, oh)
	r.tmp = grow(r.tmp, h*ow)
	r.rowDone = grow(r.rowDone, h)
	clear(r.rowDone)
	xi0, xi1, xw0, xw1 := r.x.i0, r.x.i1, r.x.w0, r.x.w1
	hrow := func(y int) []float32 {
		t := r.tmp[y*ow : (y+1)*ow : (y+1)*ow]
		if r.rowDone[y] {
			return t
		}
		s := src[y*w : (y+1)*w : (y+1)*w]
		for d := range t {
			a := float32(s[xi0[d]] * xw0[d]) // explicit conversions: no fused multiply-add
			b := float32(s[xi1[d]] * xw1[d])
			t[d] = a + b
		}
		r.rowDone[y] = true
		return t
	}
	for d := range oh {
		r0 := hrow(int(r.y.i0[d]))
		r1 := hrow(int(r.y.i1[d]))
		w0, w1 := r.y.w0[d], r.y.w1[d]
		o := dst[d*ow : (d+1)*ow : (d+1)*ow]
		for x := range o {
			a := float32(r0[x] * w0)
			b := float32(r1[x] * w1)
			o[x] = a + b
		}
	}
}

// ResizeBilinear resizes a float32 CHW tensor (channels x h x w) to channels x outH x outW
// with bilinear interpolation, matching PyTorch's
// F.interpolate(x, size=(outH, outW), mode="bilinear", align_corners=False, antialias=False).
// Like PyTorch without antialias, a downscale samples only the two nearest input pixels per
// axis.
func ResizeBilinear(src []float32, channels, h, w, outH, outW int) ([]float32, error) {
	if channels <= 0 || h <= 0 || w <= 0 || outH <= 0 || outW <= 0 {
		return nil, fmt.Errorf("dataset: ResizeBilinear: sizes must be positive (channels %d, %dx%d to %dx%d)", channels, h, w, outH, outW)
	}
	if len(src) != channels*h*w {
		return nil, fmt.Errorf("dataset: ResizeBilinear: %d values for %dx%dx%d", len(src), channels, h, w)
	}
	dst := make([]float32, channels*outH*outW)
	var r resizer
	for c := range channels {
		r.plane(dst[c*outH*outW:(c+1)*outH*outW], src[c*h*w:(c+1)*h*w], h, w, outH, outW)
	}
	return dst, nil
}
