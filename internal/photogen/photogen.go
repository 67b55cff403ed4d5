// Package photogen makes the photo set of examples/photos: JPEG "photographs" of three
// kinds of pattern (checks in reds, spots in greens, stripes in blues, on dull backgrounds
// of any colour), under uneven light, with
// sensor noise, at the sizes and aspect ratios of phone pictures (280-640 pixels wide,
// width/height 0.56-1.33), some stored rotated with an EXIF orientation tag as cameras
// do, one in grey, one PNG, and one truncated file that does not decode. Everything is a
// pure function of the seed.
package photogen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Classes are the pattern kinds, one folder each.
var Classes = []string{"checks", "spots", "stripes"}

// Split is how many pictures of each class a split gets.
type Split struct {
	Name     string
	PerClass int
}

// DefaultSplits are the example's: 24 training, 8 validation and 12 test pictures per class.
var DefaultSplits = []Split{{"train", 24}, {"val", 8}, {"test", 12}}

// Write makes the photo set under dir (dir/train/stripes/000.jpg, ...). The first
// training folder also gets a truncated JPEG (bad.jpg) for on_bad_image: skip to leave
// out.
func Write(dir string, splits []Split, seed uint64) error {
	for si, sp := range splits {
		for ci, class := range Classes {
			folder := filepath.Join(dir, sp.Name, class)
			if err := os.MkdirAll(folder, 0o755); err != nil {
				return err
			}
			for k := range sp.PerClass {
				r := rand.New(rand.NewPCG(seed, uint64(si)<<32|uint64(ci)<<16|uint64(k)))
				data, ext, err := picture(r, ci, k)
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(folder, fmt.Sprintf("%03d%s", k, ext)), data, 0o644); err != nil {
					return err
				}
				if si == 0 && ci == 0 && k == 0 {
					bad := filepath.Join(folder, "bad.jpg")
					if err := os.WriteFile(bad, data[:len(data)/3], 0o644); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// picture draws one photograph of class ci and encodes it.
func picture(r *rand.Rand, ci, k int) ([]byte, string, error) {
	w := 280 + r.IntN(361)
	aspect := 0.56 + r.Float64()*(1.33-0.56)
	h := int(math.Round(float64(w) / aspect))
	// Each kind has its own range of hues for the pattern (reds, greens, blues), on a
	// dull background of any colour: like real classes, they differ in colour as well as
	// in shape.
	fg := hsv(float64(ci)/3+r.Float64()*0.15, 0.5+0.5*r.Float64(), 150+100*r.Float64())
	bg := hsv(r.Float64(), 0.3*r.Float64(), 40+120*r.Float64())
	angle := r.Float64() * math.Pi
	period := 10 + r.Float64()*30
	radius := 5 + r.Float64()*20
	lightX, lightY := r.Float64()*float64(w), r.Float64()*float64(h)
	ca, sa := math.Cos(angle), math.Sin(angle)
	var spots [][3]float64
	if Classes[ci] == "spots" {
		n := int(float64(w*h) / (radius * radius * 12))
		for range n {
			spots = append(spots, [3]float64{r.Float64() * float64(w), r.Float64() * float64(h), radius * (0.6 + 0.8*r.Float64())})
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	diag := math.Hypot(float64(w), float64(h))
	for y := range h {
		for x := range w {
			u := float64(x)*ca + float64(y)*sa
			v := -float64(x)*sa + float64(y)*ca
			var on bool
			switch Classes[ci] {
			case "stripes":
				on = math.Mod(u/period+1000, 1) < 0.5
			case "checks":
				on = (int(math.Floor(u/period))+int(math.Floor(v/period)))&1 == 0
			case "spots":
				for _, s := range spots {
					if dx, dy := float64(x)-s[0], float64(y)-s[1]; dx*dx+dy*dy < s[2]*s[2] {
						on = true
						break
					}
				}
			}
			c := bg
			if on {
				c = fg
			}
			light := 1.1 - 0.45*math.Hypot(float64(x)-lightX, float64(y)-lightY)/diag
			var px [3]uint8
			for i := range 3 {
				px[i] = uint8(min(max(c[i]*light+r.NormFloat64()*6, 0), 255))
			}
			img.Pix[img.PixOffset(x, y)+0] = px[0]
			img.Pix[img.PixOffset(x, y)+1] = px[1]
			img.Pix[img.PixOffset(x, y)+2] = px[2]
			img.Pix[img.PixOffset(x, y)+3] = 255
		}
	}
	var buf bytes.Buffer
	switch {
	case k == 5: // a PNG
		if err := png.Encode(&buf, img); err != nil {
			return nil, "", err
		}
		return buf.Bytes(), ".png", nil
	case k == 7: // a grey JPEG
		g := image.NewGray(img.Bounds())
		for i := range g.Pix {
			g.Pix[i] = color.GrayModel.Convert(color.RGBA{img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], 255}).(color.Gray).Y
		}
		if err := jpeg.Encode(&buf, g, &jpeg.Options{Quality: 90}); err != nil {
			return nil, "", err
		}
		return buf.Bytes(), ".jpg", nil
	case k%4 == 2: // stored rotated a quarter turn, as a camera held upright does (EXIF 6)
		if err := jpeg.Encode(&buf, rotateClockwise(img, false), &jpeg.Options{Quality: 88}); err != nil {
			return nil, "", err
		}
		return withOrientation(buf.Bytes(), 6), ".jpg", nil
	case k%4 == 3: // the other way (EXIF 8)
		if err := jpeg.Encode(&buf, rotateClockwise(img, true), &jpeg.Options{Quality: 88}); err != nil {
			return nil, "", err
		}
		return withOrientation(buf.Bytes(), 8), ".jpg", nil
	}
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85 + r.IntN(11)}); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), ".jpg", nil
}

// hsv is the colour of hue h (in turns), saturation s (0-1) and value v (0-255).
func hsv(h, s, v float64) [3]float64 {
	h = (h - math.Floor(h)) * 6
	i := math.Floor(h)
	f := h - i
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch int(i) {
	case 0:
		return [3]float64{v, t, p}
	case 1:
		return [3]float64{q, v, p}
	case 2:
		return [3]float64{p, v, t}
	case 3:
		return [3]float64{p, q, v}
	case 4:
		return [3]float64{t, p, v}
	}
	return [3]float64{v, p, q}
}

// rotateClockwise stores an upright picture as a camera does for orientation 6 (turned
// anticlockwise, to be turned clockwise on display), or 8 with back.
func rotateClockwise(src *image.RGBA, back bool) *image.RGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	out := image.NewRGBA(image.Rect(0, 0, h, w))
	for y := range h {
		for x := range w {
			// Orientation 6: displayed(x, y) = stored(y, H-1-x), stored is h wide.
			sx, sy := y, w-1-x
			if back { // 8: displayed(x, y) = stored(W-1-y, x)
				sx, sy = h-1-y, x
			}
			copy(out.Pix[out.PixOffset(sx, sy):out.PixOffset(sx, sy)+4], src.Pix[src.PixOffset(x, y):src.PixOffset(x, y)+4])
		}
	}
	return out
}

// withOrientation inserts an APP1 Exif segment holding the orientation tag after a JPEG's
// SOI marker.
func withOrientation(jpg []byte, o uint16) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	binary.Write(&tiff, binary.BigEndian, uint32(8)) // IFD0 offset
	binary.Write(&tiff, binary.BigEndian, uint16(1)) // one entry
	binary.Write(&tiff, binary.BigEndian, []uint16{0x0112, 3})
	binary.Write(&tiff, binary.BigEndian, uint32(1))
	binary.Write(&tiff, binary.BigEndian, []uint16{o, 0})
	binary.Write(&tiff, binary.BigEndian, uint32(0)) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xff, 0xe1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}
