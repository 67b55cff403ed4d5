package dataset

import (
	"image"
	"image/color"
)

// picture is an 8-bit image stored planar: c planes (1: grey; 3: R, G, B) of w*h bytes,
// row-major. It is what decoding produces and what the resampler and the augmentations
// work on, as Pillow works on 8-bit "L" and "RGB" images.
type picture struct {
	c, w, h int
	pix     []uint8
}

// reset sizes p for c planes of w x h, reusing its memory.
func (p *picture) reset(c, w, h int) {
	p.c, p.w, p.h = c, w, h
	p.pix = grow(p.pix, c*w*h)
}

// plane is channel i's w*h bytes.
func (p *picture) plane(i int) []uint8 {
	n := p.w * p.h
	return p.pix[i*n : (i+1)*n : (i+1)*n]
}

// toGray replaces a 3-plane picture by its luma (Pillow's convert("L")).
func (p *picture) toGray() {
	if p.c != 3 {
		return
	}
	n := p.w * p.h
	r, g, b := p.pix[:n], p.pix[n:2*n], p.pix[2*n:3*n]
	for i := range r {
		r[i] = luma(r[i], g[i], b[i])
	}
	p.c = 1
	p.pix = p.pix[:n]
}

// image returns p as an image.Image sharing nothing with it: *image.Gray for one plane,
// *image.RGBA (opaque) for three.
func (p *picture) image() image.Image {
	r := image.Rect(0, 0, p.w, p.h)
	if p.c == 1 {
		m := image.NewGray(r)
		copy(m.Pix, p.pix)
		return m
	}
	m := image.NewRGBA(r)
	R, G, B := p.plane(0), p.plane(1), p.plane(2)
	for i := range R {
		m.Pix[4*i], m.Pix[4*i+1], m.Pix[4*i+2], m.Pix[4*i+3] = R[i], G[i], B[i], 0xff
	}
	return m
}

// fromImage converts img to 8-bit planes as Pillow's convert does: grey and 16-bit grey
// images stay one plane (16-bit samples keep their high byte), colour images become R, G,
// B with the alpha channel dropped (convert("RGB"); premultiplied colours are
// un-premultiplied first), or their luma when gray is set (convert("L")).
//
// Pillow clips 16-bit grey samples above 255 to 255 instead (its I;16 to L conversion),
// which turns most 16-bit photographs white; the high byte keeps the picture.
func (p *picture) fromImage(img image.Image, gray bool) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	switch m := img.(type) {
	case *image.Gray:
		p.reset(1, w, h)
		for y := range h {
			copy(p.pix[y*w:(y+1)*w], m.Pix[y*m.Stride:y*m.Stride+w])
		}
		return
	case *image.Gray16:
		p.reset(1, w, h)
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+2*w]
			o := p.pix[y*w : (y+1)*w]
			for x := range o {
				o[x] = row[2*x]
			}
		}
		return
	}
	p.reset(3, w, h)
	n := w * h
	R, G, B := p.pix[:n], p.pix[n:2*n], p.pix[2*n:]
	set := func(i int, r, g, b uint8) { R[i], G[i], B[i] = r, g, b }
	switch m := img.(type) {
	case *image.YCbCr:
		for y := range h {
			for x := range w {
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bb := color.YCbCrToRGB(m.Y[m.YOffset(b.Min.X+x, b.Min.Y+y)], m.Cb[ci], m.Cr[ci])
				set(y*w+x, r, g, bb)
			}
		}
	case *image.NRGBA:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := range w {
				set(y*w+x, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.NRGBA64:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+8*w]
			for x := range w {
				set(y*w+x, row[8*x], row[8*x+2], row[8*x+4])
			}
		}
	case *image.RGBA:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := range w {
				r, g, bb, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 0xff {
					c := color.NRGBAModel.Convert(color.RGBA{r, g, bb, a}).(color.NRGBA)
					r, g, bb = c.R, c.G, c.B
				}
				set(y*w+x, r, g, bb)
			}
		}
	case *image.Paletted:
		pal := make([][3]uint8, len(m.Palette))
		for i, c := range m.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[i] = [3]uint8{n.R, n.G, n.B}
		}
		for y := range h {
			for x, ix := range m.Pix[y*m.Stride : y*m.Stride+w] {
				var c [3]uint8
				if int(ix) < len(pal) {
					c = pal[ix]
				}
				set(y*w+x, c[0], c[1], c[2])
			}
		}
	case *image.CMYK:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := range w {
				r, g, bb := cmykToRGB(row[4*x], row[4*x+1], row[4*x+2], row[4*x+3])
				set(y*w+x, r, g, bb)
			}
		}
	default:
		for y := range h {
			for x := range w {
				c := color.NRGBA64Model.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
				set(y*w+x, uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8))
			}
		}
	}
	if gray {
		p.toGray()
	}
}

// luma is ITU-R 601-2 luma as PIL's convert("L") computes it on 8-bit RGB.
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// cmykToRGB is Pillow's cmyk2rgb (Convert.c): each channel is (255-k) - c*(255-k)/255,
// with Pillow's rounding division by 255.
func cmykToRGB(c, m, y, k uint8) (uint8, uint8, uint8) {
	nk := 255 - int(k)
	f := func(v uint8) uint8 {
		t := int(v)*nk + 128
		return uint8(nk - (t+(t>>8))>>8)
	}
	return f(c), f(m), f(y)
}
