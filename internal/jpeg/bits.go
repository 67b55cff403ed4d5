package jpeg

import "bytes"

// bitReader reads the entropy-coded data of a scan. Each entropy-coded
// segment (the data up to the next marker: a restart marker or the end of
// the scan) is first copied out of the file with its 0xff00 stuffing
// (T.81 F.1.2.3) undone, which costs about a millisecond for a 12-MP photo
// and leaves the decoding loops a refill without byte checks: load eight
// bytes, shift them in, advance by the whole bytes that fitted.
//
// The copy is followed by zero bytes, as libjpeg pads a segment that ends
// too early; but where libjpeg then warns and carries on with grey
// blocks, overrun reports whether any padding bit was consumed, which
// makes the scan an ErrTruncated error.
type bitReader struct {
	data []byte // the whole file
	next int    // where the current segment ends in data: at its marker, or len(data)

	buf  []byte // the segment, unstuffed, then padZeros zero bytes
	real int    // bytes of buf that are data
	pos  int    // next byte of buf to load into acc

	acc uint64 // the next n bits, MSB first (the bits below them are the following data)
	n   int    // valid bits in acc
}

// padZeros is the number of zero bytes after a segment. A well-formed
// stream consumes no bit past the data, so with at most 63 bits buffered
// pos stays below real+8 and the eight-byte loads within the padding.
const padZeros = 16

// reset starts a new entropy-coded segment at data[pos:], unstuffing it
// up to the next marker.
func (br *bitReader) reset(pos int) {
	buf := br.buf[:0]
	for {
		i := bytes.IndexByte(br.data[pos:], 0xff)
		if i < 0 {
			buf = append(buf, br.data[pos:]...)
			pos = len(br.data)
			break
		}
		buf = append(buf, br.data[pos:pos+i]...)
		pos += i
		// 0xff 0x00 is a data byte 0xff; like libjpeg's
		// jpeg_fill_bit_buffer, skip fill bytes (0xff 0xff ... 0x00) too.
		p := pos + 1
		for p < len(br.data) && br.data[p] == 0xff {
			p++
		}
		if p < len(br.data) && br.data[p] == 0 {
			buf = append(buf, 0xff)
			pos = p + 1
			continue
		}
		break // a marker (or the end of the file inside fill bytes)
	}
	br.real = len(buf)
	var zeros [padZeros]byte
	br.buf = append(buf, zeros[:]...)
	br.next = pos
	br.pos, br.acc, br.n = 0, 0, 0
}

// fill tops up br.acc (see refill).
func (br *bitReader) fill() { br.acc, br.n, br.pos = refill(br.buf, br.acc, br.n, br.pos) }

// overrun reports whether the decoder consumed bits beyond the segment's
// data (bits loaded minus bits left): the scan's data ended too early.
func (br *bitReader) overrun() bool {
	return br.pos*8-br.n > br.real*8
}

// blockError turns an error met while decoding a block into ErrTruncated
// when the data ended within the 32 bits the decoder was looking at: then
// the early end, not damage, is the likelier cause (decoding the zero
// padding can trip any structural check).
func (br *bitReader) blockError(err error) error {
	if br.pos*8-br.n+32 > br.real*8 {
		return ErrTruncated
	}
	return err
}

// bits returns the next k (1..16) bits.
func (br *bitReader) bits(k int) uint32 {
	if br.n < k {
		br.fill()
	}
	v := uint32(br.acc >> (64 - uint(k)))
	br.acc <<= uint(k)
	br.n -= k
	return v
}

// bit returns the next bit.
func (br *bitReader) bit() bool {
	if br.n < 1 {
		br.fill()
	}
	v := int64(br.acc) < 0
	br.acc <<= 1
	br.n--
	return v
}

// receiveExtend reads s (0..16) bits and extends them to a signed value.
func (br *bitReader) receiveExtend(s int) int32 {
	if s == 0 {
		return 0
	}
	return extend(int32(br.bits(s)), s)
}

// decodeSymbol reads one Huffman-coded symbol with table h; it errors on
// codes the table does not have.
func (br *bitReader) decodeSymbol(h *huffTable) (uint8, error) {
	if br.n < maxCodeLength {
		br.fill()
	}
	e := h.lut[br.acc>>(64-lutBits)]
	if l := int(e & 0xff); l != 0 {
		br.acc <<= uint(l)
		br.n -= l
		return uint8(e >> 8), nil
	}
	sym, l, err := decodeLong(h, br.acc)
	br.acc <<= l
	br.n -= int(l)
	return sym, err
}

// decodeLong decodes a code longer than lutBits bits at the top of acc
// (which must hold 16 bits) by the canonical-code search of T.81 figure
// F.16, returning the symbol and the code length.
func decodeLong(h *huffTable, acc uint64) (uint8, uint, error) {
	l := uint(lutBits + 1)
	code := int32(acc >> (64 - l))
	for code > h.maxCode[l] {
		l++
		if l > maxCodeLength {
			return 0, 0, FormatError("bad Huffman code")
		}
		code = int32(acc >> (64 - l))
	}
	return h.vals[uint8(h.valOff[l]+code)], l, nil
}

// skipEntropyData returns where the entropy-coded data starting at
// data[pos] end, restart markers included: at the next other marker (its
// first 0xff), or len(data).
func skipEntropyData(data []byte, pos int) int {
	for {
		i := bytes.IndexByte(data[pos:], 0xff)
		if i < 0 {
			return len(data)
		}
		pos += i
		p := pos + 1
		for p < len(data) && data[p] == 0xff {
			p++
		}
		if p == len(data) {
			return pos
		}
		if m := data[p]; m != 0 && (m < rst0Marker || m > rst7Marker) {
			return pos
		}
		pos = p + 1
	}
}
