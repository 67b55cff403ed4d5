// Copyright 2009 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// Forked from Go's image/jpeg/huffman.go: the tables are built for a 64-bit
// MSB-first bit buffer and carry lookups that decode whole AC symbols (run
// and already-extended coefficient, after stb_image's "fast AC" table) two
// at a time; validation follows libjpeg-turbo's jpeg_make_d_derived_tbl
// (jdhuff.c).

package jpeg

import "fmt"

const (
	maxCodeLength = 16  // longest Huffman code, in bits
	maxNCodes     = 256 // most symbols in one table

	// lutBits is how many bits of look-ahead index huffTable.lut. Codes of
	// up to lutBits bits are decoded with one load; longer ones fall back
	// to a canonical-code search.
	lutBits = 10

	// pairBits is the index width of huffTable.pair: 11 bits (16 KB a
	// table) hold two symbols of a photo's luma about half the time.
	pairBits = 11
	pairEOB  = 1 << 22
	pairSlow = 1 << 23

	// skipBits is the index width of huffTable.skip; a 12-bit window holds
	// about two AC symbols of a photo.
	skipBits = 12
	skipEOB  = 1 << 12
)

// huffTable is one decoding table (one Tc/Th slot of a DHT segment).
type huffTable struct {
	defined bool
	dcOK    bool // every symbol is <= 15, as a DC table's must be

	// lut[i], for the next lutBits bits i of the stream, is
	// symbol<<8 | code length, or 0 if the code is longer than lutBits.
	lut [1 << lutBits]uint16

	// pair[i] (used for AC tables), for the next pairBits bits i, holds
	// the first one or two AC symbols those bits encode whole, decoded:
	// bits 0-4, the bits to consume; 5-9, run+1 of the first coefficient;
	// 10-16, the run of the second (127 when there is none, which sends its
	// store to a dummy slot); 17-21, run+1 of the second (0 if none);
	// pairEOB if the second symbol is an EOB; bits 32-47 and 48-63, the two
	// coefficients after EXTEND (F.2.2.1). Decoding two symbols per table
	// load shortens the chain of dependent loads the decoder waits on.
	// pairSlow marks strings whose first symbol does not fit, or is an EOB
	// or ZRL: those go through lut.
	pair [1 << pairBits]uint64

	// skip[i], for the next skipBits bits i (used for AC tables), describes
	// the whole symbols (codes with their extra bits) those bits hold, for
	// decoding that drops the coefficients: the bits they take (bits 0-4),
	// how far they advance in the block (the sum of run+1 over the symbols,
	// bits 5-11), and whether the last one is an EOB (skipEOB). 0 means the
	// first symbol does not fit.
	skip      [1 << skipBits]uint16
	skipBuilt bool // skip is built on first use: only skipping decodes need it

	// maxCode[l] is the largest code of length l (-1 if none);
	// maxCode[maxCodeLength+1] stops the search. valOff[l] + code indexes
	// vals for a code of length l.
	maxCode [maxCodeLength + 2]int32
	valOff  [maxCodeLength + 1]int32
	vals    [maxNCodes]uint8
}

// build derives the lookup tables from the code counts (counts[l-1] codes
// of length l) and the symbols in code order, rejecting tables that
// libjpeg-turbo rejects: too many symbols, or a code length overflowing
// (which includes the all-ones code the standard forbids). An AC table
// also gets its pair table.
func (h *huffTable) build(counts *[maxCodeLength]uint8, vals []uint8, ac bool) error {
	n := 0
	for _, c := range counts {
		n += int(c)
	}
	if n == 0 || n > maxNCodes || n != len(vals) {
		return FormatError(fmt.Sprintf("bad Huffman table: %d symbols", n))
	}
	copy(h.vals[:], vals)
	h.dcOK = true
	for _, v := range vals {
		if v > 15 {
			h.dcOK = false
		}
	}

	// Canonical codes (T.81 figure C.2), and the limits per length.
	var code int32
	k := 0
	for l := 1; l <= maxCodeLength; l++ {
		c := int32(counts[l-1])
		if c == 0 {
			h.maxCode[l] = -1
		} else {
			h.valOff[l] = int32(k) - code
			k += int(c)
			code += c
			h.maxCode[l] = code - 1
		}
		if code >= 1<<l {
			// The codes of this length reached the all-ones code, which
			// T.81 reserves, or overflowed the length.
			return FormatError("bad Huffman table: code lengths overflow")
		}
		code <<= 1
	}
	h.maxCode[maxCodeLength+1] = 1 << 30

	// The lookup table for codes of at most lutBits bits.
	clear(h.lut[:])
	code, k = 0, 0
	for l := 1; l <= lutBits; l++ {
		for c := 0; c < int(counts[l-1]); c++ {
			sym := h.vals[k]
			k++
			shift := lutBits - l
			base := int(code) << shift
			for rest := 0; rest < 1<<shift; rest++ {
				h.lut[base|rest] = uint16(sym)<<8 | uint16(l)
			}
			code++
		}
		code <<= 1
	}
	if ac {
		h.buildPair()
	}
	h.skipBuilt = false
	h.defined = true
	return nil
}

