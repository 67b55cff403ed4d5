package dataset

import (
	"image"
	"image/color"
)

// luma is ITU-R 601-2 luma as PIL's convert("L") computes it on 8-bit RGB.
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// toPlanes converts img to float32 planes 0-255 in s.planes: 1 plane for a grayscale image
// or when gray is set (luma), else 3 (R, G, B). It returns the plane count and size.
//
// Colour images are read one row at a time into interleaved 8-bit RGB (the alpha channel
// dropped, as PIL's convert("RGB") does), which rgbRow then spreads over the planes.
func (s *scratch) toPlanes(img image.Image, gray bool) (n, w, h int) {
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	hw := w * h
	switch m := img.(type) {
	case *image.Gray:
		s.planes = grow(s.planes, hw)
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			o := s.planes[y*w : (y+1)*w]
			for x, v := range row {
				o[x] = float32(v)
			}
		}
		return 1, w, h
	case *image.Gray16:
		s.planes = grow(s.planes, hw)
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+2*w]
			o := s.planes[y*w : (y+1)*w]
			for x := range o {
				o[x] = float32(row[2*x]) // the high byte
			}
		}
		return 1, w, h
	}
	n = 3
	if gray {
		n = 1
	}
	s.planes = grow(s.planes, n*hw)
	s.row = grow(s.row, 3*w)
	rgb := s.row
	switch m := img.(type) {
	case *image.YCbCr:
		hs, vs, ok := chromaShifts(m.SubsampleRatio)
		fast := ok && b.Min.X >= 0 && b.Min.Y >= 0
		for y := range h {
			yrow := m.Y[y*m.YStride : y*m.YStride+w]
			if fast && !gray {
				// Straight into the planes, the common case for colour JPEGs.
				cy := ((b.Min.Y+y)>>vs - b.Min.Y>>vs) * m.CStride
				o := y * w
				ycbcrPlanes(s.planes[o:o+w], s.planes[hw+o:hw+o+w], s.planes[2*hw+o:2*hw+o+w],
					yrow, m.Cb[cy:], m.Cr[cy:], b.Min.X, hs)
				continue
			}
			if fast {
				cy := ((b.Min.Y+y)>>vs - b.Min.Y>>vs) * m.CStride
				ycbcrRow(rgb, yrow, m.Cb[cy:], m.Cr[cy:], b.Min.X, hs)
			} else {
				for x, yv := range yrow {
					ci := m.COffset(b.Min.X+x, b.Min.Y+y)
					rgb[3*x], rgb[3*x+1], rgb[3*x+2] = ycbcrToRGB(yv, m.Cb[ci], m.Cr[ci])
				}
			}
			s.rgbRow(y, w, hw, gray)
		}
	case *image.NRGBA:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := range w {
				rgb[3*x], rgb[3*x+1], rgb[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
			s.rgbRow(y, w, hw, gray)
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
				rgb[3*x], rgb[3*x+1], rgb[3*x+2] = r, g, bb
			}
			s.rgbRow(y, w, hw, gray)
		}
	case *image.Paletted:
		s.pal = s.pal[:0]
		for _, c := range m.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			s.pal = append(s.pal, [3]uint8{n.R, n.G, n.B})
		}
		for y := range h {
			for x, ix := range m.Pix[y*m.Stride : y*m.Stride+w] {
				var c [3]uint8
				if int(ix) < len(s.pal) {
					c = s.pal[ix]
				}
				rgb[3*x], rgb[3*x+1], rgb[3*x+2] = c[0], c[1], c[2]
			}
			s.rgbRow(y, w, hw, gray)
		}
	default:
		for y := range h {
			for x := range w {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				rgb[3*x], rgb[3*x+1], rgb[3*x+2] = c.R, c.G, c.B
			}
			s.rgbRow(y, w, hw, gray)
		}
	}
	return n, w, h
}

// rgbRow spreads row y of s.row (interleaved RGB) over the planes: luma into one plane when
// gray is set, else R, G and B into three.
func (s *scratch) rgbRow(y, w, hw int, gray bool) {
	rgb := s.row[:3*w]
	if gray {
		o := s.planes[y*w : (y+1)*w]
		for x := range o {
			o[x] = float32(luma(rgb[3*x], rgb[3*x+1], rgb[3*x+2]))
		}
		return
	}
	r := s.planes[y*w : (y+1)*w]
	g := s.planes[hw+y*w : hw+(y+1)*w]
	b := s.planes[2*hw+y*w : 2*hw+(y+1)*w]
	for x := range r {
		r[x], g[x], b[x] = float32(rgb[3*x]), float32(rgb[3*x+1]), float32(rgb[3*x+2])
	}
}

