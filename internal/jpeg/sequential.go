package jpeg

import (
	"encoding/binary"
	"fmt"
)

// blockJob is one block of a scan's MCU: its component, Huffman tables and
// offset (in blocks) inside the MCU.
type blockJob struct {
	c      *component
	dc, ac *huffTable
	dx, dy int
}

// decodeSequentialScan decodes a baseline or extended sequential scan,
// putting every block the output needs through the IDCT as soon as it is
// decoded; blocks outside a Region (and, at scale 1/8, the AC
// coefficients libjpeg's 1x1 IDCT ignores) are entropy-decoded without
// being stored. A scan that holds every component is converted to RGB one
// MCU row behind the decoding, while its rows are still in cache.
//
// The bit buffer lives in locals (acc, n, pos) passed to and returned by
// the block decoder, in registers: it is only written back to d.br at
// restart markers and at the end of MCU rows.
func (d *Decoder) decodeSequentialScan(s *scan) error {
	f := &d.f
	if err := d.checkTables(s, true, true); err != nil {
		return err
	}
	var jobs [10]blockJob
	nj := 0
	for i := 0; i < s.nc; i++ {
		c := &f.comp[s.comp[i]]
		if c.scanned {
			return FormatError(fmt.Sprintf("component %d is in more than one sequential scan", c.id))
		}
		c.scanned = true
		c.pred = 0
		h, v := c.h, c.v
		if s.nc == 1 {
			h, v = 1, 1
		}
		for dy := 0; dy < v; dy++ {
			for dx := 0; dx < h; dx++ {
				jobs[nj] = blockJob{c, &d.huff[0][s.td[i]], &d.huff[1][s.ta[i]], dx, dy}
				nj++
			}
		}
	}
	mcusX, mcusY := f.mcusX, f.mcusY
	rowsPerMCU := f.maxV * d.minSS // output rows per MCU row
	if s.nc == 1 {
		// A non-interleaved scan's MCU is one block of the component, and
		// covers only the blocks inside the image (A.2.2).
		c := jobs[0].c
		mcusX, mcusY = c.bw, c.bh
		rowsPerMCU = d.minSS
	}
	streaming := s.nc == f.nComp

	br := &d.br
	acc, n, pos := br.acc, br.n, br.pos
	restartsLeft, nextRST := d.ri, 0
	for my := 0; my < mcusY; my++ {
		for mx := 0; mx < mcusX; mx++ {
			if d.ri > 0 {
				if restartsLeft == 0 {
					br.acc, br.n, br.pos = acc, n, pos
					if err := d.restart(s, &nextRST); err != nil {
						return err
					}
					acc, n, pos = br.acc, br.n, br.pos
					restartsLeft = d.ri
				}
				restartsLeft--
			}
			for i := range jobs[:nj] {
				j := &jobs[i]
				bx, by := mx*j.c.h+j.dx, my*j.c.v+j.dy
				if s.nc == 1 {
					bx, by = mx, my
				}
				var err error
				if acc, n, pos, err = d.sequentialBlock(j, bx, by, acc, n, pos); err != nil {
					br.acc, br.n, br.pos = acc, n, pos
					return br.blockError(err)
				}
			}
		}
		br.acc, br.n, br.pos = acc, n, pos
		if br.overrun() {
			return ErrTruncated
		}
		if streaming {
			// The rows of MCU row my-1 now have their context below.
			d.emit(my * rowsPerMCU)
		}
	}
	return nil
}

