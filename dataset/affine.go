package dataset

import (
	"math"
	"strconv"
)

// The geometric augmentations of torchvision on PIL images: flips, and RandomRotation's
// and TrivialAugmentWide's rotations, shears and translations, which torchvision turns
// into Pillow's Image.rotate or Image.transform(AFFINE) with nearest-neighbour sampling and
// black fill. Pillow samples an affine map with 16.16 fixed-point arithmetic
// (Geometry.c affine_fixed), or, when the map only scales and translates, with doubles
// (ImagingScaleAffine); both are reproduced here so that the same pixels are chosen.

// flipH mirrors p left to right in place.
func flipH(p *picture) {
	for c := range p.c {
		pl := p.plane(c)
		for y := range p.h {
			row := pl[y*p.w : (y+1)*p.w]
			for i, j := 0, len(row)-1; i < j; i, j = i+1, j-1 {
				row[i], row[j] = row[j], row[i]
			}
		}
	}
}

// flipV turns p upside down in place.
func flipV(p *picture) {
	w := p.w
	for c := range p.c {
		pl := p.plane(c)
		for i, j := 0, p.h-1; i < j; i, j = i+1, j-1 {
			a, b := pl[i*w:(i+1)*w], pl[j*w:(j+1)*w]
			for x := range a {
				a[x], b[x] = b[x], a[x]
			}
		}
	}
}

// affineMatrix is Pillow's inverse map (a, b, c, d, e, f): the output pixel (x, y) shows
// the input at (a x + b y + c, d x + e y + f), pixel centres at +0.5.
type affineMatrix [6]float64

// Python's math.radians and math.degrees multiply by these, computed in double precision
// (Go's constant arithmetic would round pi/180 once, from the exact value).
var (
	pi       = math.Pi
	degToRad = pi / 180
	radToDeg = 180 / pi
)

// round15 is Python's round(v, 15).
func round15(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 15, 64), 64)
	return r
}

// rotateMatrix is the map of Pillow's Image.rotate(angle) about the picture's centre
// (w/2, h/2), without expand: angle in degrees, anticlockwise.
func rotateMatrix(angle float64, w, h int) affineMatrix {
	cx, cy := float64(w)/2, float64(h)/2
	a := -(angle * degToRad)
	m := affineMatrix{round15(math.Cos(a)), round15(math.Sin(a)), 0, round15(-math.Sin(a)), round15(math.Cos(a)), 0}
	m[2] = m[0]*-cx + m[1]*-cy + m[2]
	m[5] = m[3]*-cx + m[4]*-cy + m[5]
	m[2] += cx
	m[5] += cy
	return m
}

// torchAffineMatrix is torchvision's _get_inverse_affine_matrix(center, angle, translate,
// scale=1, shear) as F.affine computes it for a PIL image.
func torchAffineMatrix(cx, cy, angle, tx, ty, shearX, shearY float64) affineMatrix {
	rad := func(d float64) float64 { return d * degToRad }
	rot, sx, sy := rad(angle), rad(shearX), rad(shearY)
	a := math.Cos(rot-sy) / math.Cos(sy)
	b := -math.Cos(rot-sy)*math.Tan(sx)/math.Cos(sy) - math.Sin(rot)
	c := math.Sin(rot-sy) / math.Cos(sy)
	d := -math.Sin(rot-sy)*math.Tan(sx)/math.Cos(sy) + math.Cos(rot)
	m := affineMatrix{d, -b, 0, -c, a, 0} // divided by the scale, 1
	m[2] += m[0]*(-cx-tx) + m[1]*(-cy-ty)
	m[5] += m[3]*(-cx-tx) + m[4]*(-cy-ty)
	m[2] += cx
	m[5] += cy
	return m
}

// transformAffine resamples p through m with nearest-neighbour sampling and black
// outside the picture, as Pillow's ImagingTransformAffine does for NEAREST; s.tmp holds
// the result, which is swapped into p.
func transformAffine(p *picture, m affineMatrix, s *opScratch) {
	out := &s.tmp
	out.reset(p.c, p.w, p.h)
	clear(out.pix)
	w, h := p.w, p.h
	if m[1] == 0 && m[3] == 0 {
		// ImagingScaleAffine: the columns tabulated once, in doubles.
		xin := make([]int, w)
		xmin, xmax := w, 0
		xo := m[2] + m[0]*0.5
		for x := range w {
			xi := coord(xo)
			if xi >= 0 && xi < w {
				xmax = x + 1
				xmin = min(xmin, x)
				xin[x] = xi
			}
			xo += m[0]
		}
		for c := range p.c {
			in, o := p.plane(c), out.plane(c)
			yo := m[5] + m[4]*0.5
			for y := range h {
				if yi := coord(yo); yi >= 0 && yi < h {
					row := o[y*w : (y+1)*w]
					src := in[yi*w : (yi+1)*w]
					for x := xmin; x < xmax; x++ {
						row[x] = src[xin[x]]
					}
				}
				yo += m[4]
			}
		}
	} else {
		// affine_fixed: 16.16 fixed point. (Pillow falls back to doubles when a corner
		// maps beyond +-32768, which pictures of the model's size never do.)
		fix := func(v float64) int32 { return int32(math.Floor(v*65536 + 0.5)) }
		a0, a1, a3, a4 := fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4])
		a2 := fix(m[2] + m[0]*0.5 + m[1]*0.5)
		a5 := fix(m[5] + m[3]*0.5 + m[4]*0.5)
		for c := range p.c {
			in, o := p.plane(c), out.plane(c)
			r2, r5 := a2, a5
			for y := range h {
				xx, yy := r2, r5
				row := o[y*w : (y+1)*w]
				for x := range row {
					if xi := int(xx >> 16); xi >= 0 && xi < w {
						if yi := int(yy >> 16); yi >= 0 && yi < h {
							row[x] = in[yi*w+xi]
						}
					}
					xx += a0
					yy += a3
				}
				r2 += a1
				r5 += a4
			}
		}
	}
	p.pix, out.pix = out.pix, p.pix
}

// coord is Geometry.c's COORD: -1 for negative values, else the integer part.
func coord(v float64) int {
	if v < 0 {
		return -1
	}
	return int(v)
}

// rotate is torchvision's rotate(img, angle) on a PIL image (nearest, black fill):
// Pillow's Image.rotate, with its shortcuts for 0 and 180 degrees, and for 90 and 270 on
// square pictures.
func rotate(p *picture, angle float64, s *opScratch) {
	a := math.Mod(angle, 360)
	if a < 0 {
		a += 360
	}
	switch {
	case a == 0:
		return
	case a == 180:
		flipH(p)
		flipV(p)
		return
	case (a == 90 || a == 270) && p.w == p.h:
		o := 8 // ROTATE_90
		if a == 270 {
			o = 6 // ROTATE_270
		}
		orient(&s.tmp, p, o)
		p.pix, s.tmp.pix = s.tmp.pix, p.pix
		return
	}
	transformAffine(p, rotateMatrix(angle, p.w, p.h), s)
}
