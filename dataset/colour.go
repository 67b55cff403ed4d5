package dataset

import "math"

// The photometric operations of torchvision's ColorJitter and TrivialAugmentWide on PIL
// images, which delegate to Pillow: ImageEnhance's Brightness, Contrast, Color and
// Sharpness (each a blend of the picture with a "degenerate" version of it), the HSV hue
// shift of torchvision's adjust_hue, and ImageOps' posterize, solarize, autocontrast and
// equalize. Each works in place on an 8-bit picture with Pillow's arithmetic (C floats,
// truncation to 8 bits), so that the results match Pillow's to the grey level.

// blend is Pillow's ImagingBlend(deg, img, alpha) written into out: deg + alpha*(img-deg)
// in C float arithmetic, truncated to 8 bits (clamped when alpha is outside [0, 1]).
// out may be img or deg.
func blend(out, deg, img []uint8, alpha float32) {
	switch alpha {
	case 0:
		copy(out, deg)
		return
	case 1:
		copy(out, img)
		return
	}
	out, deg = out[:len(img)], deg[:len(img)]
	if alpha >= 0 && alpha <= 1 {
		for i, v := range img {
			a := int32(deg[i])
			out[i] = uint8(float32(a) + float32(alpha*float32(int32(v)-a)))
		}
		return
	}
	for i, v := range img {
		a := int32(deg[i])
		t := float32(a) + float32(alpha*float32(int32(v)-a))
		switch {
		case t <= 0:
			out[i] = 0
		case t >= 255:
			out[i] = 255
		default:
			out[i] = uint8(t)
		}
	}
}

// adjustBrightness is ImageEnhance.Brightness(im).enhance(f): a blend with black.
func adjustBrightness(p *picture, f float64, s *opScratch) {
	s.deg = grow(s.deg, p.w*p.h)
	clear(s.deg)
	for c := range p.c {
		blend(p.plane(c), s.deg, p.plane(c), float32(f))
	}
}

// lumaPlane writes p's luma (Pillow's convert("L")) into dst.
func lumaPlane(dst []uint8, p *picture) {
	if p.c == 1 {
		copy(dst, p.pix)
		return
	}
	r, g, b := p.plane(0), p.plane(1), p.plane(2)
	for i := range dst {
		dst[i] = luma(r[i], g[i], b[i])
	}
}

// adjustContrast is ImageEnhance.Contrast(im).enhance(f): a blend with a flat picture at
// the mean of the luma, rounded: int(mean + 0.5).
func adjustContrast(p *picture, f float64, s *opScratch) {
	n := p.w * p.h
	s.deg = grow(s.deg, n)
	lumaPlane(s.deg, p)
	var hist [256]int
	for _, v := range s.deg {
		hist[v]++
	}
	var sum float64
	for v, k := range hist {
		sum += float64(v * k)
	}
	mean := uint8(int(sum/float64(n) + 0.5))
	for i := range s.deg {
		s.deg[i] = mean
	}
	for c := range p.c {
		blend(p.plane(c), s.deg, p.plane(c), float32(f))
	}
}

// adjustSaturation is ImageEnhance.Color(im).enhance(f): a blend with the luma. A grey
// picture is its own luma: nothing changes.
func adjustSaturation(p *picture, f float64, s *opScratch) {
	if p.c == 1 {
		return
	}
	s.deg = grow(s.deg, p.w*p.h)
	lumaPlane(s.deg, p)
	for c := range p.c {
		blend(p.plane(c), s.deg, p.plane(c), float32(f))
	}
}

// adjustSharpness is ImageEnhance.Sharpness(im).enhance(f): a blend with the picture
// smoothed by ImageFilter.SMOOTH (3x3, [1 1 1; 1 5 1; 1 1 1]/13, the border kept).
func adjustSharpness(p *picture, f float64, s *opScratch) {
	w, h := p.w, p.h
	if w < 3 || h < 3 {
		return // Pillow's filter copies pictures smaller than its kernel
	}
	s.deg = grow(s.deg, w*h)
	one := float32(1) / float32(13)
	five := float32(5) / float32(13)
	k := func(a, b, c uint8, k0, k1, k2 float32) float32 {
		return float32(float32(float32(a)*k0)+float32(float32(b)*k1)) + float32(float32(c)*k2)
	}
	for c := range p.c {
		in := p.plane(c)
		d := s.deg
		copy(d[:w], in[:w])
		copy(d[(h-1)*w:], in[(h-1)*w:])
		for y := 1; y < h-1; y++ {
			up, mid, down := in[(y-1)*w:y*w], in[y*w:(y+1)*w], in[(y+1)*w:(y+2)*w]
			o := d[y*w : (y+1)*w]
			o[0], o[w-1] = mid[0], mid[w-1]
			for x := 1; x < w-1; x++ {
				ss := float32(0.5)
				ss += k(down[x-1], down[x], down[x+1], one, one, one)
				ss += k(mid[x-1], mid[x], mid[x+1], one, five, one)
				ss += k(up[x-1], up[x], up[x+1], one, one, one)
				switch {
				case ss <= 0:
					o[x] = 0
				case ss >= 255:
					o[x] = 255
				default:
					o[x] = uint8(ss)
				}
			}
		}
		blend(in, d, in, float32(f))
	}
}

