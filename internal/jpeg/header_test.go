package jpeg

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// ifdEntry is one 12-byte TIFF IFD entry.
type ifdEntry struct {
	tag, typ uint16
	count    uint32
	value    uint32 // a SHORT is stored in the first two bytes of the field
}

// exifPayload builds an APP1 "Exif\0\0" payload holding a TIFF header and
// IFD0 with the entries.
func exifPayload(bo binary.AppendByteOrder, entries ...ifdEntry) []byte {
	var t []byte
	if bo == binary.LittleEndian {
		t = []byte("II*\x00")
	} else {
		t = []byte("MM\x00*")
	}
	t = bo.AppendUint32(t, 8)
	t = bo.AppendUint16(t, uint16(len(entries)))
	for _, e := range entries {
		t = bo.AppendUint16(t, e.tag)
		t = bo.AppendUint16(t, e.typ)
		t = bo.AppendUint32(t, e.count)
		if e.typ == 3 {
			t = bo.AppendUint16(t, uint16(e.value))
			t = append(t, 0, 0)
		} else {
			t = bo.AppendUint32(t, e.value)
		}
	}
	t = append(t, 0, 0, 0, 0) // no next IFD
	return append([]byte("Exif\x00\x00"), t...)
}

// withAPP1 inserts APP1 segments with the payloads right after SOI.
func withAPP1(data []byte, payloads ...[]byte) []byte {
	out := []byte{0xff, soiMarker}
	for _, p := range payloads {
		out = append(out, 0xff, app1Marker, byte((len(p)+2)>>8), byte(len(p)+2))
		out = append(out, p...)
	}
	return append(out, data[2:]...)
}

func TestOrientation(t *testing.T) {
	base := readTestFile(t, "pil_420_q90.jpg")
	orient := func(bo binary.AppendByteOrder, v uint32) []byte {
		return exifPayload(bo, ifdEntry{0x010f, 2, 4, 0}, ifdEntry{0x0112, 3, 1, v}, ifdEntry{0x0131, 2, 4, 0})
	}
	good := orient(binary.BigEndian, 6)
	cases := []struct {
		name     string
		payloads [][]byte
		want     int
	}{
		{"none", nil, 1},
		{"little-endian", [][]byte{orient(binary.LittleEndian, 8)}, 8},
		{"big-endian", [][]byte{good}, 6},
		{"every value", [][]byte{orient(binary.LittleEndian, 3)}, 3},
		{"LONG type", [][]byte{exifPayload(binary.BigEndian, ifdEntry{0x0112, 4, 1, 5})}, 5},
		{"out of range", [][]byte{orient(binary.LittleEndian, 9)}, 1},
		{"zero", [][]byte{orient(binary.LittleEndian, 0)}, 1},
		{"ASCII type", [][]byte{exifPayload(binary.BigEndian, ifdEntry{0x0112, 2, 1, 6})}, 1},
		{"no tag", [][]byte{exifPayload(binary.BigEndian, ifdEntry{0x010f, 2, 4, 0})}, 1},
		{"XMP first", [][]byte{[]byte("http://ns.adobe.com/xap/1.0/\x00<x/>"), good}, 6},
		{"first Exif wins", [][]byte{orient(binary.BigEndian, 2), good}, 2},
		{"truncated IFD", [][]byte{good[:20]}, 1},
		{"truncated header", [][]byte{good[:10]}, 1},
		{"bad byte order", [][]byte{append([]byte("Exif\x00\x00XX*\x00"), good[10:]...)}, 1},
		{"IFD offset past end", [][]byte{append(bytes.Clone(good[:10]), 0x7f, 0xff, 0xff, 0xff)}, 1},
		{"huge entry count", [][]byte{append(bytes.Clone(good[:14]), 0xff, 0xff)}, 1},
		{"just the magic", [][]byte{[]byte("Exif\x00\x00")}, 1},
	}
	for _, c := range cases {
		h, err := DecodeHeader(withAPP1(base, c.payloads...))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if h.Orientation != c.want {
			t.Errorf("%s: orientation %d, want %d", c.name, h.Orientation, c.want)
		}
	}
	// Decode must still read such files.
	var d Decoder
	var m Image
	if err := d.Decode(withAPP1(base, good), Options{}, &m); err != nil {
		t.Error(err)
	}
}

func TestDecodeHeader(t *testing.T) {
	cases := []struct {
		file string
		want Header
	}{
		{"pil_420_q90.jpg", Header{97, 73, 3, false, 1, "4:2:0"}},
		{"pil_422_q90.jpg", Header{97, 73, 3, false, 1, "4:2:2"}},
		{"pil_444_q95_prog.jpg", Header{61, 47, 3, true, 1, "4:4:4"}},
		{"cj_440.jpg", Header{97, 73, 3, false, 1, "4:4:0"}},
		{"cj_411.jpg", Header{97, 73, 3, false, 1, "4:1:1"}},
		{"cj_410.jpg", Header{61, 47, 3, false, 1, "4:1:0"}},
		{"cj_mixed.jpg", Header{97, 73, 3, false, 1, "2x2,1x1,2x1"}},
		{"pil_grey_q90.jpg", Header{97, 73, 1, false, 1, "4:0:0"}},
		{"im_cmyk_420.jpg", Header{43, 29, 4, false, 1, "4:2:0"}},
	}
	for _, c := range cases {
		h, err := DecodeHeader(readTestFile(t, c.file))
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if h != c.want {
			t.Errorf("%s: %+v, want %+v", c.file, h, c.want)
		}
	}
	// Files Decode cannot decode fail here already.
	if _, err := DecodeHeader(readTestFile(t, "cj_arith.jpg")); err == nil {
		t.Error("arithmetic coding: no error")
	}
	// The header is readable from a file cut inside its scan data.
	data := readTestFile(t, "pil_420_q90.jpg")
	if _, err := DecodeHeader(data[:len(data)/2]); err != nil {
		t.Errorf("cut file: %v", err)
	}
	if _, err := DecodeHeader(data[:100]); err == nil {
		t.Error("file cut inside its tables: no error")
	}
}
