package dataset

import (
	"image"
	"math"
)

// input is one example's pixels: the bytes of an image file, or a decoded image.
type input struct {
	data []byte
	img  image.Image
}

// run writes one example's model input into dst (c*h*w floats, CHW). With train, the
// augmentations run with the draws of key; with draft, a JPEG whose resize or crop
// reduces it at least twofold is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (as
// Pillow's draft mode), which changes its pixels slightly, so evaluation leaves it off.
func (t *transform) run(dst []float32, in input, key uint64, train, draft bool, s *scratch) error {
	var d exampleDraw
	if train && t.augments {
		d = t.drawExample(key)
	}
	gray := t.c == 1
	if !t.eightBit {
		if in.img != nil {
			t.apply(dst, in.img, s, d.augDraw)
			return nil
		}
		pic, err := s.dec.decodeWhole(in.data, gray)
		if err != nil {
			return err
		}
		t.applyPlanes(dst, s.planesFrom(pic), pic.w, pic.h, s, d.augDraw)
		return nil
	}

	var pic *picture
	var pl placement
	if in.img != nil {
		s.dec.stored.fromImage(in.img, gray)
		pic = &s.dec.stored
		pl = t.place(pic.w, pic.h, key, train)
	} else {
		h, err := readHeader(in.data)
		if err != nil {
			return err
		}
		W, H := h.size()
		pl = t.place(W, H, key, train)
		scale := 1
		var region image.Rectangle
		if h.format == "jpeg" && t.resize != "" || h.format == "jpeg" && train && t.aug.RandomResizedCrop != nil {
			if draft {
				scale = draftScale(pl.src, pl.outW, pl.outH)
			}
			if pl.src != (box{0, 0, float64(W), float64(H)}) || scale > 1 {
				region = regionFor(pl.src, scale)
			}
		}
		pic, scale, err = s.dec.decode(in.data, h, scale, region, gray)
		if err != nil {
			return err
		}
		if scale > 1 {
			f := float64(scale)
			pl.src = box{pl.src.X0 / f, pl.src.Y0 / f, pl.src.X1 / f, pl.src.Y1 / f}
		}
	}

	canvas := &s.canvas
	canvas.reset(pic.c, t.w, t.h)
	switch {
	case t.resize == "" && !(train && t.aug.RandomResizedCrop != nil):
		t.tensorResize8(canvas, pic, s)
	case pl.dx == 0 && pl.dy == 0 && pl.ow == t.w && pl.oh == t.h:
		s.rsm.resample(canvas.pix, pic, pl.src, t.interp, pl.outW, pl.outH, pl.ox, pl.oy, pl.ow, pl.oh)
	default: // letterboxed
		s.part = grow(s.part, pic.c*pl.ow*pl.oh)
		s.rsm.resample(s.part, pic, pl.src, t.interp, pl.outW, pl.outH, pl.ox, pl.oy, pl.ow, pl.oh)
		clear(canvas.pix)
		for c := range pic.c {
			src, dstp := s.part[c*pl.ow*pl.oh:(c+1)*pl.ow*pl.oh], canvas.plane(c)
			for y := range pl.oh {
				copy(dstp[(pl.dy+y)*t.w+pl.dx:(pl.dy+y)*t.w+pl.dx+pl.ow], src[y*pl.ow:(y+1)*pl.ow])
			}
		}
	}
	if train {
		t.augment8(canvas, d, &s.ops)
	}
	t.normalise8(dst, canvas)
	if d.erase {
		randomErasing(dst, t.c, t.h, t.w, key)
	}
	return nil
}

// place is where a W x H upright picture goes: RandomResizedCrop's box in training when
// it is on, else the resize mode's placement.
func (t *transform) place(W, H int, key uint64, train bool) placement {
	if train && t.aug.RandomResizedCrop != nil {
		i, j, h, w := t.aug.RandomResizedCrop.params(stream(key, streamCrop), W, H)
		return placement{src: box{float64(j), float64(i), float64(j + w), float64(i + h)},
			outW: t.w, outH: t.h, ow: t.w, oh: t.h}
	}
	return anchoredPlacement(t.resize, t.cropPct, t.anchor, W, H, t.w, t.h)
}

// tensorResize8 stretches pic onto the canvas with the float path's resize (no Resize
// key) and rounds to 8 bits, for the 8-bit augmentations that follow.
func (t *transform) tensorResize8(canvas, pic *picture, s *scratch) {
	if pic.w == t.w && pic.h == t.h {
		copy(canvas.pix, pic.pix)
		return
	}
	n := s.planesFrom(pic)
	hw := t.h * t.w
	s.resized = grow(s.resized, n*hw)
	for p := range n {
		s.rs.plane(s.resized[p*hw:(p+1)*hw], s.planes[p*pic.w*pic.h:(p+1)*pic.w*pic.h], pic.h, pic.w, t.h, t.w)
	}
	for i, v := range s.resized[:n*hw] {
		canvas.pix[i] = uint8(min(max(math.RoundToEven(float64(v)), 0), 255))
	}
}

// planesFrom copies pic into s.planes as float32 0-255 and returns the plane count.
func (s *scratch) planesFrom(pic *picture) int {
	s.planes = grow(s.planes, len(pic.pix[:pic.c*pic.w*pic.h]))
	for i, v := range pic.pix[:pic.c*pic.w*pic.h] {
		s.planes[i] = float32(v)
	}
	return pic.c
}

// normalise8 writes the canvas, normalised, into dst: channels mapped (BGR for caffe), a
// grey canvas replicated for a 3-channel model; v*scale + bias as normalise computes it.
func (t *transform) normalise8(dst []float32, canvas *picture) {
	hw := t.h * t.w
	for c := range t.c {
		p := 0
		if canvas.c == 3 {
			p = t.src[c]
		}
		in := canvas.plane(p)
		out := dst[c*hw : (c+1)*hw]
		a, b := t.scale[c], t.bias[c]
		switch {
		case a == 1 && b == 0:
			for i, v := range in {
				out[i] = float32(v)
			}
		case a == 1:
			for i, v := range in {
				out[i] = float32(v) + b
			}
		default:
			for i, v := range in {
				out[i] = float32(v)*a + b
			}
		}
	}
}
