package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Augment is the training-time augmentation (leave it zero for evaluation). Each example's
// random choices are a pure function of the loader's seed, the epoch and the example's
// index. The steps run in this order, each as torchvision does it on a PIL image:
//
//	RandomResizedCrop (instead of the resize) | the resize; PadCrop; HFlip; VFlip;
//	Rotate; ColorJitter; TrivialAugment; ToTensor and normalisation; RandomErasing
//
// then, over the whole batch, Mixup or Cutmix.
type Augment struct {
	// HFlip flips each image horizontally with probability 0.5.
	HFlip bool `json:"hflip,omitempty"`
	// PadCrop pads the resized image with PadCrop black pixels on every side and crops a
	// random Height x Width window back out (torchvision's RandomCrop(size, padding=PadCrop)).
	PadCrop int `json:"pad_crop,omitempty"`
	// RandomResizedCrop, when set, replaces the resize: a random box of the picture is
	// resized to the input size (torchvision's RandomResizedCrop, with its ten tries and
	// its centre-crop fallback).
	RandomResizedCrop *RandomResizedCrop `json:"random_resized_crop,omitempty"`
	// VFlip turns each image upside down with probability 0.5.
	VFlip bool `json:"vflip,omitempty"`
	// Rotate rotates each image by a uniform random angle in [-Rotate, Rotate] degrees,
	// nearest-neighbour, black corners (torchvision's RandomRotation(Rotate)).
	Rotate float64 `json:"rotate,omitempty"`
	// ColorJitter, when set, changes brightness, contrast, saturation and hue by random
	// factors, in a random order (torchvision's ColorJitter).
	ColorJitter *ColorJitter `json:"color_jitter,omitempty"`
	// TrivialAugment applies one random operation of torchvision's TrivialAugmentWide at a
	// random magnitude.
	TrivialAugment bool `json:"trivial_augment,omitempty"`
	// RandomErasing erases a random box of each image (sets it to 0 after normalisation)
	// with this probability (torchvision's RandomErasing(p), scale (0.02, 0.33), ratio
	// (0.3, 3.3)).
	RandomErasing float64 `json:"random_erasing,omitempty"`
	// Mixup blends each image of a batch with its neighbour, by a weight drawn per batch
	// from Beta(Mixup, Mixup) (Zhang et al.; torchvision's references' RandomMixup).
	Mixup float64 `json:"mixup,omitempty"`
	// Cutmix pastes a box of each image's neighbour in the batch into it, of an area drawn
	// per batch from Beta(Cutmix, Cutmix) (Yun et al.; RandomCutmix). With Mixup also set,
	// each batch takes one of the two at random.
	Cutmix float64 `json:"cutmix,omitempty"`
}

// ColorJitter is torchvision's ColorJitter: brightness, contrast and saturation factors
// uniform in [max(0, 1-v), 1+v], the hue shift uniform in [-Hue, Hue] (Hue <= 0.5).
type ColorJitter struct {
	Brightness float64 `json:"brightness,omitempty"`
	Contrast   float64 `json:"contrast,omitempty"`
	Saturation float64 `json:"saturation,omitempty"`
	Hue        float64 `json:"hue,omitempty"`
}

// Random reports whether a comes out differently each epoch (any augmentation at all).
func (a Augment) Random() bool {
	return a.HFlip || a.PadCrop > 0 || a.RandomResizedCrop != nil || a.VFlip || a.Rotate != 0 ||
		(a.ColorJitter != nil && *a.ColorJitter != ColorJitter{}) || a.TrivialAugment ||
		a.RandomErasing > 0 || a.Mixup > 0 || a.Cutmix > 0
}

// eightBit reports whether a needs the 8-bit picture pipeline (anything beyond the flips
// and pad-crop of the float path).
func (a Augment) eightBit() bool {
	return a.RandomResizedCrop != nil || a.VFlip || a.Rotate != 0 ||
		(a.ColorJitter != nil && *a.ColorJitter != ColorJitter{}) || a.TrivialAugment
}

// Mixes reports whether batches are blended (Mixup or Cutmix).
func (a Augment) Mixes() bool { return a.Mixup > 0 || a.Cutmix > 0 }

