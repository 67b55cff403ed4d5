package dataset

import (
	"fmt"
	"image"
	"math"
	"strings"
)

// Preprocessing modes, as Keras' imagenet_utils.preprocess_input defines them.
const (
	// ModeCaffe: RGB to BGR, values 0-255, minus the ImageNet mean in BGR order
	// [103.939, 116.779, 123.68] (or Mean, given in BGR order).
	ModeCaffe = "caffe"
	// ModeTorch: values scaled to 0-1, then (x - mean) / std per channel, ImageNet's
	// [0.485, 0.456, 0.406] and [0.229, 0.224, 0.225] unless Mean and Std say otherwise.
	ModeTorch = "torch"
	// ModeTF: x/127.5 - 1, values in [-1, 1].
	ModeTF = "tf"
	// ModeNone: values 0-255 as float32.
	ModeNone = "none"
)

// Modes lists the valid preprocessing modes.
var Modes = []string{ModeCaffe, ModeTorch, ModeTF, ModeNone}

// Default normalisation constants.
var (
	CaffeMeanBGR = []float64{103.939, 116.779, 123.68}
	ImageNetMean = []float64{0.485, 0.456, 0.406}
	ImageNetStd  = []float64{0.229, 0.224, 0.225}
)

// Preprocess turns a decoded image into the float32 CHW tensor a model takes: the
// evaluation transform, which training extends with an Augment. In order:
//
//  1. the image becomes 8-bit channels: grayscale images stay one channel; colour images
//     become RGB (alpha dropped, as PIL's convert("RGB") does), or, when Channels is 1,
//     ITU-R 601-2 luma L = (19595 R + 38470 G + 7471 B + 32768) >> 16, PIL's convert("L");
//  2. the resize to Height x Width: with Resize set, torchvision's transform on a PIL
//     image (squish, crop or pad; Pillow's antialiased resampling, rounded to 8 bits);
//     without, the float path: bilinear as PyTorch's F.interpolate(align_corners=False,
//     antialias=False) on float32 values 0-255 (no resize when the size already matches);
//  3. training augmentation (Augment), if any;
//  4. a grayscale image feeding a 3-channel model is replicated to 3 channels, and the
//     channels are normalised according to Mode.
type Preprocess struct {
	// Mode is caffe, torch, tf or none; see the Mode constants.
	Mode string `json:"mode" yaml:"mode" mapstructure:"mode"`
	// Mean overrides the mode's mean (torch: on the 0-1 scale in RGB order; caffe: on the
	// 0-255 scale in BGR order). One value applies to every channel.
	Mean []float64 `json:"mean,omitempty" yaml:"mean,omitempty" mapstructure:"mean"`
	// Std overrides torch mode's standard deviation; one value applies to every channel.
	Std []float64 `json:"std,omitempty" yaml:"std,omitempty" mapstructure:"std"`
	// Channels is 1 or 3, Height and Width the model's input size (the config's model.input).
	Channels int `json:"channels" yaml:"channels" mapstructure:"channels"`
	Height   int `json:"height" yaml:"height" mapstructure:"height"`
	Width    int `json:"width" yaml:"width" mapstructure:"width"`
	// Resize is how a picture of another size becomes Height x Width: squish, crop or pad
	// (see the Resize constants), resampled as Pillow does (antialiased when downscaling)
	// and rounded to 8 bits. Empty: the tensor resize of the toolkit's first versions, a
	// stretch with PyTorch's F.interpolate (bilinear, no antialiasing) on float values,
	// kept so that recipes and models written before the key existed give the same inputs.
	Resize string `json:"resize,omitempty" yaml:"resize,omitempty" mapstructure:"resize"`
	// CropPct is the centre crop's share of the resized picture for Resize crop, in (0, 1];
	// 0 means DefaultCropPct (0.875: 224 of 256).
	CropPct float64 `json:"crop_pct,omitempty" yaml:"crop_pct,omitempty" mapstructure:"crop_pct"`
	// Interpolation is the resampling filter, bilinear (the default, also for "") or
	// bicubic; ignored without Resize.
	Interpolation string `json:"interpolation,omitempty" yaml:"interpolation,omitempty" mapstructure:"interpolation"`
	// Anchor is where Resize crop cuts the input out of the resized picture: "" (the
	// centre) or one of the corners, AnchorTopLeft ... (test-time augmentation's views).
	Anchor string `json:"anchor,omitempty" yaml:"anchor,omitempty" mapstructure:"anchor"`
}

