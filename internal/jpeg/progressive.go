// Copyright 2012 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// Forked from Go's image/jpeg/scan.go: the progressive scans keep
// image/jpeg's structure, reading through bitReader, storing 16-bit
// coefficients, validating the scan parameters and refining coefficients
// as libjpeg-turbo's jdphuff.c does; the IDCT runs once at EOI, only on
// the blocks the output needs.

package jpeg

import "fmt"

// decodeProgressiveScan decodes one scan of a progressive (SOF2) file
// into the components' coefficient buffers.
func (d *Decoder) decodeProgressiveScan(s *scan) error {
	f := &d.f
	dcBand := s.ss == 0
	bad := s.al > 13 || s.ah != 0 && s.al != s.ah-1
	if dcBand {
		bad = bad || s.se != 0
	} else {
		bad = bad || s.ss > s.se || s.se > 63 || s.nc != 1
	}
	if bad {
		return FormatError(fmt.Sprintf("bad progressive scan parameters Ss=%d Se=%d Ah=%d Al=%d", s.ss, s.se, s.ah, s.al))
	}
	if err := d.checkTables(s, dcBand && s.ah == 0, !dcBand); err != nil {
		return err
	}
	for i := 0; i < s.nc; i++ {
		c := &f.comp[s.comp[i]]
		c.pred = 0
		if dcBand {
			c.scanned = true
		}
	}
	d.eobRun = 0

	mcusX, mcusY := f.mcusX, f.mcusY
	if s.nc == 1 {
		c := &f.comp[s.comp[0]]
		mcusX, mcusY = c.bw, c.bh
	}
	restartsLeft, nextRST := d.ri, 0
	for my := 0; my < mcusY; my++ {
		for mx := 0; mx < mcusX; mx++ {
			if d.ri > 0 {
				if restartsLeft == 0 {
					if err := d.restart(s, &nextRST); err != nil {
						return err
					}
					restartsLeft = d.ri
				}
				restartsLeft--
			}
			for i := 0; i < s.nc; i++ {
				c := &f.comp[s.comp[i]]
				if s.nc == 1 {
					if err := d.progressiveBlock(s, i, c, mx, my); err != nil {
						return err
					}
					continue
				}
				for by := my * c.v; by < (my+1)*c.v; by++ {
					for bx := mx * c.h; bx < (mx+1)*c.h; bx++ {
						if err := d.progressiveBlock(s, i, c, bx, by); err != nil {
							return err
						}
					}
				}
			}
		}
		if d.br.overrun() {
			return ErrTruncated
		}
	}
	return nil
}

// progressiveBlock decodes the part of block (bx, by) of c that scan s
// carries; i is c's index in the scan.
func (d *Decoder) progressiveBlock(s *scan, i int, c *component, bx, by int) error {
	off := (by*d.f.mcusX*c.h + bx) * 64
	b := (*[64]int16)(c.coef[off : off+64])
	br := &d.br
	switch {
	case s.ss == 0 && s.ah == 0: // DC first (G.1.2.1)
		h := &d.huff[0][s.td[i]]
		t, err := br.decodeSymbol(h)
		if err != nil {
			return err
		}
		c.pred += br.receiveExtend(int(t))
		b[0] = int16(c.pred << s.al)
	case s.ss == 0: // DC refinement
		if br.bit() {
			b[0] |= 1 << s.al
		}
	case s.ah == 0:
		return d.acFirst(s, b, &d.huff[1][s.ta[i]])
	default:
		return d.acRefine(s, b, &d.huff[1][s.ta[i]])
	}
	return nil
}