// adjustHue is torchvision's adjust_hue on a PIL image: to HSV (Pillow's rgb2hsv), the hue
// byte shifted by uint8(f*255) with wrap-around, back to RGB (Pillow's hsv2rgb). Grey
// pictures are returned as they are.
func adjustHue(p *picture, f float64) {
	if p.c == 1 {
		return
	}
	shift := uint8(int64(f * 255)) // numpy's uint8 of a float: truncation, then wrap-around
	r, g, b := p.plane(0), p.plane(1), p.plane(2)
	for i := range r {
		hh, ss, vv := rgbToHSV(r[i], g[i], b[i])
		r[i], g[i], b[i] = hsvToRGB(hh+shift, ss, vv)
	}
}

// rgbToHSV is Pillow's rgb2hsv_row (Convert.c), C float arithmetic included.
func rgbToHSV(r, g, b uint8) (uint8, uint8, uint8) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	if minc == maxc {
		return 0, 0, maxc
	}
	cr := float32(maxc - minc)
	s := cr / float32(maxc)
	rc := float32(maxc-r) / cr
	gc := float32(maxc-g) / cr
	bc := float32(maxc-b) / cr
	var h float32
	switch {
	case r == maxc:
		h = bc - gc
	case g == maxc:
		h = float32(2.0 + float64(rc) - float64(bc))
	default:
		h = float32(4.0 + float64(gc) - float64(rc))
	}
	h = float32(math.Mod(float64(h)/6.0+1.0, 1.0))
	return clamp8(int(float64(h) * 255.0)), clamp8(int(float64(s) * 255.0)), maxc
}

// hsvToRGB is Pillow's hsv2rgb (Convert.c), C float and double arithmetic included.
func hsvToRGB(h, s, v uint8) (uint8, uint8, uint8) {
	if s == 0 {
		return v, v, v
	}
	hf := float64(float32(h)) * 6.0 / 255.0
	i := int(math.Floor(hf))
	f := float32(hf - float64(i))
	fs := float32(float64(s) / 255.0)
	p := clamp8(int(math.Round(float64(v) * (1.0 - float64(fs)))))
	q := clamp8(int(math.Round(float64(v) * (1.0 - float64(fs*f)))))
	t := clamp8(int(math.Round(float64(v) * (1.0 - float64(fs*(1.0-f))))))
	switch i % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}

func clamp8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// applyLUT maps every byte of p through one table per plane.
func applyLUT(p *picture, lut func(c int) *[256]uint8) {
	for c := range p.c {
		t := lut(c)
		pl := p.plane(c)
		for i, v := range pl {
			pl[i] = t[v]
		}
	}
}

// posterize is ImageOps.posterize: keep the top bits of each sample.
func posterize(p *picture, bits int) {
	var t [256]uint8
	mask := ^uint8(1<<(8-bits) - 1)
	for i := range t {
		t[i] = uint8(i) & mask
	}
	applyLUT(p, func(int) *[256]uint8 { return &t })
}

// solarize is ImageOps.solarize: samples at or above threshold are inverted.
func solarize(p *picture, threshold float64) {
	var t [256]uint8
	for i := range t {
		if float64(i) < threshold {
			t[i] = uint8(i)
		} else {
			t[i] = uint8(255 - i)
		}
	}
	applyLUT(p, func(int) *[256]uint8 { return &t })
}

func histogram(pl []uint8) *[256]int {
	var h [256]int
	for _, v := range pl {
		h[v]++
	}
	return &h
}

// autocontrast is ImageOps.autocontrast (no cutoff): each plane stretched so that its
// darkest sample becomes 0 and its brightest 255.
func autocontrast(p *picture) {
	tables := make([][256]uint8, p.c)
	for c := range p.c {
		h := histogram(p.plane(c))
		lo, hi := 0, 255
		for lo < 256 && h[lo] == 0 {
			lo++
		}
		for hi >= 0 && h[hi] == 0 {
			hi--
		}
		t := &tables[c]
		if hi <= lo {
			for i := range t {
				t[i] = uint8(i)
			}
			continue
		}
		scale := 255.0 / float64(hi-lo)
		offset := -float64(lo) * scale
		for i := range t {
			t[i] = clamp8(int(float64(i)*scale + offset))
		}
	}
	applyLUT(p, func(c int) *[256]uint8 { return &tables[c] })
}

// equalize is ImageOps.equalize: each plane's histogram equalised.
func equalize(p *picture) {
	tables := make([][256]uint8, p.c)
	for c := range p.c {
		h := histogram(p.plane(c))
		t := &tables[c]
		for i := range t {
			t[i] = uint8(i)
		}
		var total, last, nonzero int
		for _, k := range h {
			if k != 0 {
				total += k
				last = k
				nonzero++
			}
		}
		if nonzero <= 1 {
			continue
		}
		step := (total - last) / 255
		if step == 0 {
			continue
		}
		n := step / 2
		for i := range t {
			t[i] = uint8(min(n/step, 255))
			n += h[i]
		}
	}
	applyLUT(p, func(c int) *[256]uint8 { return &tables[c] })
}

// opScratch is one worker's memory for the augmentations.
type opScratch struct {
	deg []uint8
	tmp picture
}