// sequentialBlock decodes block (bx, by) of j.c from the bit buffer
// (acc, n, pos over d.br.buf) and, if the output needs the block, puts it
// through the IDCT into the component's plane. It returns the bit buffer
// after the block.
func (d *Decoder) sequentialBlock(j *blockJob, bx, by int, acc uint64, n, pos int) (uint64, int, int, error) {
	c := j.c
	buf := d.br.buf
	diff, acc, n, pos, err := decodeDC(j.dc, buf, acc, n, pos)
	if err != nil {
		return acc, n, pos, err
	}
	c.pred += diff
	dc := int32(int16(c.pred)) // libjpeg stores coefficients as 16-bit JCOEFs
	need := bx >= c.bx0 && bx < c.bx1 && by >= c.by0 && by < c.by1
	// Skipping needs the skip table, which costs more to build than it
	// saves on the few MCU-padding blocks of a whole-image decode.
	if c.ss == 1 || !need && d.cropped {
		acc, n, pos, err = skipAC(j.ac, buf, acc, n, pos)
		if need {
			c.plane[by*c.stride+bx] = idct1x1(dc * c.q[0])
		}
		return acc, n, pos, err
	}
	clear(d.blk[:65])
	d.blk[0] = dc * c.q[0]
	k, acc, n, pos, err := decodeAC(&d.blk, j.ac, &c.q, buf, acc, n, pos)
	blk := (*[64]int32)(d.blk[:64])
	if err != nil || !need {
		return acc, n, pos, err
	}
	ss := c.ss
	out := c.plane[(by*c.stride+bx)*ss:]
	switch {
	case k == 1:
		fillBlock(out, c.stride, ss, idctDC(blk[0]))
	case ss == 8 && k <= 10:
		idct8x8Low(blk, out, c.stride)
	case ss == 8:
		idct8x8(blk, out, c.stride)
	case ss == 4:
		idct4x4(blk, out, c.stride)
	default:
		idct2x2(blk, out, c.stride)
	}
	return acc, n, pos, nil
}

// restart handles the end of a restart interval: the bits left in the
// segment are dropped, and the RSTn marker must follow (libjpeg would
// resynchronise past a wrong one with a warning; a damaged file is an
// error here).
func (d *Decoder) restart(s *scan, next *int) error {
	br := &d.br
	if br.overrun() {
		return ErrTruncated
	}
	m, pos, ok := nextMarker(br.data, br.next)
	if !ok {
		return ErrTruncated
	}
	if want := byte(rst0Marker + *next); m != want {
		return FormatError(fmt.Sprintf("expected RST%d marker in scan data, found %s", *next, markerName(m)))
	}
	*next = (*next + 1) & 7
	br.reset(pos)
	for i := 0; i < s.nc; i++ {
		d.f.comp[s.comp[i]].pred = 0
	}
	d.eobRun = 0
	return nil
}

// refill tops up the bit buffer (acc holding n bits, the next byte to load
// at buf[pos]) to at least 56 bits: eight bytes are loaded and the whole
// bytes that fit are kept. The decoders below call it before every symbol:
// doing it unconditionally costs less than the mispredicted branches of a
// refill-when-low test. Past the padding it supplies zero bits and moves
// pos beyond the buffer, which bitReader.overrun reports.
func refill(buf []byte, acc uint64, n, pos int) (uint64, int, int) {
	if pos <= len(buf)-8 {
		acc |= binary.BigEndian.Uint64(buf[pos:]) >> (uint(n) & 63)
		return acc, n | 56, pos + (63-n)>>3
	}
	if n < 32 {
		return acc, 64, len(buf) + 64
	}
	return acc, n, pos
}

// decodeDC decodes a DC difference (F.2.2.1).
func decodeDC(h *huffTable, buf []byte, acc uint64, n, pos int) (int32, uint64, int, int, error) {
	acc, n, pos = refill(buf, acc, n, pos)
	e := h.lut[acc>>(64-lutBits)]
	s := uint(e >> 8)
	if l := uint(e & 0xff); l != 0 {
		acc <<= l
		n -= int(l)
	} else {
		sym, l, err := decodeLong(h, acc)
		if err != nil {
			return 0, acc, n, pos, err
		}
		acc <<= l
		n -= int(l)
		s = uint(sym)
	}
	if s == 0 {
		return 0, acc, n, pos, nil
	}
	v := int32(acc >> (64 - s))
	return extend(v, int(s)), acc << s, n - int(s), pos, nil
}