// acFirst decodes the first pass of an AC band (G.1.2.2).
func (d *Decoder) acFirst(s *scan, b *[64]int16, h *huffTable) error {
	if d.eobRun > 0 {
		d.eobRun--
		return nil
	}
	br := &d.br
	for k := s.ss; k <= s.se; k++ {
		rs, err := br.decodeSymbol(h)
		if err != nil {
			return err
		}
		r, sz := int(rs>>4), int(rs&15)
		if sz == 0 {
			if r == 15 {
				k += 15 // ZRL
				continue
			}
			d.eobRun = 1 << r
			if r != 0 {
				d.eobRun += int(br.bits(r))
			}
			d.eobRun--
			break
		}
		k += r
		if k > s.se {
			return FormatError("progressive AC coefficients run past the end of the band")
		}
		b[unzig[k]&63] = int16(br.receiveExtend(sz) << s.al)
	}
	return nil
}

// acRefine decodes a successive-approximation refinement of an AC band
// (G.1.2.3), as decode_mcu_AC_refine does.
func (d *Decoder) acRefine(s *scan, b *[64]int16, h *huffTable) error {
	br := &d.br
	p1 := int16(1) << s.al
	k := s.ss
	if d.eobRun == 0 {
		for ; k <= s.se; k++ {
			rs, err := br.decodeSymbol(h)
			if err != nil {
				return err
			}
			r, sz := int(rs>>4), int(rs&15)
			var z int16
			switch {
			case sz == 1:
				z = -p1
				if br.bit() {
					z = p1
				}
			case sz != 0:
				return FormatError("bad Huffman symbol in progressive refinement scan")
			case r != 15:
				d.eobRun = 1 << r
				if r != 0 {
					d.eobRun += int(br.bits(r))
				}
				goto eob
			}
			// Skip r zero coefficients (and the target one if sz == 1),
			// appending correction bits to the non-zero ones.
			k = refineNonZeroes(br, b, k, s.se, r, p1)
			if z != 0 {
				if k > s.se {
					return FormatError("progressive refinement runs past the end of the band")
				}
				b[unzig[k]&63] = z
			}
		}
		return nil
	}
eob:
	refineNonZeroes(br, b, k, s.se, -1, p1)
	d.eobRun--
	return nil
}

// refineNonZeroes walks the band from zig-zag index k, appending a
// correction bit to each non-zero coefficient, until it has passed nz zero
// coefficients and stands on the next one (nz < 0: to the end of the band).
// It returns the index it stopped at.
func refineNonZeroes(br *bitReader, b *[64]int16, k, se, nz int, p1 int16) int {
	for ; k <= se; k++ {
		u := unzig[k] & 63
		if b[u] == 0 {
			if nz == 0 {
				break
			}
			nz--
			continue
		}
		if br.bit() && b[u]&p1 == 0 {
			if b[u] >= 0 {
				b[u] += p1
			} else {
				b[u] -= p1
			}
		}
	}
	return k
}

// reconstructProgressive dequantizes the coefficients of the blocks the
// output needs and puts them through the IDCT into the planes.
func (d *Decoder) reconstructProgressive() {
	f := &d.f
	blk := (*[64]int32)(d.blk[:64])
	for i := 0; i < f.nComp; i++ {
		c := &f.comp[i]
		var q [64]int32 // natural order
		for k, v := range c.q {
			q[unzig[k]&63] = v
		}
		bstride := f.mcusX * c.h
		ss := c.ss
		for by := c.by0; by < c.by1; by++ {
			for bx := c.bx0; bx < c.bx1; bx++ {
				off := (by*bstride + bx) * 64
				b := (*[64]int16)(c.coef[off : off+64])
				out := c.plane[(by*c.stride+bx)*ss:]
				if ss == 1 {
					out[0] = idct1x1(int32(b[0]) * q[0])
					continue
				}
				var ac int16
				for k := 1; k < 64; k++ {
					ac |= b[k]
				}
				if ac == 0 {
					fillBlock(out, c.stride, ss, idctDC(int32(b[0])*q[0]))
					continue
				}
				for k := range blk {
					blk[k] = int32(b[k]) * q[k]
				}
				switch ss {
				case 8:
					idct8x8(blk, out, c.stride)
				case 4:
					idct4x4(blk, out, c.stride)
				default:
					idct2x2(blk, out, c.stride)
				}
			}
		}
	}
}