// chromaShifts gives the horizontal and vertical chroma subsampling as shifts.
func chromaShifts(r image.YCbCrSubsampleRatio) (hs, vs uint, ok bool) {
	switch r {
	case image.YCbCrSubsampleRatio444:
		return 0, 0, true
	case image.YCbCrSubsampleRatio422:
		return 1, 0, true
	case image.YCbCrSubsampleRatio420:
		return 1, 1, true
	case image.YCbCrSubsampleRatio440:
		return 0, 1, true
	case image.YCbCrSubsampleRatio411:
		return 2, 0, true
	case image.YCbCrSubsampleRatio410:
		return 2, 1, true
	}
	return 0, 0, false
}

// ycbcrToRGB is image/color.YCbCrToRGB (JFIF's conversion), repeated here so that it inlines.
func ycbcrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy1 := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	r := yy1 + 91881*cr1
	if uint32(r)&0xff000000 == 0 {
		r >>= 16
	} else {
		r = ^(r >> 31)
	}
	g := yy1 - 22554*cb1 - 46802*cr1
	if uint32(g)&0xff000000 == 0 {
		g >>= 16
	} else {
		g = ^(g >> 31)
	}
	b := yy1 + 116130*cb1
	if uint32(b)&0xff000000 == 0 {
		b >>= 16
	} else {
		b = ^(b >> 31)
	}
	return uint8(r), uint8(g), uint8(b)
}

// ycbcrRow converts one row: Y values yrow, chroma rows cb and cr subsampled horizontally by
// 1<<hs, the row starting at x = minX. The conversion is ycbcrToRGB's, written out so that
// the loop has no calls.
func ycbcrRow(rgb, yrow, cb, cr []uint8, minX int, hs uint) {
	cx0 := minX >> hs
	rgb = rgb[:3*len(yrow)]
	for x, yv := range yrow {
		ci := (minX+x)>>hs - cx0
		yy1 := int32(yv) * 0x10101
		cb1 := int32(cb[ci]) - 128
		cr1 := int32(cr[ci]) - 128
		r := yy1 + 91881*cr1
		if uint32(r)&0xff000000 == 0 {
			r >>= 16
		} else {
			r = ^(r >> 31)
		}
		g := yy1 - 22554*cb1 - 46802*cr1
		if uint32(g)&0xff000000 == 0 {
			g >>= 16
		} else {
			g = ^(g >> 31)
		}
		b := yy1 + 116130*cb1
		if uint32(b)&0xff000000 == 0 {
			b >>= 16
		} else {
			b = ^(b >> 31)
		}
		rgb[3*x], rgb[3*x+1], rgb[3*x+2] = uint8(r), uint8(g), uint8(b)
	}
}

// ycbcrPlanes is ycbcrRow writing float32 R, G and B planes instead of interleaved bytes.
func ycbcrPlanes(rp, gp, bp []float32, yrow, cb, cr []uint8, minX int, hs uint) {
	cx0 := minX >> hs
	rp, gp, bp = rp[:len(yrow)], gp[:len(yrow)], bp[:len(yrow)]
	for x, yv := range yrow {
		ci := (minX+x)>>hs - cx0
		yy1 := int32(yv) * 0x10101
		cb1 := int32(cb[ci]) - 128
		cr1 := int32(cr[ci]) - 128
		r := yy1 + 91881*cr1
		if uint32(r)&0xff000000 == 0 {
			r >>= 16
		} else {
			r = ^(r >> 31)
		}
		g := yy1 - 22554*cb1 - 46802*cr1
		if uint32(g)&0xff000000 == 0 {
			g >>= 16
		} else {
			g = ^(g >> 31)
		}
		b := yy1 + 116130*cb1
		if uint32(b)&0xff000000 == 0 {
			b >>= 16
		} else {
			b = ^(b >> 31)
		}
		rp[x], gp[x], bp[x] = float32(uint8(r)), float32(uint8(g)), float32(uint8(b))
	}
}