// decodeAC decodes the AC coefficients of a sequential block into blk,
// dequantized with q (zig-zag order) and stored in natural order; blk[64]
// is scratch. It returns 1 + the zig-zag index of the last coefficient
// decoded (1 when only the DC is present).
func decodeAC(blk *[128]int32, ac *huffTable, q *[64]int32, buf []byte, acc uint64, n, pos int) (int, uint64, int, int, error) {
	pair, lut := &ac.pair, &ac.lut
	_, _, _, _ = pair[0], lut[0], blk[0], q[0] // nil checks here rather than in the loop
	k := 1
	for k < 64 {
		// Each lookup starts with at least 32 bits: enough for a 16-bit
		// code and 15 extra bits.
		acc, n, pos = refill(buf, acc, n, pos)
		e := pair[acc>>(64-pairBits)]
		// One or two symbols from one entry, unless the first one could end
		// the block (then the second would be the next block's DC code).
		if a1 := int(e >> 5 & 31); e&pairSlow == 0 && k+a1 < 64 {
			l := uint(e & 31)
			acc <<= l
			n -= int(l)
			z := k + a1 - 1
			blk[unzig[z&63]&63] = int32(int16(e>>32)) * q[z&63]
			k = z + 1
			z = k + int(e>>10&127) // beyond 63, unzigD sends the store to blk[64]
			blk[unzigD[z&255]&127] = int32(int64(e)>>48) * q[z&63]
			k += int(e >> 17 & 31)
			if e&pairEOB != 0 {
				break
			}
			continue
		}
		le := lut[acc>>(64-lutBits)]
		rs, l := uint(le>>8), uint(le&0xff)
		if l == 0 {
			sym, ll, err := decodeLong(ac, acc)
			if err != nil {
				return k, acc, n, pos, err
			}
			rs, l = uint(sym), ll
		}
		acc <<= l
		n -= int(l)
		r, s := int(rs>>4), rs&15
		if s == 0 {
			if r != 15 {
				break // EOB
			}
			k += 16 // ZRL
			continue
		}
		k += r
		x := int32(acc >> (64 - s))
		acc <<= s
		n -= int(s)
		z := k & 63
		blk[unzig[z]&63] = extend(x, int(s)) * q[z]
		k++
	}
	if k > 64 {
		return k, acc, n, pos, FormatError("AC coefficients run past the end of a block")
	}
	return k, acc, n, pos, nil
}

// skipAC reads the AC symbols of a sequential block and drops them.
func skipAC(ac *huffTable, buf []byte, acc uint64, n, pos int) (uint64, int, int, error) {
	if !ac.skipBuilt {
		ac.buildSkip()
	}
	skip, lut := &ac.skip, &ac.lut
	_, _ = skip[0], lut[0] // nil checks here rather than in the loop
	k := 1
	for k < 64 {
		acc, n, pos = refill(buf, acc, n, pos)
		// Several whole symbols at once, unless they might run past the
		// end of the block (where the next block's DC code begins).
		if e := skip[acc>>(64-skipBits)]; e != 0 && k+int(e>>5&127) < 64 {
			l := e & 31
			acc <<= l
			n -= int(l)
			k += int(e >> 5 & 127)
			if e&skipEOB != 0 {
				break
			}
			continue
		}
		le := lut[acc>>(64-lutBits)]
		rs, l := uint(le>>8), uint(le&0xff)
		if l == 0 {
			sym, ll, err := decodeLong(ac, acc)
			if err != nil {
				return acc, n, pos, err
			}
			rs, l = uint(sym), ll
		}
		acc <<= l
		n -= int(l)
		r, s := int(rs>>4), rs&15
		if s == 0 {
			if r != 15 {
				break
			}
			k += 16
			continue
		}
		k += r + 1
		acc <<= s
		n -= int(s)
	}
	if k > 64 {
		return acc, n, pos, FormatError("AC coefficients run past the end of a block")
	}
	return acc, n, pos, nil
}
