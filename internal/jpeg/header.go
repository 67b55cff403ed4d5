// Copyright 2009 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// Forked from Go's image/jpeg/reader.go: the file is parsed from memory,
// markers are handled as libjpeg-turbo's jdmarker.c handles them (which ones
// are skipped, which are errors, JFIF/Adobe detection), any sampling factors
// with integral ratios are accepted, and the EXIF orientation is read.

package jpeg

import (
	"fmt"
	"strconv"
)

const (
	sof0Marker = 0xc0 // Start Of Frame (Baseline Sequential).
	sof1Marker = 0xc1 // Start Of Frame (Extended Sequential).
	sof2Marker = 0xc2 // Start Of Frame (Progressive).
	dhtMarker  = 0xc4 // Define Huffman Table.
	dacMarker  = 0xcc // Define Arithmetic Conditioning (ignored, as libjpeg would for Huffman files).
	rst0Marker = 0xd0 // ReSTart (0).
	rst7Marker = 0xd7 // ReSTart (7).
	soiMarker  = 0xd8 // Start Of Image.
	eoiMarker  = 0xd9 // End Of Image.
	sosMarker  = 0xda // Start Of Scan.
	dqtMarker  = 0xdb // Define Quantization Table.
	dnlMarker  = 0xdc // Define Number of Lines (skipped, as libjpeg does).
	driMarker  = 0xdd // Define Restart Interval.
	comMarker  = 0xfe // COMment.
	temMarker  = 0x01 // TEMporary (parameterless).
	app0Marker = 0xe0
	app1Marker = 0xe1
	app14      = 0xee
	app15      = 0xef

	maxComponents = 4
)

// unzig maps the zig-zag index of a coefficient to its natural (row-major)
// index in the 8x8 block.
var unzig = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
}

// Header is what the file's markers say, without decoding the scan data.
type Header struct {
	Width, Height int    // as stored (before EXIF orientation)
	Components    int    // 1 (grey), 3 (YCbCr or RGB), 4 (CMYK or YCCK)
	Progressive   bool   // SOF2
	Orientation   int    // EXIF orientation 1..8 from an APP1 Exif segment; 1 when absent or unreadable
	Subsampling   string // e.g. "4:2:0" ("4:0:0" for grey), for messages and benchmarks
}

// DecodeHeader reads the markers up to the first scan. It validates the
// frame header as Decode does, but not the tables or the scan data.
func DecodeHeader(data []byte) (Header, error) {
	var p parser
	if err := p.parse(data, nil); err != nil {
		return Header{}, err
	}
	return p.header(), nil
}

// parser holds what the markers before and between the scans define.
type parser struct {
	f           frame
	quant       [4]quantTable
	ri          int // restart interval in MCUs, 0 for none
	jfif, adobe bool
	adobeXform  uint8
	orientation int
	sawExif     bool
}

type quantTable struct {
	defined bool
	q       [64]int32 // zig-zag order, as stored in the DQT segment
}

// frame is the SOF segment.
type frame struct {
	sof          byte // the SOF marker: sof0, sof1 or sof2
	width        int
	height       int
	nComp        int
	comp         [maxComponents]component
	maxH, maxV   int
	mcusX, mcusY int // MCUs of an interleaved scan
}

func (f *frame) progressive() bool { return f.sof == sof2Marker }

