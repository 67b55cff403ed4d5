package dataset

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"testing"
)

// twoPixels is a 2x1 RGB image: (10, 100, 200) and (255, 0, 50).
func twoPixels() *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	m.SetNRGBA(0, 0, color.NRGBA{10, 100, 200, 255})
	m.SetNRGBA(1, 0, color.NRGBA{255, 0, 50, 255})
	return m
}

// TestModes checks each mode against values computed by hand from the formulas, on an image
// that needs no resizing. Layout is CHW: [c0p0 c0p1 c1p0 c1p1 c2p0 c2p1].
func TestModes(t *testing.T) {
	img := twoPixels()
	r := [2]float64{10, 255}
	g := [2]float64{100, 0}
	b := [2]float64{200, 50}
	torch := func(mean, std [3]float64) []float64 {
		return []float64{
			(r[0]/255 - mean[0]) / std[0], (r[1]/255 - mean[0]) / std[0],
			(g[0]/255 - mean[1]) / std[1], (g[1]/255 - mean[1]) / std[1],
			(b[0]/255 - mean[2]) / std[2], (b[1]/255 - mean[2]) / std[2],
		}
	}
	for _, tc := range []struct {
		name string
		p    Preprocess
		want []float64
	}{
		{"none", Preprocess{Mode: ModeNone}, []float64{10, 255, 100, 0, 200, 50}},
		{"tf", Preprocess{Mode: ModeTF}, []float64{10/127.5 - 1, 1, 100/127.5 - 1, -1, 200/127.5 - 1, 50/127.5 - 1}},
		// caffe: channel 0 is blue.
		{"caffe", Preprocess{Mode: ModeCaffe}, []float64{200 - 103.939, 50 - 103.939, 100 - 116.779, 0 - 116.779, 10 - 123.68, 255 - 123.68}},
		{"caffe mean", Preprocess{Mode: ModeCaffe, Mean: []float64{1, 2, 3}}, []float64{199, 49, 98, -2, 7, 252}},
		{"torch imagenet", Preprocess{Mode: ModeTorch}, torch([3]float64{0.485, 0.456, 0.406}, [3]float64{0.229, 0.224, 0.225})},
		{"torch one value", Preprocess{Mode: ModeTorch, Mean: []float64{0.286}, Std: []float64{0.353}},
			torch([3]float64{0.286, 0.286, 0.286}, [3]float64{0.353, 0.353, 0.353})},
		{"torch per channel", Preprocess{Mode: ModeTorch, Mean: []float64{0.5, 0.25, 0}, Std: []float64{0.5, 1, 2}},
			torch([3]float64{0.5, 0.25, 0}, [3]float64{0.5, 1, 2})},
		{"torch mean only", Preprocess{Mode: ModeTorch, Mean: []float64{0}},
			torch([3]float64{0, 0, 0}, [3]float64{0.229, 0.224, 0.225})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Channels, tc.p.Height, tc.p.Width = 3, 1, 2
			got, err := tc.p.Apply(img)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if math.Abs(float64(got[i])-tc.want[i]) > 1e-5*max(1, math.Abs(tc.want[i])) {
					t.Fatalf("value %d: got %v, want %v (all: %v)", i, got[i], tc.want[i], got)
				}
			}
		})
	}
}

func TestChannelConversion(t *testing.T) {
	// RGB to one channel: PIL's luma, (19595 R + 38470 G + 7471 B + 32768) >> 16.
	got, err := Preprocess{Mode: ModeNone, Channels: 1, Height: 1, Width: 2}.Apply(twoPixels())
	if err != nil {
		t.Fatal(err)
	}
	l0 := (10*19595 + 100*38470 + 200*7471 + 32768) >> 16
	l1 := (255*19595 + 0*38470 + 50*7471 + 32768) >> 16
	if got[0] != float32(l0) || got[1] != float32(l1) {
		t.Fatalf("luma %v, want [%d %d]", got, l0, l1)
	}
	for _, c := range [][3]uint8{{0, 0, 0}, {255, 255, 255}, {7, 7, 7}, {200, 200, 200}} {
		if l := luma(c[0], c[1], c[2]); l != c[0] {
			t.Fatalf("luma of grey %d is %d", c[0], l)
		}
	}

	// Grey to three channels: replication, then per-channel normalisation.
	gray := image.NewGray(image.Rect(0, 0, 2, 1))
	gray.Pix[0], gray.Pix[1] = 51, 204
	got, err = Preprocess{Mode: ModeTorch, Channels: 3, Height: 1, Width: 2}.Apply(gray)
	if err != nil {
		t.Fatal(err)
	}
	mean, std := ImageNetMean, ImageNetStd
	for c := range 3 {
		for i, v := range []float64{51, 204} {
			want := (v/255 - mean[c]) / std[c]
			if math.Abs(float64(got[c*2+i])-want) > 1e-5 {
				t.Fatalf("channel %d pixel %d: %v, want %v", c, i, got[c*2+i], want)
			}
		}
	}
	// Grey stays grey for one channel.
	got, _ = Preprocess{Mode: ModeNone, Channels: 1, Height: 1, Width: 2}.Apply(gray)
	if got[0] != 51 || got[1] != 204 {
		t.Fatalf("grey: %v", got)
	}
}

