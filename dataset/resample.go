package dataset

import "math"

// Resampling as Pillow's Image.resize does it (libImaging/Resample.c), which is what
// torchvision's Resize, CenterCrop-after-Resize and RandomResizedCrop give on PIL images:
// a separable convolution whose filter is stretched over the whole footprint of an output
// pixel when downscaling (antialiasing), computed with Pillow's fixed-point coefficients, a
// horizontal pass rounded to 8 bits, then a vertical pass rounded to 8 bits.

// Interpolation filters.
const (
	InterpBilinear = "bilinear" // triangle filter, support 1 (PIL.Image.BILINEAR)
	InterpBicubic  = "bicubic"  // Keys' cubic with a = -0.5, support 2 (PIL.Image.BICUBIC)
)

// Interpolations lists the valid interpolation names.
var Interpolations = []string{InterpBilinear, InterpBicubic}

type resampleFilter struct {
	support float64
	eval    func(x float64) float64
}

var (
	bilinearFilter = resampleFilter{1, func(x float64) float64 {
		x = math.Abs(x)
		if x < 1 {
			return 1 - x
		}
		return 0
	}}
	bicubicFilter = resampleFilter{2, func(x float64) float64 {
		const a = -0.5
		x = math.Abs(x)
		if x < 1 {
			return ((a+2)*x-(a+3))*x*x + 1
		}
		if x < 2 {
			return (((x-5)*x+8)*x - 4) * a
		}
		return 0
	}}
)

func filterFor(name string) resampleFilter {
	if name == InterpBicubic {
		return bicubicFilter
	}
	return bilinearFilter
}

// precision is Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2.
const precision = 22

// taps is one axis of a resampling: output position i reads the n[i] input positions from
// start[i], weighted by k[i*ksize : i*ksize+n[i]] (fixed point, 1<<precision is 1).
type taps struct {
	ksize    int
	start, n []int32
	k        []int32
	fk       []float64 // the coefficients before fixed point (scratch)
}

// compute is Pillow's precompute_coeffs plus normalize_coeffs_8bpc for an axis of inSize
// input positions, of which the box [in0, in1) maps onto out output positions. Pillow
// passes the box as C floats; so do we.
func (t *taps) compute(f resampleFilter, inSize int, in0, in1 float32, out int) {
	scale := float64(in1-in0) / float64(out)
	filterscale := max(scale, 1)
	support := f.support * filterscale
	t.ksize = int(math.Ceil(support))*2 + 1
	t.start = grow(t.start, out)
	t.n = grow(t.n, out)
	t.k = grow(t.k, out*t.ksize)
	t.fk = grow(t.fk, t.ksize)
	inv := 1 / filterscale
	for xx := range out {
		center := float64(in0) + (float64(xx)+0.5)*scale
		xmin := max(int(center-support+0.5), 0) // C's (int) truncates toward zero
		xmax := min(int(center+support+0.5), inSize) - xmin
		var ww float64
		k := t.fk[:t.ksize]
		clear(k)
		for x := 0; x < xmax; x++ {
			w := f.eval((float64(x+xmin) - center + 0.5) * inv)
			k[x] = w
			ww += w
		}
		kk := t.k[xx*t.ksize : (xx+1)*t.ksize]
		for x, w := range k {
			if ww != 0 && x < xmax {
				w /= ww
			}
			if w < 0 {
				kk[x] = int32(-0.5 + w*(1<<precision))
			} else {
				kk[x] = int32(0.5 + w*(1<<precision))
			}
		}
		t.start[xx], t.n[xx] = int32(xmin), int32(max(xmax, 0))
	}
}

