package dataset

// EXIF orientation (TIFF tag 0x0112) says how a camera stored a picture: 1 is upright, the
// others are mirrored and/or rotated. orient applies what Pillow's ImageOps.exif_transpose
// applies to make the picture upright:
//
//	2 FLIP_LEFT_RIGHT   3 ROTATE_180   4 FLIP_TOP_BOTTOM   5 TRANSPOSE
//	6 ROTATE_270        7 TRANSVERSE   8 ROTATE_90         (Pillow's Image.Transpose names)

// orientedSize is the size of a w x h picture after orientation o.
func orientedSize(o, w, h int) (int, int) {
	if o >= 5 && o <= 8 {
		return h, w
	}
	return w, h
}

// orient writes src made upright for orientation o into dst and reports whether it did
// anything (orientation 1, or an unknown value, leaves src as it is and returns false).
func orient(dst, src *picture, o int) bool {
	if o < 2 || o > 8 {
		return false
	}
	W, H := src.w, src.h
	ow, oh := orientedSize(o, W, H)
	dst.reset(src.c, ow, oh)
	for c := range src.c {
		in, out := src.plane(c), dst.plane(c)
		for y := range oh {
			row := out[y*ow : (y+1)*ow]
			switch o {
			case 2: // mirrored
				s := in[y*W : (y+1)*W]
				for x := range row {
					row[x] = s[W-1-x]
				}
			case 3: // upside down
				s := in[(H-1-y)*W : (H-y)*W]
				for x := range row {
					row[x] = s[W-1-x]
				}
			case 4: // upside down, mirrored
				copy(row, in[(H-1-y)*W:(H-y)*W])
			case 5: // transposed: out(x, y) = in(y, x)
				for x := range row {
					row[x] = in[x*W+y]
				}
			case 6: // stored rotated a quarter turn anticlockwise: out(x, y) = in(y, H-1-x)
				for x := range row {
					row[x] = in[(H-1-x)*W+y]
				}
			case 7: // transverse: out(x, y) = in(W-1-y, H-1-x)
				for x := range row {
					row[x] = in[(H-1-x)*W+W-1-y]
				}
			case 8: // stored rotated a quarter turn clockwise: out(x, y) = in(W-1-y, x)
				for x := range row {
					row[x] = in[x*W+W-1-y]
				}
			}
		}
	}
	return true
}