// AugmentError is a mistake in an Augment: the key (as the recipe names it) and what was
// expected.
type AugmentError struct {
	Key string // "random_resized_crop.scale", "mixup", ...
	Msg string
}

func (e *AugmentError) Error() string { return "augment " + e.Key + ": " + e.Msg }

func augErr(key, format string, args ...any) error {
	return &AugmentError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// validate checks a's values against the input size.
func (a Augment) validate(p Preprocess) error {
	if a.PadCrop < 0 || a.PadCrop > max(p.Height, p.Width) {
		return augErr("pad_crop", "%d out of range [0, %d]", a.PadCrop, max(p.Height, p.Width))
	}
	if c := a.RandomResizedCrop; c != nil {
		s, r := c.Scale, c.Ratio
		if !finite(s[0]) || !finite(s[1]) || !(s[0] > 0 && s[0] <= s[1] && s[1] <= 1) {
			return augErr("random_resized_crop.scale", "[%v, %v]; want [lo, hi] with 0 < lo <= hi <= 1 (fractions of the picture's area)", s[0], s[1])
		}
		if !finite(r[0]) || !finite(r[1]) || !(r[0] > 0 && r[0] <= r[1]) {
			return augErr("random_resized_crop.ratio", "[%v, %v]; want [lo, hi] with 0 < lo <= hi (width over height)", r[0], r[1])
		}
	}
	if !finite(a.Rotate) || a.Rotate < 0 || a.Rotate > 180 {
		return augErr("rotate", "%v; want degrees in [0, 180]", a.Rotate)
	}
	if j := a.ColorJitter; j != nil {
		for _, f := range []struct {
			key string
			v   float64
		}{{"brightness", j.Brightness}, {"contrast", j.Contrast}, {"saturation", j.Saturation}} {
			if !finite(f.v) || f.v < 0 {
				return augErr("color_jitter."+f.key, "%v; want 0 or more (factors drawn from [max(0, 1-v), 1+v])", f.v)
			}
		}
		if !finite(j.Hue) || j.Hue < 0 || j.Hue > 0.5 {
			return augErr("color_jitter.hue", "%v; want a value in [0, 0.5] (a fraction of the hue circle)", j.Hue)
		}
	}
	if !finite(a.RandomErasing) || a.RandomErasing < 0 || a.RandomErasing > 1 {
		return augErr("random_erasing", "%v; want a probability in [0, 1]", a.RandomErasing)
	}
	if !finite(a.Mixup) || a.Mixup < 0 {
		return augErr("mixup", "%v; want 0 (off) or a Beta parameter alpha > 0, such as 0.2", a.Mixup)
	}
	if !finite(a.Cutmix) || a.Cutmix < 0 {
		return augErr("cutmix", "%v; want 0 (off) or a Beta parameter alpha > 0, such as 1.0", a.Cutmix)
	}
	return nil
}

// ValidateBatch checks that the batch-level augmentations can apply to batches of size n.
func (a Augment) ValidateBatch(n int) error {
	if a.Mixes() && n < 2 {
		key := "mixup"
		if a.Mixup == 0 {
			key = "cutmix"
		}
		return augErr(key, "needs batches of at least 2 images to blend (batch size %d)", n)
	}
	return nil
}

// Sub-streams of an example's augmentation key, one per kind of random choice, so that
// turning one augmentation on does not change the draws of another.
const (
	streamCrop uint64 = iota + 16
	streamVFlip
	streamRotate
	streamJitter
	streamTrivial
	streamErase
)

func stream(key, which uint64) *rand.PCG { return newPCG(deriveKey(key, which)) }

// exampleDraw is one example's random choices that do not depend on its size.
type exampleDraw struct {
	augDraw // pad-crop offsets and the horizontal flip, drawn as before
	key     uint64
	vflip   bool
	angle   float64
	jitter  jitterDraw
	trivial trivialDraw
	erase   bool
}

type jitterDraw struct {
	order                  [4]int
	bright, contr, sat, hu float64
}

func (t *transform) drawExample(key uint64) exampleDraw {
	d := exampleDraw{augDraw: t.draw(key), key: key}
	a := &t.aug
	if a.VFlip {
		d.vflip = stream(key, streamVFlip).Uint64()>>63 == 1
	}
	if a.Rotate != 0 {
		d.angle = uniform(stream(key, streamRotate), -a.Rotate, a.Rotate)
	}
	if j := a.ColorJitter; j != nil {
		r := stream(key, streamJitter)
		d.jitter.order = [4]int{0, 1, 2, 3}
		for i := 3; i > 0; i-- {
			k := bounded(r.Uint64(), i+1)
			d.jitter.order[i], d.jitter.order[k] = d.jitter.order[k], d.jitter.order[i]
		}
		factor := func(v float64) float64 {
			if v == 0 {
				return 1
			}
			return uniform(r, max(0, 1-v), 1+v)
		}
		d.jitter.bright = factor(j.Brightness)
		d.jitter.contr = factor(j.Contrast)
		d.jitter.sat = factor(j.Saturation)
		if j.Hue > 0 {
			d.jitter.hu = uniform(r, -j.Hue, j.Hue)
		}
	}
	if a.TrivialAugment {
		d.trivial = drawTrivial(stream(key, streamTrivial))
	}
	if a.RandomErasing > 0 {
		d.erase = uniform(stream(key, streamErase), 0, 1) < a.RandomErasing
	}
	return d
}

// augment8 runs the 8-bit steps after the resize on the canvas p: pad-crop, flips,
// rotation, colour jitter, TrivialAugment.
func (t *transform) augment8(p *picture, d exampleDraw, s *opScratch) {
	if t.pad > 0 && (d.dx != t.pad || d.dy != t.pad) {
		shift(p, d.dx-t.pad, d.dy-t.pad, s)
	}
	if d.flip {
		flipH(p)
	}
	if d.vflip {
		flipV(p)
	}
	if d.angle != 0 {
		rotate(p, d.angle, s)
	}
	if t.aug.ColorJitter != nil {
		j := d.jitter
		for _, op := range j.order {
			switch op {
			case 0:
				if j.bright != 1 {
					adjustBrightness(p, j.bright, s)
				}
			case 1:
				if j.contr != 1 {
					adjustContrast(p, j.contr, s)
				}
			case 2:
				if j.sat != 1 {
					adjustSaturation(p, j.sat, s)
				}
			case 3:
				if j.hu != 0 {
					adjustHue(p, j.hu)
				}
			}
		}
	}
	if t.aug.TrivialAugment {
		d.trivial.apply(p, s)
	}
}

// shift moves p's content by (ox, oy): output pixel (x, y) is input (x+ox, y+oy), black
// outside (RandomCrop with padding, at crop offset pad+ox, pad+oy).
func shift(p *picture, ox, oy int, s *opScratch) {
	out := &s.tmp
	out.reset(p.c, p.w, p.h)
	clear(out.pix)
	w, h := p.w, p.h
	for c := range p.c {
		in, o := p.plane(c), out.plane(c)
		for y := range h {
			sy := y + oy
			if sy < 0 || sy >= h {
				continue
			}
			lo, hi := max(0, -ox), min(w, w-ox)
			if lo < hi {
				copy(o[y*w+lo:y*w+hi], in[sy*w+lo+ox:sy*w+hi+ox])
			}
		}
	}
	p.pix, out.pix = out.pix, p.pix
}

// randomErasing is torchvision's RandomErasing.get_params plus erase with value 0, on one
// normalised image (c planes of h x w floats).
func randomErasing(dst []float32, c, h, w int, key uint64) {
	r := stream(key, streamErase)
	r.Uint64() // the draw that decided whether to erase
	area := float64(h * w)
	logLo, logHi := math.Log(0.3), math.Log(3.3)
	for range 10 {
		ea := area * uniform(r, 0.02, 0.33)
		aspect := math.Exp(uniform(r, logLo, logHi))
		eh := pyRound(math.Sqrt(ea * aspect))
		ew := pyRound(math.Sqrt(ea / aspect))
		if !(eh < h && ew < w) {
			continue
		}
		i := bounded(r.Uint64(), h-eh+1)
		j := bounded(r.Uint64(), w-ew+1)
		for ch := range c {
			pl := dst[ch*h*w : (ch+1)*h*w]
			for y := i; y < i+eh; y++ {
				clear(pl[y*w+j : y*w+j+ew])
			}
		}
		return
	}
}