// parse walks the segments of data. With a nil dec it stops at the first
// SOS (header mode, which skips the table segments); otherwise it hands the
// Huffman tables and each scan to dec, until EOI.
func (p *parser) parse(data []byte, dec *Decoder) error {
	*p = parser{orientation: 1}
	if len(data) < 2 || data[0] != 0xff || data[1] != soiMarker {
		return FormatError("missing SOI marker (not a JPEG file)")
	}
	pos := 2
	sawSOS := false
	for {
		marker, next, ok := nextMarker(data, pos)
		if !ok {
			if !sawSOS {
				return FormatError("file ends before the first scan (truncated header)")
			}
			return errMissingEOI
		}
		pos = next
		switch {
		case marker == eoiMarker:
			if !sawSOS {
				return FormatError("EOI marker before any scan")
			}
			return nil
		case marker == soiMarker:
			return FormatError("duplicate SOI marker")
		case marker == temMarker || rst0Marker <= marker && marker <= rst7Marker:
			// Parameterless: libjpeg traces and skips them outside scans.
			continue
		}
		if pos+2 > len(data) {
			return FormatError(fmt.Sprintf("file ends in the length of a %s segment", markerName(marker)))
		}
		n := int(data[pos])<<8 | int(data[pos+1])
		if n < 2 {
			return FormatError(fmt.Sprintf("%s segment length %d is less than 2", markerName(marker), n))
		}
		if pos+n > len(data) {
			return FormatError(fmt.Sprintf("truncated %s segment", markerName(marker)))
		}
		seg := data[pos+2 : pos+n]
		pos += n

		var err error
		switch {
		case marker == sof0Marker || marker == sof1Marker || marker == sof2Marker:
			err = p.processSOF(marker, seg)
		case marker >= 0xc3 && marker <= 0xcf && marker != dhtMarker && marker != 0xc8 && marker != dacMarker:
			err = unsupportedSOF(marker)
		case marker == sosMarker:
			if p.f.nComp == 0 {
				return FormatError("SOS marker before the SOF marker")
			}
			if dec == nil {
				return nil
			}
			sawSOS = true
			pos, err = dec.decodeScan(seg, data, pos)
		case marker == dhtMarker:
			if dec != nil {
				err = dec.processDHT(seg)
			}
		case marker == dqtMarker:
			if dec != nil {
				err = p.processDQT(seg)
			}
		case marker == driMarker:
			if dec != nil {
				err = p.processDRI(seg)
			}
		case marker == app0Marker:
			p.jfif = p.jfif || len(seg) >= 14 && string(seg[:5]) == "JFIF\x00"
		case marker == app1Marker:
			if !p.sawExif && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
				p.sawExif = true
				p.orientation = exifOrientation(seg)
			}
		case marker == app14:
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				p.adobe, p.adobeXform = true, seg[11]
			}
		case marker >= app0Marker && marker <= app15 || marker == comMarker || marker == dacMarker || marker == dnlMarker:
			// Skipped.
		default:
			err = FormatError(fmt.Sprintf("unknown marker %#02x", marker))
		}
		if err != nil {
			return err
		}
	}
}

// nextMarker finds the next marker at or after data[pos], skipping stray
// bytes and fill bytes as libjpeg's next_marker does. It returns the marker
// code and the position after it, or ok false at the end of the data.
func nextMarker(data []byte, pos int) (marker byte, next int, ok bool) {
	for {
		for pos < len(data) && data[pos] != 0xff {
			pos++
		}
		for pos < len(data) && data[pos] == 0xff {
			pos++
		}
		if pos >= len(data) {
			return 0, pos, false
		}
		if m := data[pos]; m != 0 {
			return m, pos + 1, true
		}
		pos++ // 0xff00 outside a scan: stuffed data, skipped
	}
}

func markerName(m byte) string {
	switch m {
	case sof0Marker, sof1Marker, sof2Marker:
		return "SOF" + strconv.Itoa(int(m-sof0Marker))
	case dhtMarker:
		return "DHT"
	case dqtMarker:
		return "DQT"
	case driMarker:
		return "DRI"
	case sosMarker:
		return "SOS"
	case comMarker:
		return "COM"
	case eoiMarker:
		return "EOI"
	case soiMarker:
		return "SOI"
	}
	if m >= rst0Marker && m <= rst7Marker {
		return "RST" + strconv.Itoa(int(m-rst0Marker))
	}
	if m >= app0Marker && m <= app15 {
		return "APP" + strconv.Itoa(int(m-app0Marker))
	}
	return fmt.Sprintf("%#02x marker", m)
}

func unsupportedSOF(m byte) error {
	switch m {
	case 0xc3:
		return UnsupportedError("lossless JPEG (SOF3)")
	case 0xc5, 0xc6, 0xc7:
		return UnsupportedError(fmt.Sprintf("hierarchical JPEG (SOF%d)", m-sof0Marker))
	}
	return UnsupportedError(fmt.Sprintf("arithmetic-coded JPEG (SOF%d)", m-sof0Marker))
}

