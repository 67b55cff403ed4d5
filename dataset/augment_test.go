package dataset

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"testing"
)

// opCase is one augmentation step at given parameters: ours on a picture, and the
// torchvision (or Pillow) step that must give the same bytes.
type opCase struct {
	name string
	ours func(p *picture, s *opScratch)
	ref  []any
}

func opCases() []opCase {
	cases := []opCase{
		{"hflip", func(p *picture, _ *opScratch) { flipH(p) }, []any{"hflip"}},
		{"vflip", func(p *picture, _ *opScratch) { flipV(p) }, []any{"vflip"}},
		{"posterize3", func(p *picture, _ *opScratch) { posterize(p, 3) }, []any{"posterize", 3}},
		{"posterize7", func(p *picture, _ *opScratch) { posterize(p, 7) }, []any{"posterize", 7}},
		{"solarize128", func(p *picture, _ *opScratch) { solarize(p, 128) }, []any{"solarize", 128.0}},
		{"solarize76.5", func(p *picture, _ *opScratch) { solarize(p, 76.5) }, []any{"solarize", 76.5}},
		{"autocontrast", func(p *picture, _ *opScratch) { autocontrast(p) }, []any{"autocontrast"}},
		{"equalize", func(p *picture, _ *opScratch) { equalize(p) }, []any{"equalize"}},
	}
	for _, a := range []float64{30, -45, 90, 180, 270, -90, 12.5, 135, 359} {
		cases = append(cases, opCase{fmt.Sprintf("rotate%v", a), func(p *picture, s *opScratch) { rotate(p, a, s) }, []any{"rotate", a}})
	}
	for _, f := range []float64{0, 0.3, 0.8, 1.25, 1.99} {
		cases = append(cases,
			opCase{fmt.Sprintf("brightness%v", f), func(p *picture, s *opScratch) { adjustBrightness(p, f, s) }, []any{"brightness", f}},
			opCase{fmt.Sprintf("contrast%v", f), func(p *picture, s *opScratch) { adjustContrast(p, f, s) }, []any{"contrast", f}},
			opCase{fmt.Sprintf("saturation%v", f), func(p *picture, s *opScratch) { adjustSaturation(p, f, s) }, []any{"saturation", f}},
			opCase{fmt.Sprintf("sharpness%v", f), func(p *picture, s *opScratch) { adjustSharpness(p, f, s) }, []any{"sharpness", f}},
		)
	}
	for _, h := range []float64{-0.5, -0.21, -0.05, 0.0, 0.1, 0.33, 0.5} {
		cases = append(cases, opCase{fmt.Sprintf("hue%v", h), func(p *picture, _ *opScratch) { adjustHue(p, h) }, []any{"hue", h}})
	}
	// Every TrivialAugmentWide operation at its smallest, a middle and its largest
	// magnitude, both signs.
	for _, op := range trivialOps {
		var mags []float64
		switch {
		case op.lo == op.hi:
			mags = []float64{0}
		case op.name == "Posterize":
			mags = []float64{float64(posterizeBits(0)), float64(posterizeBits(13)), float64(posterizeBits(30))}
		default:
			for _, bin := range []int{0, 7, 15, 30} {
				m := linspace32(op.lo, op.hi, trivialBins, bin)
				mags = append(mags, m)
				if op.signed {
					mags = append(mags, -m)
				}
			}
		}
		for _, m := range mags {
			cases = append(cases, opCase{fmt.Sprintf("trivial/%s%v", op.name, m),
				func(p *picture, s *opScratch) { applyTrivial(p, op.name, m, s) }, []any{"trivial", op.name, m}})
		}
	}
	return cases
}

// TestAugmentationsMatchTorchvision applies every augmentation step at given parameters to
// pictures made from the fixtures (colour and grey, square and not) and compares with
// torchvision's functional ops on the PIL image: no grey level may differ.
func TestAugmentationsMatchTorchvision(t *testing.T) {
	base := []*picture{}
	for _, f := range []struct {
		file string
		w, h int
		gray bool
	}{{"face_640x480.jpg", 224, 224, false}, {"face_97x131.png", 61, 83, false}, {"ascent_gray_200x300.png", 48, 40, true}} {
		p := Preprocess{Mode: ModeNone, Channels: 3, Height: f.h, Width: f.w, Resize: ResizeSquish}
		if f.gray {
			p.Channels = 1
		}
		base = append(base, runEval(t, p, filepath.Join(photos, f.file)))
	}
	var jobs []*pilJob
	for _, oc := range opCases() {
		for bi, b := range base {
			jobs = append(jobs, &pilJob{
				In: rawInput(t, b), Steps: [][]any{oc.ref}, name: fmt.Sprintf("%s/%dx%dx%d", oc.name, b.c, b.h, b.w),
				check: func(t *testing.T, ref []byte) {
					p := &picture{c: b.c, w: b.w, h: b.h, pix: slices.Clone(b.pix)}
					var s opScratch
					oc.ours(p, &s)
					want8(t, p, b.c, b.h, b.w, ref, 0)
				},
			})
			_ = bi
		}
	}
	runPIL(t, jobs)
}