// clip8 is Pillow's clip8 of a fixed-point sum: the integer part, clamped to 0-255.
func clip8(ss int32) uint8 {
	v := ss >> precision
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resampler holds one worker's scratch for resample.
type resampler struct {
	x, y taps
	tmp  []uint8
	acc  []int32
}

// box is a region of a picture in pixel coordinates: [X0, X1) x [Y0, Y1).
type box struct{ X0, Y0, X1, Y1 float64 }

func (b box) dx() float64 { return b.X1 - b.X0 }
func (b box) dy() float64 { return b.Y1 - b.Y0 }

// resample writes the part (ox, oy, ow, oh) of the outW x outH resampling of region b of
// src into plane-major dst (src.c planes of ow*oh bytes). The filter reads only pixels
// inside b's integer hull, as Pillow does when the region is first cropped out of the
// picture: for a whole-pixel box (0, 0, w, h), exactly Pillow's
// im.crop(b).resize((outW, outH), filter) cut to the part; for the whole picture, its
// im.resize((outW, outH), filter).
func (r *resampler) resample(dst []uint8, src *picture, b box, interp string, outW, outH, ox, oy, ow, oh int) {
	f := filterFor(interp)
	lx, ly := int(math.Floor(b.X0)), int(math.Floor(b.Y0))
	hx, hy := min(int(math.Ceil(b.X1)), src.w), min(int(math.Ceil(b.Y1)), src.h)
	// Coefficients in the frame of the cropped window [lx, hx) x [ly, hy).
	needH := outW != hx-lx || b.X0 != float64(lx) || b.X1 != float64(hx)
	needV := outH != hy-ly || b.Y0 != float64(ly) || b.Y1 != float64(hy)
	r.y.compute(f, hy-ly, float32(b.Y0-float64(ly)), float32(b.Y1-float64(ly)), outH)
	if needH {
		r.x.compute(f, hx-lx, float32(b.X0-float64(lx)), float32(b.X1-float64(lx)), outW)
	}
	// Rows of the window the wanted output rows read.
	var r0, r1 int
	if needV {
		r0 = int(r.y.start[oy])
		r1 = int(r.y.start[oy+oh-1] + r.y.n[oy+oh-1])
	} else {
		r0, r1 = oy, oy+oh
	}
	rows := r1 - r0
	r.tmp = grow(r.tmp, src.c*rows*ow)
	r.acc = grow(r.acc, ow)
	// Horizontal pass into tmp (plane c's rows r0..r1 of the window at
	// tmp[c*rows*ow:]), the planes together so that each column's taps are read once.
	plane := func(c int) []uint8 { return src.plane(c) }
	for y := r0; y < r1; y++ {
		off := (ly+y)*src.w + lx
		if !needH {
			for c := range src.c {
				copy(r.tmp[(c*rows+y-r0)*ow:(c*rows+y-r0+1)*ow], plane(c)[off+ox:off+ox+ow])
			}
			continue
		}
		if src.c == 3 {
			row0 := plane(0)[off : off+hx-lx]
			row1 := plane(1)[off : off+hx-lx]
			row2 := plane(2)[off : off+hx-lx]
			t0 := r.tmp[(y-r0)*ow : (y-r0+1)*ow]
			t1 := r.tmp[(rows+y-r0)*ow : (rows+y-r0+1)*ow]
			t2 := r.tmp[(2*rows+y-r0)*ow : (2*rows+y-r0+1)*ow]
			for xx := range t0 {
				i := ox + xx
				st, n := int(r.x.start[i]), int(r.x.n[i])
				k := r.x.k[i*r.x.ksize : i*r.x.ksize+n]
				p0, p1, p2 := row0[st:st+n], row1[st:st+n], row2[st:st+n]
				p0, p1, p2 = p0[:len(k)], p1[:len(k)], p2[:len(k)]
				a0, a1, a2 := int32(1<<(precision-1)), int32(1<<(precision-1)), int32(1<<(precision-1))
				for j, w := range k {
					a0 += int32(p0[j]) * w
					a1 += int32(p1[j]) * w
					a2 += int32(p2[j]) * w
				}
				t0[xx], t1[xx], t2[xx] = clip8(a0), clip8(a1), clip8(a2)
			}
			continue
		}
		for c := range src.c {
			row := plane(c)[off : off+hx-lx]
			t := r.tmp[(c*rows+y-r0)*ow : (c*rows+y-r0+1)*ow]
			for xx := range t {
				i := ox + xx
				st, n := int(r.x.start[i]), int(r.x.n[i])
				k := r.x.k[i*r.x.ksize : i*r.x.ksize+n]
				px := row[st : st+n]
				px = px[:len(k)]
				ss := int32(1 << (precision - 1))
				for j, w := range k {
					ss += int32(px[j]) * w
				}
				t[xx] = clip8(ss)
			}
		}
	}
	// Vertical pass, a row at a time (integer sums: the order of the terms does not
	// change them).
	for c := range src.c {
		tmp := r.tmp[c*rows*ow : (c+1)*rows*ow]
		out := dst[c*ow*oh : (c+1)*ow*oh]
		for yy := range oh {
			o := out[yy*ow : (yy+1)*ow]
			if !needV {
				copy(o, tmp[(oy+yy-r0)*ow:(oy+yy-r0+1)*ow])
				continue
			}
			i := oy + yy
			st, n := int(r.y.start[i])-r0, int(r.y.n[i])
			acc := r.acc[:ow]
			for x := range acc {
				acc[x] = 1 << (precision - 1)
			}
			for j, w := range r.y.k[i*r.y.ksize : i*r.y.ksize+n] {
				t := tmp[(st+j)*ow : (st+j+1)*ow]
				t = t[:len(acc)]
				for x, v := range t {
					acc[x] += int32(v) * w
				}
			}
			o = o[:len(acc)]
			for x, ss := range acc {
				o[x] = clip8(ss)
			}
		}
	}
}