// Crop anchors, for test-time augmentation.
const (
	AnchorTopLeft     = "top-left"
	AnchorTopRight    = "top-right"
	AnchorBottomLeft  = "bottom-left"
	AnchorBottomRight = "bottom-right"
)

// Corners lists the four corner anchors.
var Corners = []string{AnchorTopLeft, AnchorTopRight, AnchorBottomLeft, AnchorBottomRight}

// Size is the number of float32 values of one preprocessed image: Channels*Height*Width.
func (p Preprocess) Size() int { return p.Channels * p.Height * p.Width }

// Validate checks the mode, the sizes and the mean and std overrides.
func (p Preprocess) Validate() error {
	_, err := p.compile(Augment{})
	return err
}

// Validate checks the augmentation's parameters against the preprocessing's size. Its
// errors are *AugmentError values naming the key.
func (a Augment) Validate(p Preprocess) error { return a.validate(p) }

// Apply preprocesses one image without augmentation (for evaluation and prediction),
// returning Channels*Height*Width values in CHW order.
func (p Preprocess) Apply(img image.Image) ([]float32, error) {
	t, err := p.compile(Augment{})
	if err != nil {
		return nil, err
	}
	dst := make([]float32, p.Size())
	var s scratch
	t.apply(dst, img, &s, augDraw{})
	return dst, nil
}

// transform is a validated Preprocess plus Augment.
type transform struct {
	c, h, w  int
	mode     string
	src      [3]int // output channel -> plane of an RGB image (BGR for caffe)
	mean     [3]float32
	std      [3]float32
	scale    [3]float32 // normalisation: v*scale + bias per output channel
	bias     [3]float32
	pad      int
	hflip    bool
	augments bool

	resize   string  // "" (the tensor resize), squish, crop or pad
	cropPct  float64 // for crop
	interp   string  // bilinear or bicubic
	anchor   string  // where crop cuts: the centre, or a corner
	aug      Augment // the whole augmentation (pad and hflip are also above)
	eightBit bool    // the 8-bit picture pipeline runs (Resize set, or 8-bit augmentations)
}

