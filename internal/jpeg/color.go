// The YCbCr tables are ported from libjpeg-turbo 2.1.5 jdcolor.c:
//   Copyright (C) 1991-1997, Thomas G. Lane.
//   Modified 2011 by Guido Vollbeding.
//   libjpeg-turbo Modifications: Copyright 2009 Pierre Ossman for Cendio AB;
//   Copyright (C) 2009, 2011-2012, 2014-2015, D. R. Commander.
//   Copyright (C) 2013, Linaro Limited.
// See README.ijg and LICENSE-libjpeg-turbo.md. The CMYK to RGB formula is
// Pillow 9.4's (libImaging/Convert.c cmyk2rgb). Translated to Go for the
// toolkit, writing planar output.

package jpeg

// colorModel is the colour space of the file's components (libjpeg's
// jpeg_color_space).
type colorModel uint8

const (
	cmGray colorModel = iota
	cmYCbCr
	cmRGB
	cmCMYK
	cmYCCK
)

// yccTables are jdcolor.c's build_ycc_rgb_table (16-bit fixed point),
// R = Y + crR[Cr], B = Y + cbB[Cb], G = Y + (cbG[Cb] + crG[Cr]) >> 16,
// each offset by clampBias (added before the shift for G, which keeps the
// arithmetic exact) so that the sum indexes clampTab directly.
type yccTables struct {
	crR, cbB, crG, cbG [256]int32
}

// clampBias offsets the colour sums, which lie in [-227, 480], into
// clampTab's [0, 1024).
const clampBias = 384

var ycc = func() (t yccTables) {
	const scaleBits = 16
	const half = 1 << (scaleBits - 1)
	fix := func(x float64) int64 { return int64(x*(1<<scaleBits) + 0.5) }
	for i := range 256 {
		x := int64(i - 128)
		t.crR[i] = int32((fix(1.40200)*x+half)>>scaleBits) + clampBias
		t.cbB[i] = int32((fix(1.77200)*x+half)>>scaleBits) + clampBias
		t.crG[i] = int32(-fix(0.71414) * x)
		t.cbG[i] = int32(-fix(0.34414)*x+half) + clampBias<<scaleBits
	}
	return t
}()

// clampTab saturates a colour sum biased by clampBias to a sample, as
// libjpeg's range_limit table does; index it with & 1023.
var clampTab = func() (t [1024]uint8) {
	for i := range t {
		t[i] = uint8(min(max(i-clampBias, 0), 255))
	}
	return t
}()

// clamp8 saturates to a sample.
func clamp8(x int32) uint8 { return uint8(min(max(x, 0), 255)) }

// emit converts the output rows below y1 that have not been converted yet,
// within the Region.
func (d *Decoder) emit(y1 int) {
	y1 = min(y1, d.outH)
	y0 := max(d.rowsDone, d.reg.Min.Y)
	d.rowsDone = max(d.rowsDone, y1)
	y1 = min(y1, d.reg.Max.Y)
	if y0 >= y1 {
		return
	}
	f := &d.f
	x0, x1 := d.reg.Min.X, d.reg.Max.X
	var rows [maxComponents][]uint8
	m := d.dst
	plane := m.Width * m.Height
	for y := y0; y < y1; y++ {
		for i := 0; i < f.nComp; i++ {
			c := &f.comp[i]
			rows[i] = c.up.row(c, d.rowBuf[i], y, x0, x1)[x0:x1]
		}
		o := y*m.Width + x0
		n := x1 - x0
		switch d.color {
		case cmGray:
			copy(m.Pix[o:o+n], rows[0])
		case cmYCbCr:
			yccRow(m.Pix[o:o+n], m.Pix[plane+o:plane+o+n], m.Pix[2*plane+o:2*plane+o+n], rows[0], rows[1], rows[2])
		case cmRGB:
			copy(m.Pix[o:o+n], rows[0])
			copy(m.Pix[plane+o:plane+o+n], rows[1])
			copy(m.Pix[2*plane+o:2*plane+o+n], rows[2])
		default:
			var k4 []uint8
			if m.Channels == 4 {
				k4 = m.Pix[3*plane+o : 3*plane+o+n]
			}
			cmykRow(m.Pix[o:o+n], m.Pix[plane+o:plane+o+n], m.Pix[2*plane+o:2*plane+o+n], k4,
				rows[0], rows[1], rows[2], rows[3], d.color == cmYCCK)
		}
	}
}

// yccRow is ycc_rgb_convert for one row.
func yccRow(r, g, b, y, cb, cr []uint8) {
	n := len(y)
	r, g, b, cb, cr = r[:n], g[:n], b[:n], cb[:n], cr[:n]
	t, c := &ycc, &clampTab
	for i := range y {
		yy := int32(y[i])
		vb, vr := cb[i], cr[i]
		r[i] = c[(yy+t.crR[vr])&1023]
		g[i] = c[(yy+(t.cbG[vb]+t.crG[vr])>>16)&1023]
		b[i] = c[(yy+t.cbB[vb])&1023]
	}
}

// cmykRow turns one row of CMYK (or, if ycck, YCCK) samples into RGB the
// way Pillow does for Image.open(f).convert("RGB"): libjpeg's CMYK output
// (ycck_cmyk_convert for YCCK) is read as Adobe's inverted CMYK ("CMYK;I",
// whatever the file says) and converted by cmyk2rgb. With k4 non-nil it
// writes libjpeg's CMYK itself instead (a test hook: djpeg outputs it).
func cmykRow(r, g, b, k4, c0, c1, c2, k []uint8, ycck bool) {
	n := len(c0)
	r, g, b, c1, c2, k = r[:n], g[:n], b[:n], c1[:n], c2[:n], k[:n]
	t := &ycc
	for i := range c0 {
		c, m, y := c0[i], c1[i], c2[i]
		if ycck {
			yy := int32(c)
			vb, vr := m, y
			c = 255 - clampTab[(yy+t.crR[vr])&1023]
			m = 255 - clampTab[(yy+(t.cbG[vb]+t.crG[vr])>>16)&1023]
			y = 255 - clampTab[(yy+t.cbB[vb])&1023]
		}
		if k4 != nil {
			r[i], g[i], b[i], k4[i] = c, m, y, k[i]
			continue
		}
		// Pillow inverts all four channels, then nk = 255 - K' = k and
		// each channel is nk - MULDIV255(255 - v, nk).
		nk := int32(k[i])
		r[i] = clamp8(nk - mulDiv255(255-int32(c), nk))
		g[i] = clamp8(nk - mulDiv255(255-int32(m), nk))
		b[i] = clamp8(nk - mulDiv255(255-int32(y), nk))
	}
}

// mulDiv255 is Pillow's MULDIV255: a*b/255 rounded, without a division.
func mulDiv255(a, b int32) int32 {
	t := a*b + 128
	return (t>>8 + t) >> 8
}
