// Copyright 2012 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// Forked from Go's image/jpeg/scan.go: the progressive scans keep
// image/jpeg's structure, reading through bitReader, storing 16-bit
// coefficients, validating the scan parameters and refining coefficients
// as libjpeg-turbo's jdphuff.c does; the IDCT runs once at EOI, only on
// the blocks the output needs.

package jpeg

import (
	"fmt"
	"math/bits"
)

// checkProgressiveScan validates a progressive scan's parameters as
// start_pass_phuff_decoder does, and its Huffman tables.
func (d *Decoder) checkProgressiveScan(s *scan) error {
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
		c := &d.f.comp[s.comp[i]]
		for k := s.ss; k <= s.se; k++ {
			c.al[k] = int8(s.al)
		}
	}
	return nil
}

// decodeProgressiveScan decodes one scan of a progressive (SOF2) file
// into the components' coefficient buffers.
func (d *Decoder) decodeProgressiveScan(s *scan) error {
	f := &d.f
	dcBand := s.ss == 0
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
						return d.br.blockError(err)
					}
					continue
				}
				for by := my * c.v; by < (my+1)*c.v; by++ {
					for bx := mx * c.h; bx < (mx+1)*c.h; bx++ {
						if err := d.progressiveBlock(s, i, c, bx, by); err != nil {
							return d.br.blockError(err)
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
	bi := by*d.f.mcusX*c.h + bx
	b := (*[64]int16)(c.coef[bi*64 : bi*64+64])
	nz := &c.nz[bi]
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
		return d.acFirst(s, b, nz, &d.huff[1][s.ta[i]])
	default:
		return d.acRefine(s, b, nz, &d.huff[1][s.ta[i]])
	}
	return nil
}

// The AC band decoders below keep the bit buffer in locals, as the
// sequential decoder does, and write it back to d.br when done.

// symbol decodes one Huffman-coded symbol at the top of acc (which must
// hold 16 bits) and returns it with its code length.
func symbol(h *huffTable, acc uint64) (uint, uint, error) {
	e := h.lut[acc>>(64-lutBits)]
	if l := uint(e & 0xff); l != 0 {
		return uint(e >> 8), l, nil
	}
	sym, l, err := decodeLong(h, acc)
	return uint(sym), l, err
}

// acFirst decodes the first pass of an AC band (G.1.2.2), recording the
// non-zero coefficients in *nz.
func (d *Decoder) acFirst(s *scan, b *[64]int16, nz *uint64, h *huffTable) error {
	if d.eobRun > 0 {
		d.eobRun--
		return nil
	}
	br := &d.br
	buf, acc, n, pos := br.buf, br.acc, br.n, br.pos
	for k := s.ss; k <= s.se; k++ {
		// 32 bits: a code, and up to 15 extra bits or 14 EOB-run bits.
		acc, n, pos = refill(buf, acc, n, pos)
		rs, l, err := symbol(h, acc)
		if err != nil {
			br.acc, br.n, br.pos = acc, n, pos
			return err
		}
		acc <<= l
		n -= int(l)
		r, sz := rs>>4, rs&15
		if sz == 0 {
			if r == 15 {
				k += 15 // ZRL
				continue
			}
			d.eobRun = 1 << r
			if r != 0 {
				d.eobRun += int(acc >> (64 - r))
				acc <<= r
				n -= int(r)
			}
			d.eobRun--
			break
		}
		k += int(r)
		if k > s.se {
			br.acc, br.n, br.pos = acc, n, pos
			return FormatError("progressive AC coefficients run past the end of the band")
		}
		v := int16(extend(int32(acc>>(64-sz)), int(sz)) << s.al)
		acc <<= sz
		n -= int(sz)
		b[unzig[k]&63] = v
		if v != 0 {
			*nz |= 1 << uint(k)
		} else {
			*nz &^= 1 << uint(k) // only a 16-bit overflow gets here
		}
	}
	br.acc, br.n, br.pos = acc, n, pos
	return nil
}

// acRefine decodes a successive-approximation refinement of an AC band
// (G.1.2.3), as decode_mcu_AC_refine does; *nz marks the block's non-zero
// coefficients.
func (d *Decoder) acRefine(s *scan, b *[64]int16, nz *uint64, h *huffTable) error {
	br := &d.br
	buf, acc, n, pos := br.buf, br.acc, br.n, br.pos
	p1 := int16(1) << s.al
	k := s.ss
	if d.eobRun == 0 {
		for ; k <= s.se; k++ {
			acc, n, pos = refill(buf, acc, n, pos)
			rs, l, err := symbol(h, acc)
			if err != nil {
				br.acc, br.n, br.pos = acc, n, pos
				return err
			}
			acc <<= l
			n -= int(l)
			r, sz := rs>>4, rs&15
			var z int16
			switch {
			case sz == 1:
				z = -p1
				if int64(acc) < 0 {
					z = p1
				}
				acc <<= 1
				n--
			case sz != 0:
				br.acc, br.n, br.pos = acc, n, pos
				return FormatError("bad Huffman symbol in progressive refinement scan")
			case r != 15:
				d.eobRun = 1 << r
				if r != 0 {
					d.eobRun += int(acc >> (64 - r))
					acc <<= r
					n -= int(r)
				}
				goto eob
			}
			// Skip r zero coefficients (and the target one if sz == 1),
			// appending correction bits to the non-zero ones.
			k, acc, n, pos = refineNonZeroes(b, *nz, k, s.se, int(r), p1, buf, acc, n, pos)
			if z != 0 {
				if k > s.se {
					br.acc, br.n, br.pos = acc, n, pos
					return FormatError("progressive refinement runs past the end of the band")
				}
				b[unzig[k]&63] = z
				*nz |= 1 << uint(k)
			}
		}
		br.acc, br.n, br.pos = acc, n, pos
		return nil
	}
eob:
	_, br.acc, br.n, br.pos = refineNonZeroes(b, *nz, k, s.se, -1, p1, buf, acc, n, pos)
	d.eobRun--
	return nil
}

// refineNonZeroes walks the band [k, se] (zig-zag) until it has passed
// skip zero coefficients and stands on the next one (skip < 0: to the end
// of the band), appending a correction bit to each non-zero coefficient it
// passes (nz marks them): the bit adds p1 to the magnitude, unless that
// bit of the coefficient is already set (libjpeg's check for damaged
// data). It returns the index it stopped at (se+1 past the end) and the
// bit buffer. Working from the mask, it touches only the non-zero
// coefficients and takes no data-dependent branch per coefficient.
func refineNonZeroes(b *[64]int16, nz uint64, k, se, skip int, p1 int16, buf []byte, acc uint64, n, pos int) (int, uint64, int, int) {
	if k > se {
		return k, acc, n, pos
	}
	band := ^uint64(0) << uint(k) & (^uint64(0) >> uint(63-se))
	stop := se + 1
	if skip >= 0 {
		zeros := ^nz & band
		for ; skip > 0 && zeros != 0; skip-- {
			zeros &= zeros - 1
		}
		if zeros != 0 {
			stop = bits.TrailingZeros64(zeros)
		}
		band &= 1<<uint(stop) - 1
	}
	for m := nz & band; m != 0; m &= m - 1 {
		if n < 1 {
			acc, n, pos = refill(buf, acc, n, pos)
		}
		bit := int16(acc >> 63)
		acc <<= 1
		n--
		u := unzig[bits.TrailingZeros64(m)] & 63
		c := b[u]
		if c&p1 == 0 {
			sign := c >> 15                  // 0 or -1
			b[u] = c + ((p1^sign)-sign)&-bit // +-p1 towards larger magnitude, if bit
		}
	}
	return stop, acc, n, pos
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