// TestRandomResizedCropBoxes checks the crop-and-resize of given boxes (the part of
// RandomResizedCrop after its draw) against torchvision's resized_crop on PNG input, and a
// whole training pipeline's draw replayed step by step in torchvision.
func TestRandomResizedCropBoxes(t *testing.T) {
	path := filepath.Join(photos, "face_rgba_200x150.png")
	pic := decodeFixture(t, path, false)
	var jobs []*pilJob
	for _, bx := range [][4]int{{0, 0, 150, 200}, {10, 20, 50, 70}, {149, 199, 1, 1}, {3, 0, 147, 31}, {40, 60, 100, 11}} {
		for _, interp := range Interpolations {
			i, j, h, w := bx[0], bx[1], bx[2], bx[3]
			jobs = append(jobs, &pilJob{
				In: fileInput(path, "RGB"), Steps: [][]any{{"resized_crop", i, j, h, w, 56, 64, interp}},
				name: fmt.Sprintf("box%v/%s", bx, interp),
				check: func(t *testing.T, ref []byte) {
					out := &picture{}
					out.reset(3, 64, 56)
					var r resampler
					r.resample(out.pix, pic, box{float64(j), float64(i), float64(j + w), float64(i + h)}, interp, 64, 56, 0, 0, 64, 56)
					want8(t, out, 3, 56, 64, ref, 0)
				},
			})
		}
	}
	// Whole training draws: RandomResizedCrop, pad-crop, flips, rotation, colour jitter and
	// TrivialAugment, replayed in torchvision with the parameters our draw chose.
	a := Augment{RandomResizedCrop: &DefaultRandomResizedCrop, HFlip: true, VFlip: true, PadCrop: 3, Rotate: 20,
		ColorJitter: &ColorJitter{Brightness: 0.4, Contrast: 0.4, Saturation: 0.4, Hue: 0.1}, TrivialAugment: true}
	p := Preprocess{Mode: ModeNone, Channels: 3, Height: 40, Width: 48, Resize: ResizeCrop}
	tr, err := p.compile(a)
	if err != nil {
		t.Fatal(err)
	}
	for k := range uint64(24) {
		key := deriveKey(99, k)
		d := tr.drawExample(key)
		pl := tr.place(pic.w, pic.h, key, true)
		steps := [][]any{{"resized_crop", int(pl.src.Y0), int(pl.src.X0), int(pl.src.dy()), int(pl.src.dx()), 40, 48, "bilinear"}}
		steps = append(steps, []any{"pad_crop", 3, d.dy, d.dx, 40, 48})
		if d.flip {
			steps = append(steps, []any{"hflip"})
		}
		if d.vflip {
			steps = append(steps, []any{"vflip"})
		}
		steps = append(steps, []any{"rotate", d.angle})
		names := []string{"brightness", "contrast", "saturation", "hue"}
		vals := []float64{d.jitter.bright, d.jitter.contr, d.jitter.sat, d.jitter.hu}
		for _, o := range d.jitter.order {
			steps = append(steps, []any{names[o], vals[o]})
		}
		steps = append(steps, []any{"trivial", trivialOps[d.trivial.op].name, d.trivial.magnitude})
		jobs = append(jobs, &pilJob{
			In: fileInput(path, "RGB"), Steps: steps, name: fmt.Sprintf("train/%d/%s", k, trivialOps[d.trivial.op].name),
			check: func(t *testing.T, ref []byte) {
				dst := make([]float32, p.Size())
				var s scratch
				data := readFile(t, path)
				if err := tr.run(dst, input{data: data}, key, true, false, &s); err != nil {
					t.Fatal(err)
				}
				got := &picture{c: 3, w: 48, h: 40, pix: make([]uint8, len(dst))}
				for i, v := range dst {
					got.pix[i] = uint8(v)
				}
				want8(t, got, 3, 40, 48, ref, 0)
			},
		})
	}
	runPIL(t, jobs)
}