// processSOF reads the frame header (B.2.2).
func (p *parser) processSOF(marker byte, seg []byte) error {
	f := &p.f
	if f.nComp != 0 {
		return FormatError("more than one SOF marker")
	}
	if len(seg) < 6 {
		return FormatError("SOF segment too short")
	}
	if seg[0] != 8 {
		return UnsupportedError(fmt.Sprintf("sample precision of %d bits", seg[0]))
	}
	f.sof = marker
	f.height = int(seg[1])<<8 | int(seg[2])
	f.width = int(seg[3])<<8 | int(seg[4])
	nc := int(seg[5])
	if len(seg) != 6+3*nc {
		return FormatError(fmt.Sprintf("SOF segment length %d does not fit its %d components", len(seg)+2, nc))
	}
	if nc != 1 && nc != 3 && nc != 4 {
		return UnsupportedError(fmt.Sprintf("number of components (%d)", nc))
	}
	if f.height == 0 {
		return UnsupportedError("image height given by a DNL marker (height 0 in SOF)")
	}
	if f.width == 0 {
		return FormatError("image width is 0")
	}
	f.maxH, f.maxV = 1, 1
	for i := 0; i < nc; i++ {
		c := &f.comp[i]
		*c = component{}
		c.id = seg[6+3*i]
		for j := 0; j < i; j++ {
			if f.comp[j].id == c.id {
				return FormatError(fmt.Sprintf("component identifier %d repeated in SOF", c.id))
			}
		}
		hv := seg[7+3*i]
		c.h, c.v = int(hv>>4), int(hv&0x0f)
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return FormatError(fmt.Sprintf("bad sampling factors %dx%d for component %d", c.h, c.v, c.id))
		}
		if nc == 1 {
			// A single component is non-interleaved: its MCU is one block
			// whatever its factors say (A.2), and they cancel out of every
			// size libjpeg derives from them.
			c.h, c.v = 1, 1
		}
		c.tq = seg[8+3*i]
		if c.tq > 3 {
			return FormatError(fmt.Sprintf("bad quantization table index %d for component %d", c.tq, c.id))
		}
		f.maxH, f.maxV = max(f.maxH, c.h), max(f.maxV, c.v)
	}
	f.nComp = nc
	f.mcusX = ceilDiv(f.width, 8*f.maxH)
	f.mcusY = ceilDiv(f.height, 8*f.maxV)
	for i := 0; i < nc; i++ {
		c := &f.comp[i]
		c.bw = ceilDiv(f.width*c.h, 8*f.maxH)
		c.bh = ceilDiv(f.height*c.v, 8*f.maxV)
	}
	return nil
}

// processDQT reads a Define Quantization Table segment (B.2.4.1).
func (p *parser) processDQT(seg []byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, seg[0]&0x0f
		if tq > 3 {
			return FormatError(fmt.Sprintf("bad DQT table index %d", tq))
		}
		t := &p.quant[tq]
		switch pq {
		case 0:
			if len(seg) < 1+64 {
				return FormatError("DQT segment too short")
			}
			for i := range t.q {
				t.q[i] = int32(seg[1+i])
			}
			seg = seg[1+64:]
		case 1:
			if len(seg) < 1+128 {
				return FormatError("DQT segment too short")
			}
			for i := range t.q {
				// libjpeg keeps multipliers in a 16-bit signed type.
				t.q[i] = int32(int16(uint16(seg[1+2*i])<<8 | uint16(seg[2+2*i])))
			}
			seg = seg[1+128:]
		default:
			return FormatError(fmt.Sprintf("bad DQT precision %d", pq))
		}
		t.defined = true
	}
	return nil
}

// processDRI reads a Define Restart Interval segment (B.2.4.4).
func (p *parser) processDRI(seg []byte) error {
	if len(seg) != 2 {
		return FormatError("DRI segment length is not 4")
	}
	p.ri = int(seg[0])<<8 | int(seg[1])
	return nil
}

// header summarises the parsed markers.
func (p *parser) header() Header {
	f := &p.f
	return Header{
		Width:       f.width,
		Height:      f.height,
		Components:  f.nComp,
		Progressive: f.progressive(),
		Orientation: p.orientation,
		Subsampling: f.subsampling(),
	}
}

// subsampling names the chroma subsampling, J:a:b style for the usual
// ratios and as the components' factors otherwise.
func (f *frame) subsampling() string {
	if f.nComp == 1 {
		return "4:0:0"
	}
	c0, c1, c2 := f.comp[0], f.comp[1], f.comp[2]
	if c1.h == c2.h && c1.v == c2.v && c0.h%c1.h == 0 && c0.v%c1.v == 0 &&
		(f.nComp == 3 || f.comp[3].h == c0.h && f.comp[3].v == c0.v) {
		switch [2]int{c0.h / c1.h, c0.v / c1.v} {
		case [2]int{1, 1}:
			return "4:4:4"
		case [2]int{2, 1}:
			return "4:2:2"
		case [2]int{2, 2}:
			return "4:2:0"
		case [2]int{1, 2}:
			return "4:4:0"
		case [2]int{4, 1}:
			return "4:1:1"
		case [2]int{4, 2}:
			return "4:1:0"
		}
	}
	s := ""
	for i := 0; i < f.nComp; i++ {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%dx%d", f.comp[i].h, f.comp[i].v)
	}
	return s
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