// Every decoded image type takes the same path to RGB values.
func TestImageTypes(t *testing.T) {
	src := randomRGB(11, 6, 5)
	rgba := image.NewRGBA(src.Bounds())
	pal := image.NewPaletted(src.Bounds(), nil)
	n64 := image.NewNRGBA64(src.Bounds())
	palette := map[color.NRGBA]uint8{}
	for y := range 5 {
		for x := range 6 {
			c := src.NRGBAAt(x, y)
			rgba.Set(x, y, c)
			n64.Set(x, y, c)
			if _, ok := palette[c]; !ok {
				palette[c] = uint8(len(pal.Palette))
				pal.Palette = append(pal.Palette, c)
			}
			pal.SetColorIndex(x, y, palette[c])
		}
	}
	sub := image.NewNRGBA(image.Rect(0, 0, 10, 10))
	for y := range 5 {
		for x := range 6 {
			sub.SetNRGBA(x+3, y+4, src.NRGBAAt(x, y))
		}
	}
	p := Preprocess{Mode: ModeNone, Channels: 3, Height: 5, Width: 6}
	want, err := p.Apply(src)
	if err != nil {
		t.Fatal(err)
	}
	for name, img := range map[string]image.Image{
		"RGBA": rgba, "Paletted": pal, "NRGBA64 (generic path)": n64,
		"sub-image": sub.SubImage(image.Rect(3, 4, 9, 9)),
	} {
		got, err := p.Apply(img)
		if err != nil {
			t.Fatal(err)
		}
		if d, at := maxAbsDiff(got, want); d != 0 {
			t.Errorf("%s: differs by %v at %d", name, d, at)
		}
	}

	// JPEG decodes to YCbCr; compare with the standard library's conversion.
	var buf bytes.Buffer
	jpeg.Encode(&buf, smoothRGB(16, 12, 0), &jpeg.Options{Quality: 95})
	img, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	yc := img.(*image.YCbCr)
	got, _ := Preprocess{Mode: ModeNone, Channels: 3, Height: 12, Width: 16}.Apply(yc)
	for y := range 12 {
		for x := range 16 {
			c := color.NRGBAModel.Convert(yc.At(x, y)).(color.NRGBA)
			for ch, v := range []uint8{c.R, c.G, c.B} {
				if got[ch*192+y*16+x] != float32(v) {
					t.Fatalf("YCbCr pixel (%d,%d) channel %d: %v, want %d", x, y, ch, got[ch*192+y*16+x], v)
				}
			}
		}
	}

	// Every chroma subsampling, and sub-images, against the standard library's At.
	for _, ratio := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		full := image.NewYCbCr(image.Rect(0, 0, 13, 11), ratio)
		rnd := randomGray(uint64(ratio)+40, 64, 64).Pix
		copy(full.Y, rnd)
		copy(full.Cb, rnd[7:])
		copy(full.Cr, rnd[19:])
		for _, img := range []*image.YCbCr{full, full.SubImage(image.Rect(3, 1, 12, 10)).(*image.YCbCr)} {
			b := img.Bounds()
			got, _ := Preprocess{Mode: ModeNone, Channels: 3, Height: b.Dy(), Width: b.Dx()}.Apply(img)
			hw := b.Dx() * b.Dy()
			for y := range b.Dy() {
				for x := range b.Dx() {
					c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
					for ch, v := range []uint8{c.R, c.G, c.B} {
						if got[ch*hw+y*b.Dx()+x] != float32(v) {
							t.Fatalf("%v %v: pixel (%d,%d) channel %d: %v, want %d", ratio, b, x, y, ch, got[ch*hw+y*b.Dx()+x], v)
						}
					}
				}
			}
		}
	}

	// 16-bit grey keeps its high byte.
	g16 := image.NewGray16(image.Rect(0, 0, 2, 1))
	g16.SetGray16(0, 0, color.Gray16{0x1234})
	g16.SetGray16(1, 0, color.Gray16{0xff00})
	got, _ = Preprocess{Mode: ModeNone, Channels: 1, Height: 1, Width: 2}.Apply(g16)
	if got[0] != 0x12 || got[1] != 0xff {
		t.Fatalf("Gray16: %v", got)
	}
}