// buildSkip fills h.skip by decoding each skipBits-bit string greedily,
// symbol by symbol, with h.lut.
func (h *huffTable) buildSkip() {
	h.skipBuilt = true
	for i := range h.skip {
		used, adv := 0, 0
		eob := false
		for used < skipBits {
			// The rest of the string, left-aligned in a lutBits window.
			rest := (i << used) & (1<<skipBits - 1)
			e := h.lut[rest>>(skipBits-lutBits)]
			l := int(e & 0xff)
			if l == 0 || used+l > skipBits {
				break
			}
			r, s := int(e>>12), int(e>>8&15)
			if s == 0 && r != 15 {
				used += l
				eob = true
				break
			}
			if used+l+s > skipBits {
				break
			}
			used += l + s
			adv += r + 1
		}
		v := uint16(used | adv<<5)
		if eob {
			v |= skipEOB
		}
		h.skip[i] = v
	}
}

// extend is EXTEND of T.81 F.2.2.1: the s-bit value v as a signed
// coefficient.
func extend(v int32, s int) int32 {
	if s == 0 {
		return 0
	}
	if v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}

// processDHT reads a Define Huffman Table segment (B.2.4.2), which may hold
// several tables.
func (d *Decoder) processDHT(p []byte) error {
	for len(p) > 0 {
		if len(p) < 17 {
			return FormatError("DHT segment too short")
		}
		tc, th := p[0]>>4, p[0]&0x0f
		if tc > 1 || th > 3 {
			return FormatError(fmt.Sprintf("DHT: bad table class/index %#02x", p[0]))
		}
		var counts [maxCodeLength]uint8
		copy(counts[:], p[1:17])
		n := 0
		for _, c := range counts {
			n += int(c)
		}
		if len(p) < 17+n {
			return FormatError("DHT segment shorter than its code counts say")
		}
		if err := d.huff[tc][th].build(&counts, p[17:17+n], tc == 1); err != nil {
			return fmt.Errorf("%w (DHT class %d index %d)", err, tc, th)
		}
		p = p[17+n:]
	}
	return nil
}

// setStandardTables gives table slots 0 and 1 the example tables of T.81
// K.3 when the file defines none, as libjpeg-turbo does for Motion-JPEG
// frames (jstdhuff.c). It only applies to sequential files.
func (d *Decoder) setStandardTables() {
	for i, s := range stdHuffman {
		h := &d.huff[i/2][i%2]
		if !h.defined {
			// The standard tables are valid: build cannot fail.
			_ = h.build(&s.counts, s.vals, i >= 2)
		}
	}
}

// stdHuffman holds the K.3 tables in slot order DC0, DC1, AC0, AC1.
var stdHuffman = [4]struct {
	counts [maxCodeLength]uint8
	vals   []uint8
}{
	{
		[maxCodeLength]uint8{0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
		[]uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
	},
	{
		[maxCodeLength]uint8{0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
		[]uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
	},
	{
		[maxCodeLength]uint8{0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d},
		[]uint8{
			0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12,
			0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
			0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08,
			0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
			0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16,
			0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
			0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
			0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
			0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
			0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
			0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79,
			0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
			0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
			0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
			0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
			0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
			0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4,
			0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
			0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea,
			0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
			0xf9, 0xfa,
		},
	},
	{
		[maxCodeLength]uint8{0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77},
		[]uint8{
			0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21,
			0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
			0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91,
			0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
			0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34,
			0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
			0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38,
			0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
			0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
			0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
			0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78,
			0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
			0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96,
			0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
			0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
			0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
			0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2,
			0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
			0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9,
			0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
			0xf9, 0xfa,
		},
	},
}

// buildPair fills h.pair from h.lut.
func (h *huffTable) buildPair() {
	for i := range h.pair {
		e := h.lut[i>>(pairBits-lutBits)]
		l1 := int(e & 0xff)
		r1, s1 := uint64(e>>12), int(e>>8&15)
		if l1 == 0 || s1 == 0 || l1+s1 > pairBits {
			h.pair[i] = pairSlow
			continue
		}
		used := l1 + s1
		v1 := extend(int32((i>>(pairBits-used))&(1<<s1-1)), s1)
		ent := uint64(used) | (r1+1)<<5 | 127<<10 | uint64(uint16(v1))<<32
		rest := (i << used) & (1<<pairBits - 1)
		e2 := h.lut[rest>>(pairBits-lutBits)]
		l2 := int(e2 & 0xff)
		r2, s2 := uint64(e2>>12), int(e2>>8&15)
		switch {
		case l2 == 0 || used+l2 > pairBits:
		case s2 == 0 && r2 == 0: // EOB
			ent = ent&^31 | uint64(used+l2) | pairEOB
		case s2 == 0: // ZRL: leave it to the single-symbol path
		case used+l2+s2 <= pairBits:
			u2 := used + l2 + s2
			v2 := extend(int32((i>>(pairBits-u2))&(1<<s2-1)), s2)
			ent = ent&^(31|127<<10) | uint64(u2) | r2<<10 | (r2+1)<<17 | uint64(uint16(v2))<<48
		}
		h.pair[i] = ent
	}
}

// unzigD is unzig extended to 256 entries, the ones past 63 pointing at
// a dummy 65th coefficient.
var unzigD = func() (t [256]uint8) {
	for i := range t {
		t[i] = 64
		if i < 64 {
			t[i] = unzig[i]
		}
	}
	return t
}()