func (p Preprocess) compile(a Augment) (*transform, error) {
	t := &transform{c: p.Channels, h: p.Height, w: p.Width, mode: p.Mode, src: [3]int{0, 1, 2}}
	if p.Channels != 1 && p.Channels != 3 {
		return nil, fmt.Errorf("dataset: preprocess: %d channels, want 1 or 3", p.Channels)
	}
	if p.Height <= 0 || p.Width <= 0 {
		return nil, fmt.Errorf("dataset: preprocess: input size %dx%d, want positive height and width", p.Height, p.Width)
	}
	if int64(p.Height)*int64(p.Width) > maxPixels {
		return nil, fmt.Errorf("dataset: preprocess: input size %dx%d too large", p.Height, p.Width)
	}
	perChannel := func(name string, v []float64, def []float64) ([3]float32, error) {
		var out [3]float32
		if v == nil {
			if len(def) != p.Channels {
				return out, fmt.Errorf("dataset: preprocess mode %s on a %d-channel input needs an explicit %s "+
					"(the default has %d values, one per RGB channel)", p.Mode, p.Channels, name, len(def))
			}
			v = def
		}
		switch len(v) {
		case 1:
			for c := range out {
				out[c] = float32(v[0])
			}
		case p.Channels:
			for c := range p.Channels {
				out[c] = float32(v[c])
			}
		default:
			return out, fmt.Errorf("dataset: preprocess mode %s: %s has %d values, want 1 or %d (the channel count)",
				p.Mode, name, len(v), p.Channels)
		}
		for c := range p.Channels {
			if math.IsNaN(float64(out[c])) || math.IsInf(float64(out[c]), 0) {
				return out, fmt.Errorf("dataset: preprocess mode %s: %s %v is not finite", p.Mode, name, v)
			}
		}
		return out, nil
	}
	var err error
	switch p.Mode {
	case ModeTorch:
		if t.mean, err = perChannel("mean", p.Mean, ImageNetMean); err != nil {
			return nil, err
		}
		if t.std, err = perChannel("std", p.Std, ImageNetStd); err != nil {
			return nil, err
		}
		for c := range p.Channels {
			if t.std[c] == 0 {
				return nil, fmt.Errorf("dataset: preprocess mode torch: std %v has a zero", p.Std)
			}
		}
	case ModeCaffe:
		if p.Std != nil {
			return nil, fmt.Errorf("dataset: preprocess mode caffe takes no std (it only subtracts a mean)")
		}
		if t.mean, err = perChannel("mean", p.Mean, CaffeMeanBGR); err != nil {
			return nil, err
		}
		if p.Channels == 3 {
			t.src = [3]int{2, 1, 0}
		}
	case ModeTF, ModeNone:
		if p.Mean != nil || p.Std != nil {
			return nil, fmt.Errorf("dataset: preprocess mode %s takes no mean or std (modes with them: %s, %s)", p.Mode, ModeTorch, ModeCaffe)
		}
	default:
		return nil, fmt.Errorf("dataset: unknown preprocess mode %q (valid: %s)", p.Mode, strings.Join(Modes, ", "))
	}
	for c := range 3 {
		switch t.mode {
		case ModeTorch:
			t.scale[c] = float32(1 / (255 * float64(t.std[c])))
			t.bias[c] = float32(-float64(t.mean[c]) / float64(t.std[c]))
		case ModeCaffe:
			t.scale[c], t.bias[c] = 1, -t.mean[c]
		case ModeTF:
			t.scale[c], t.bias[c] = float32(1/127.5), -1
		default:
			t.scale[c], t.bias[c] = 1, 0
		}
	}
	switch p.Resize {
	case "", ResizeSquish, ResizeCrop, ResizePad:
	default:
		return nil, fmt.Errorf("dataset: preprocess: unknown resize %q (valid: %s)", p.Resize, strings.Join(ResizeModes, ", "))
	}
	switch p.Interpolation {
	case "", InterpBilinear, InterpBicubic:
	default:
		return nil, fmt.Errorf("dataset: preprocess: unknown interpolation %q (valid: %s)", p.Interpolation, strings.Join(Interpolations, ", "))
	}
	if !(p.CropPct >= 0 && p.CropPct <= 1) {
		return nil, fmt.Errorf("dataset: preprocess: crop_pct %v; want a fraction in (0, 1] (0: the default, %v)", p.CropPct, DefaultCropPct)
	}
	switch p.Anchor {
	case "", AnchorTopLeft, AnchorTopRight, AnchorBottomLeft, AnchorBottomRight:
	default:
		return nil, fmt.Errorf("dataset: preprocess: unknown anchor %q (valid: the centre, \"\", or %s)", p.Anchor, strings.Join(Corners, ", "))
	}
	t.resize, t.cropPct, t.interp, t.anchor = p.Resize, p.CropPct, p.Interpolation, p.Anchor
	if t.cropPct == 0 {
		t.cropPct = DefaultCropPct
	}
	if t.interp == "" {
		t.interp = InterpBilinear
	}
	if err := a.validate(p); err != nil {
		return nil, err
	}
	t.aug = a
	t.pad, t.hflip = a.PadCrop, a.HFlip
	t.augments = a.Random()
	t.eightBit = p.Resize != "" || a.eightBit()
	return t, nil
}

// augDraw is one example's random augmentation.
type augDraw struct {
	dx, dy int // crop offset in the padded image, in [0, 2*pad]
	flip   bool
}