// ksStatistic is the two-sample Kolmogorov-Smirnov statistic: the largest distance between
// the empirical distribution functions.
func ksStatistic(a, b []float64) float64 {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Float64s(a)
	sort.Float64s(b)
	var d float64
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

// ksCritical is the two-sample statistic above which the distributions differ at level
// 0.001: c(0.001) = sqrt(-ln(0.0005)/2) = 1.949.
func ksCritical(n, m int) float64 {
	return 1.949 * math.Sqrt(float64(n+m)/float64(n*m))
}

// TestRandomResizedCropDistribution draws 10,000 boxes with torchvision's
// RandomResizedCrop.get_params and 10,000 with ours, for pictures of several shapes and
// parameters, and compares the distributions of the box's area fraction, aspect ratio and
// position (Kolmogorov-Smirnov at level 0.001). Likewise for RandomErasing's boxes.
func TestRandomResizedCropDistribution(t *testing.T) {
	const n = 10000
	type rrcCase struct {
		w, h         int
		scale, ratio [2]float64
	}
	cases := []rrcCase{
		{640, 480, DefaultRandomResizedCrop.Scale, DefaultRandomResizedCrop.Ratio},
		{300, 900, DefaultRandomResizedCrop.Scale, DefaultRandomResizedCrop.Ratio},
		{1000, 200, [2]float64{0.5, 1}, [2]float64{0.9, 1.1}}, // often falls back to the centre crop
		{224, 224, [2]float64{0.25, 0.25}, [2]float64{1, 1}},
	}
	var jobs []*pilJob
	for ci, c := range cases {
		jobs = append(jobs, &pilJob{
			RRCDraws: []int{c.w, c.h, n}, Seed: ci, Scale: c.scale, Ratio: c.ratio,
			name: fmt.Sprintf("rrc/%dx%d/scale%v/ratio%v", c.w, c.h, c.scale, c.ratio),
			check: func(t *testing.T, out []byte) {
				ref := readBoxes(t, out, n)
				rrc := RandomResizedCrop{Scale: c.scale, Ratio: c.ratio}
				ours := make([][4]int, n)
				for k := range ours {
					i, j, h, w := rrc.params(stream(deriveKey(uint64(ci), uint64(k)), streamCrop), c.w, c.h)
					ours[k] = [4]int{i, j, h, w}
				}
				compareBoxes(t, ours, ref, c.w, c.h)
			},
		})
	}
	jobs = append(jobs, &pilJob{
		EraseDraws: []int{56, 72, n}, Seed: 5, name: "erasing/56x72",
		check: func(t *testing.T, out []byte) {
			ref := readBoxes(t, out, n)
			ours := make([][4]int, 0, n)
			for k := range n {
				dst := make([]float32, 56*72)
				for i := range dst {
					dst[i] = 1
				}
				randomErasing(dst, 1, 56, 72, deriveKey(7, uint64(k)))
				ours = append(ours, erasedBox(dst, 56, 72))
			}
			compareBoxes(t, ours, ref, 72, 56)
		},
	})
	runPIL(t, jobs)
}

func readBoxes(t *testing.T, out []byte, n int) [][4]int {
	t.Helper()
	if len(out) != n*16 {
		t.Fatalf("reference: %d bytes, want %d", len(out), n*16)
	}
	boxes := make([][4]int, n)
	for k := range boxes {
		for f := range 4 {
			boxes[k][f] = int(int32(binary.LittleEndian.Uint32(out[(4*k+f)*4:])))
		}
	}
	return boxes
}

// erasedBox finds the zeroed box of an erased all-ones plane: (top, left, h, w), or the
// whole plane when nothing was erased (as get_params returns it).
func erasedBox(p []float32, h, w int) [4]int {
	top, left, bottom, right := h, w, -1, -1
	for y := range h {
		for x := range w {
			if p[y*w+x] == 0 {
				top, left = min(top, y), min(left, x)
				bottom, right = max(bottom, y), max(right, x)
			}
		}
	}
	if bottom < 0 {
		return [4]int{0, 0, h, w}
	}
	return [4]int{top, left, bottom - top + 1, right - left + 1}
}

func compareBoxes(t *testing.T, ours, ref [][4]int, W, H int) {
	t.Helper()
	stats := []struct {
		name string
		f    func(b [4]int) float64
	}{
		{"area", func(b [4]int) float64 { return float64(b[2]*b[3]) / float64(W*H) }},
		{"log aspect", func(b [4]int) float64 { return math.Log(float64(b[3]) / float64(b[2])) }},
		{"top", func(b [4]int) float64 { return float64(b[0]) }},
		{"left", func(b [4]int) float64 { return float64(b[1]) }},
	}
	for _, s := range stats {
		a := make([]float64, len(ours))
		b := make([]float64, len(ref))
		for i := range ours {
			a[i] = s.f(ours[i])
		}
		for i := range ref {
			b[i] = s.f(ref[i])
		}
		d, crit := ksStatistic(a, b), ksCritical(len(a), len(b))
		t.Logf("%s: KS statistic %.4f (critical %.4f at 0.001)", s.name, d, crit)
		if d > crit {
			t.Errorf("%s: the distributions differ: KS statistic %.4f > %.4f", s.name, d, crit)
		}
	}
}
