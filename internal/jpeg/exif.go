package jpeg

import "encoding/binary"

// exifOrientation returns the orientation (1..8) stored in IFD0 tag 0x0112
// of an APP1 "Exif\0\0" payload, or 1 when the payload is not Exif, is
// damaged, or has no valid orientation. Anything malformed is tolerated:
// the tag only decides how the loader rotates the picture.
func exifOrientation(p []byte) int {
	if len(p) < 6 || string(p[:6]) != "Exif\x00\x00" {
		return 1
	}
	t := p[6:] // the TIFF structure; its offsets are relative to here
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int64(bo.Uint32(t[4:8]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 1
	}
	n := int64(bo.Uint16(t[ifd:]))
	for i := int64(0); i < n; i++ {
		e := ifd + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 1
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		typ, count := bo.Uint16(t[e+2:]), bo.Uint32(t[e+4:])
		var v uint32
		switch {
		case typ == 3 && count >= 1: // SHORT, stored in the value field
			v = uint32(bo.Uint16(t[e+8:]))
		case typ == 4 && count >= 1: // LONG, which some writers use
			v = bo.Uint32(t[e+8:])
		default:
			return 1
		}
		if v < 1 || v > 8 {
			return 1
		}
		return int(v)
	}
	return 1
}