// draw derives an example's augmentation from its key alone, so that it does not depend on
// which worker handles the example or when.
func (t *transform) draw(key uint64) augDraw {
	var d augDraw
	if t.pad > 0 {
		d.dy = bounded(mix64(key^1), 2*t.pad+1)
		d.dx = bounded(mix64(key^2), 2*t.pad+1)
	}
	if t.hflip {
		d.flip = mix64(key^3)>>63 == 1
	}
	return d
}

// scratch is one worker's reusable memory.
type scratch struct {
	planes  []float32 // the image's channels at its own size, 0-255
	resized []float32 // the channels at the model's size
	dec     decoder
	canvas  picture // the 8-bit input being built
	part    []uint8 // the resampled part of a letterboxed picture
	rsm     resampler
	ops     opScratch
	rs      resizer
}

// apply writes the preprocessed image into dst (length c*h*w) along the float path (no
// Resize, no 8-bit augmentation): see applyPlanes.
func (t *transform) apply(dst []float32, img image.Image, s *scratch, d augDraw) {
	s.dec.stored.fromImage(img, t.c == 1)
	t.applyPlanes(dst, s.planesFrom(&s.dec.stored), s.dec.stored.w, s.dec.stored.h, s, d)
}

// applyPlanes is the float path from the n planes of w0 x h0 in s.planes: the tensor
// resize (F.interpolate, bilinear, no antialiasing), pad-crop and flip on floats,
// normalisation.
func (t *transform) applyPlanes(dst []float32, n, w0, h0 int, s *scratch, d augDraw) {
	planes := s.planes
	if w0 != t.w || h0 != t.h {
		s.resized = grow(s.resized, n*t.h*t.w)
		for p := range n {
			s.rs.plane(s.resized[p*t.h*t.w:(p+1)*t.h*t.w], s.planes[p*w0*h0:(p+1)*w0*h0], h0, w0, t.h, t.w)
		}
		planes = s.resized
	}
	hw := t.h * t.w
	for c := range t.c {
		p := 0
		if n == 3 {
			p = t.src[c]
		}
		plane := planes[p*hw : (p+1)*hw]
		out := dst[c*hw : (c+1)*hw]
		if !t.augments || (!d.flip && d.dx == t.pad && d.dy == t.pad) {
			t.normalise(out, plane, c)
			continue
		}
		// Output pixel (x, y) is pixel (xx + off, y + dy - pad) of the resized image, where
		// xx is x, or w-1-x when flipped, and off = dx - pad; outside it, black padding.
		off := d.dx - t.pad
		for y := range t.h {
			o := out[y*t.w : (y+1)*t.w]
			sy := y + d.dy - t.pad
			if sy < 0 || sy >= t.h {
				clear(o)
				continue
			}
			row := plane[sy*t.w : (sy+1)*t.w]
			if !d.flip {
				lo := min(max(0, -off), t.w)
				hi := max(min(t.w, t.w-off), lo)
				clear(o[:lo])
				copy(o[lo:hi], row[lo+off:hi+off])
				clear(o[hi:])
				continue
			}
			lo := min(max(0, off), t.w)
			hi := max(min(t.w, t.w+off), lo)
			clear(o[:lo])
			for x := lo; x < hi; x++ {
				o[x] = row[t.w-1-x+off]
			}
			clear(o[hi:])
		}
		t.normalise(out, out, c)
	}
}

// normalise writes output channel c's normalisation of the 0-255 values in to out
// (which may be the same slice), as v*scale + bias: for torch mode (v/255 - mean)/std is
// v/(255 std) - mean/std, equal to the two-step formula within a few float32 roundings.
func (t *transform) normalise(out, in []float32, c int) {
	out = out[:len(in)]
	a, b := t.scale[c], t.bias[c]
	switch {
	case a == 1 && b == 0:
		copy(out, in)
	case a == 1:
		for i, v := range in {
			out[i] = v + b
		}
	default:
		for i, v := range in {
			out[i] = v*a + b
		}
	}
}