func TestPreprocessErrors(t *testing.T) {
	base := Preprocess{Mode: ModeTorch, Channels: 3, Height: 8, Width: 8}
	for _, tc := range []struct {
		name    string
		edit    func(*Preprocess)
		mention []string
	}{
		{"unknown mode", func(p *Preprocess) { p.Mode = "imagenet" }, []string{`"imagenet"`, "caffe, torch, tf, none"}},
		{"empty mode", func(p *Preprocess) { p.Mode = "" }, []string{"caffe, torch, tf, none"}},
		{"channels", func(p *Preprocess) { p.Channels = 4 }, []string{"4 channels"}},
		{"size", func(p *Preprocess) { p.Width = 0 }, []string{"8x0"}},
		{"mean length", func(p *Preprocess) { p.Mean = []float64{1, 2} }, []string{"mean has 2 values"}},
		{"std zero", func(p *Preprocess) { p.Std = []float64{0} }, []string{"zero"}},
		{"std NaN", func(p *Preprocess) { p.Std = []float64{math.NaN()} }, []string{"not finite"}},
		{"torch 1 channel default", func(p *Preprocess) { p.Channels = 1 }, []string{"explicit mean"}},
		{"caffe 1 channel default", func(p *Preprocess) { p.Mode, p.Channels = ModeCaffe, 1 }, []string{"explicit mean"}},
		{"caffe std", func(p *Preprocess) { p.Mode, p.Std = ModeCaffe, []float64{1} }, []string{"no std"}},
		{"tf mean", func(p *Preprocess) { p.Mode, p.Mean = ModeTF, []float64{1} }, []string{"no mean"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			tc.edit(&p)
			contains(t, p.Validate(), tc.mention...)
			_, err := p.Apply(twoPixels())
			contains(t, err, tc.mention...)
		})
	}
	if err := (Preprocess{Mode: ModeCaffe, Channels: 1, Height: 2, Width: 2, Mean: []float64{100}}).Validate(); err != nil {
		t.Fatal(err)
	}
	contains(t, Augment{PadCrop: -1}.Validate(base), "pad_crop: -1")
	contains(t, Augment{PadCrop: 9}.Validate(base), "pad_crop: 9")
	if err := (Augment{PadCrop: 4, HFlip: true}).Validate(base); err != nil {
		t.Fatal(err)
	}
}

// TestAugmentSemantics checks padding, cropping and flipping against an explicit reference:
// the resized image padded with black (before normalisation), a window cut out, flipped.
func TestAugmentSemantics(t *testing.T) {
	for _, pad := range []int{1, 2, 6, 7} { // up to padding wider than the image (w=7, h=5)
		t.Run(fmt.Sprint("pad", pad), func(t *testing.T) { testAugmentSemantics(t, pad) })
	}
}

func testAugmentSemantics(t *testing.T, pad int) {
	const h, w = 5, 7
	img := randomRGB(21, w, h)
	p := Preprocess{Mode: ModeCaffe, Channels: 3, Height: h, Width: w}
	tr, err := p.compile(Augment{HFlip: true, PadCrop: pad})
	if err != nil {
		t.Fatal(err)
	}
	for dy := 0; dy <= 2*pad; dy++ {
		for dx := 0; dx <= 2*pad; dx++ {
			for _, flip := range []bool{false, true} {
				d := augDraw{dx: dx, dy: dy, flip: flip}
				got := make([]float32, p.Size())
				var s scratch
				tr.apply(got, img, &s, d)
				for c := range 3 {
					for y := range h {
						for x := range w {
							xx := x
							if flip {
								xx = w - 1 - x
							}
							py, px := y+dy, xx+dx // in the padded image
							var v float64
							if py >= pad && py < h+pad && px >= pad && px < w+pad {
								pix := img.NRGBAAt(px-pad, py-pad)
								v = float64([]uint8{pix.B, pix.G, pix.R}[c])
							}
							want := v - CaffeMeanBGR[c]
							if g := got[c*h*w+y*w+x]; math.Abs(float64(g)-want) > 1e-4 {
								t.Fatalf("%+v channel %d (%d,%d): %v, want %v", d, c, x, y, g, want)
							}
						}
					}
				}
			}
		}
	}
}

// TestAugmentDraws checks that draws depend only on the key and cover their ranges evenly.
func TestAugmentDraws(t *testing.T) {
	p := Preprocess{Mode: ModeNone, Channels: 1, Height: 8, Width: 8}
	tr, _ := p.compile(Augment{HFlip: true, PadCrop: 3})
	const n = 14000
	flips := 0
	var dx, dy [7]int
	for k := range uint64(n) {
		d := tr.draw(deriveKey(42, purposeAugment, 0, k))
		if d != tr.draw(deriveKey(42, purposeAugment, 0, k)) {
			t.Fatal("draw is not a function of the key")
		}
		if d.flip {
			flips++
		}
		dx[d.dx]++
		dy[d.dy]++
	}
	if flips < n/2-300 || flips > n/2+300 {
		t.Errorf("%d flips in %d", flips, n)
	}
	for i := range 7 {
		if dx[i] < n/7-250 || dx[i] > n/7+250 || dy[i] < n/7-250 || dy[i] > n/7+250 {
			t.Errorf("offset counts dx %v dy %v", dx, dy)
			break
		}
	}
	// Without augmentation the draw is the identity.
	plain, _ := p.compile(Augment{})
	if d := plain.draw(123); d != (augDraw{}) {
		t.Fatalf("draw without augmentation: %+v", d)
	}
}
