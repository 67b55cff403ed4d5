package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // register the GIF decoder
	_ "image/png" // register the PNG decoder
	"math"

	_ "golang.org/x/image/bmp"  // register the BMP decoder
	_ "golang.org/x/image/tiff" // register the TIFF decoder
	_ "golang.org/x/image/webp" // register the WebP decoder

	"toolkit/internal/jpeg"
)

// Decoding: JPEG files go through the toolkit's own decoder (internal/jpeg), which gives
// libjpeg-turbo's pixels (what Pillow shows), reads the EXIF orientation, and can decode
// at 1/2, 1/4 or 1/8 of the size in the DCT domain and skip the blocks a crop does not
// need; PNG, GIF, BMP, TIFF and WebP go through image.Decode. Every picture is made
// upright according to its EXIF orientation (JPEG), as Pillow's
// ImageOps.exif_transpose does.

// imageExtensions are the file name extensions an image folder's files may have.
var imageExtensions = []string{".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

// header is what a file's header says.
type header struct {
	format      string // "jpeg", "png", ...
	w, h        int    // as stored
	orientation int    // EXIF orientation 1-8 (1 when there is none)
}

// size is the picture's size once upright.
func (h header) size() (int, int) { return orientedSize(h.orientation, h.w, h.h) }

var errEmptyFile = errors.New("empty file")

// isJPEG reports whether data starts with a JPEG's SOI marker.
func isJPEG(data []byte) bool { return len(data) >= 2 && data[0] == 0xff && data[1] == 0xd8 }

// readHeader reads the format, size and orientation of an encoded image.
func readHeader(data []byte) (header, error) {
	if len(data) == 0 {
		return header{}, errEmptyFile
	}
	var h header
	if isJPEG(data) {
		jh, err := jpeg.DecodeHeader(data)
		if err != nil {
			return header{}, err
		}
		h = header{format: "jpeg", w: jh.Width, h: jh.Height, orientation: jh.Orientation}
	} else {
		cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			if errors.Is(err, image.ErrFormat) {
				return header{}, fmt.Errorf("not an image in a known format (JPEG, PNG, GIF, BMP, TIFF, WebP)")
			}
			return header{}, err
		}
		h = header{format: format, w: cfg.Width, h: cfg.Height, orientation: 1}
	}
	if h.w <= 0 || h.h <= 0 {
		return header{}, fmt.Errorf("empty image (%dx%d)", h.w, h.h)
	}
	if int64(h.w)*int64(h.h) > maxPixels {
		return header{}, fmt.Errorf("image too large (%dx%d, more than %d pixels)", h.w, h.h, maxPixels)
	}
	if h.orientation < 1 || h.orientation > 8 {
		h.orientation = 1
	}
	return h, nil
}

// decoder is one worker's decoding state.
type decoder struct {
	jd     jpeg.Decoder
	ji     jpeg.Image
	stored picture // as stored in the file
	upr    picture // made upright
}

// decode decodes data (whose header is h) into an upright picture. scale (1, 2, 4 or 8)
// asks a JPEG for a DCT-domain reduction: the picture is then ceil(w/scale) x
// ceil(h/scale); region, in the upright picture's coordinates at that scale, is the part
// that must be right (empty: all of it). Other formats decode whole at scale 1. gray
// converts colour to luma. It returns the picture (owned by d) and the scale used.
func (d *decoder) decode(data []byte, h header, scale int, region image.Rectangle, gray bool) (*picture, int, error) {
	if h.format == "jpeg" {
		sw, sh := ceilDiv(h.w, scale), ceilDiv(h.h, scale)
		opts := jpeg.Options{Scale: scale}
		if !region.Empty() {
			opts.Region = storedRect(h.orientation, sw, sh, region)
		}
		if err := d.jd.Decode(data, opts, &d.ji); err != nil {
			return nil, 0, err
		}
		d.stored = picture{c: d.ji.Channels, w: d.ji.Width, h: d.ji.Height, pix: d.ji.Pix}
		if gray {
			d.stored.toGray()
		}
	} else {
		img, _, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, 0, err
		}
		if b := img.Bounds(); b.Dx() != h.w || b.Dy() != h.h {
			return nil, 0, fmt.Errorf("decoded %dx%d pixels, the header says %dx%d", b.Dx(), b.Dy(), h.w, h.h)
		}
		d.stored.fromImage(img, gray)
		scale = 1
	}
	if orient(&d.upr, &d.stored, h.orientation) {
		return &d.upr, scale, nil
	}
	return &d.stored, scale, nil
}

// decodeWhole decodes data fully at scale 1.
func (d *decoder) decodeWhole(data []byte, gray bool) (*picture, error) {
	h, err := readHeader(data)
	if err != nil {
		return nil, err
	}
	p, _, err := d.decode(data, h, 1, image.Rectangle{}, gray)
	return p, err
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// storedRect maps a rectangle of the upright picture to the stored picture (sw x sh as
// stored) for orientation o: the inverse of orient's mapping.
func storedRect(o, sw, sh int, r image.Rectangle) image.Rectangle {
	// Map the two corners (as pixel ranges) through the stored <- upright mapping.
	x0, y0, x1, y1 := r.Min.X, r.Min.Y, r.Max.X, r.Max.Y
	var a, b image.Point // stored coordinates of the upright corners (x0, y0) and (x1-1, y1-1)
	m := func(x, y int) image.Point {
		switch o {
		case 2:
			return image.Pt(sw-1-x, y)
		case 3:
			return image.Pt(sw-1-x, sh-1-y)
		case 4:
			return image.Pt(x, sh-1-y)
		case 5:
			return image.Pt(y, x)
		case 6:
			return image.Pt(y, sh-1-x)
		case 7:
			return image.Pt(sw-1-y, sh-1-x)
		case 8:
			return image.Pt(sw-1-y, x)
		}
		return image.Pt(x, y)
	}
	a, b = m(x0, y0), m(x1-1, y1-1)
	return image.Rect(min(a.X, b.X), min(a.Y, b.Y), max(a.X, b.X)+1, max(a.Y, b.Y)+1).Intersect(image.Rect(0, 0, sw, sh))
}

// draftScale is the largest DCT reduction (8, 4, 2 or 1) that keeps region src of a
// picture at least outW x outH pixels, as Pillow's draft mode chooses it.
func draftScale(src box, outW, outH int) int {
	for _, s := range []int{8, 4, 2} {
		if src.dx()/float64(s) >= float64(outW) && src.dy()/float64(s) >= float64(outH) {
			return s
		}
	}
	return 1
}

// regionFor is the rectangle of a picture at scale s that resampling box b (full-size
// coordinates) reads: the resampler reads nothing outside the box's integer hull.
func regionFor(b box, s int) image.Rectangle {
	f := float64(s)
	return image.Rect(int(math.Floor(b.X0/f)), int(math.Floor(b.Y0/f)), int(math.Ceil(b.X1/f)), int(math.Ceil(b.Y1/f)))
}
