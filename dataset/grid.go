package dataset

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Denormalise turns one preprocessed image (Channels x Height x Width floats, as Apply and
// the Loader produce them) back into the 8-bit picture the model sees: the mode's
// normalisation inverted (caffe's BGR put back in RGB order), rounded and clamped. Grey
// inputs give a grey image.
func (p Preprocess) Denormalise(x []float32) (image.Image, error) {
	t, err := p.compile(Augment{})
	if err != nil {
		return nil, err
	}
	if len(x) != p.Size() {
		return nil, fmt.Errorf("dataset: Denormalise: %d values for %dx%dx%d", len(x), p.Channels, p.Height, p.Width)
	}
	hw := p.Height * p.Width
	val := func(c, i int) uint8 {
		v := (float64(x[c*hw+i]) - float64(t.bias[c])) / float64(t.scale[c])
		return uint8(min(max(math.Round(v), 0), 255))
	}
	r := image.Rect(0, 0, p.Width, p.Height)
	if p.Channels == 1 {
		m := image.NewGray(r)
		for i := range hw {
			m.Pix[i] = val(0, i)
		}
		return m, nil
	}
	m := image.NewRGBA(r)
	for i := range hw {
		// Output channel c holds RGB plane t.src[c] (caffe: BGR).
		for c := range 3 {
			m.Pix[4*i+t.src[c]] = val(c, i)
		}
		m.Pix[4*i+3] = 0xff
	}
	return m, nil
}

// GridTile is one image of a grid and the caption under it.
type GridTile struct {
	Image   image.Image
	Caption string
}

// DrawGrid lays tiles out in rows of cols, each scaled up by an integer factor to at least
// minSize pixels on its shorter side (nearest neighbour, so that the pixels stay visible),
// with its caption in a strip below, on a dark background: fastai's show_batch.
func DrawGrid(tiles []GridTile, cols, minSize int) *image.RGBA {
	if len(tiles) == 0 {
		return image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	cols = max(1, min(cols, len(tiles)))
	rows := (len(tiles) + cols - 1) / cols
	tw, th := 0, 0
	for _, t := range tiles {
		b := t.Image.Bounds()
		tw, th = max(tw, b.Dx()), max(th, b.Dy())
	}
	k := max(1, (minSize+min(tw, th)-1)/max(min(tw, th), 1))
	const pad, strip = 4, 16
	cw, ch := tw*k+2*pad, th*k+strip+2*pad
	out := image.NewRGBA(image.Rect(0, 0, cols*cw, rows*ch))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.RGBA{32, 32, 32, 255}), image.Point{}, draw.Src)
	face := basicfont.Face7x13
	for i, t := range tiles {
		x0, y0 := (i%cols)*cw+pad, (i/cols)*ch+pad
		b := t.Image.Bounds()
		for y := range b.Dy() * k {
			for x := range b.Dx() * k {
				out.Set(x0+x, y0+y, t.Image.At(b.Min.X+x/k, b.Min.Y+y/k))
			}
		}
		caption := t.Caption
		maxChars := (cw - pad) / 7
		if len(caption) > maxChars && maxChars > 1 {
			caption = caption[:maxChars-1] + "~"
		}
		d := font.Drawer{Dst: out, Src: image.NewUniform(color.RGBA{235, 235, 235, 255}), Face: face,
			Dot: fixed.P(x0, y0+b.Dy()*k+strip-3)}
		d.DrawString(caption)
	}
	return out
}
