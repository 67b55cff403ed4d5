package dataset

import (
	"math"
	"math/rand/v2"
)

// Resize modes: how a picture of any size becomes the model's Height x Width.
const (
	// ResizeSquish stretches the whole picture to the input size, ignoring its aspect ratio
	// (torchvision's Resize((h, w))).
	ResizeSquish = "squish"
	// ResizeCrop resizes the shorter side to size/crop_pct, keeping the aspect ratio, and
	// cuts the centre out: torchvision's Resize(int(224/0.875)) + CenterCrop(224), the
	// evaluation transform of ImageNet models (timm's crop_pct).
	ResizeCrop = "crop"
	// ResizePad resizes the longer side to the input size, keeping the aspect ratio, and
	// fills the rest with black (letterboxing).
	ResizePad = "pad"
)

// ResizeModes lists the valid resize modes.
var ResizeModes = []string{ResizeSquish, ResizeCrop, ResizePad}

// DefaultCropPct is timm's default crop_pct: 224 of 256 pixels.
const DefaultCropPct = 0.875

// placement says how a W x H picture becomes the model's input canvas: region src of the
// picture is resampled onto an outW x outH grid, of which the part (ox, oy, ow, oh) lands at
// (dx, dy) on the canvas; the rest of the canvas is black.
type placement struct {
	src            box
	outW, outH     int
	ox, oy, ow, oh int
	dx, dy         int
}

// pyRound is Python's round() on a float: halves go to the even neighbour.
func pyRound(v float64) int { return int(math.RoundToEven(v)) }

// evalPlacement is the deterministic transform of mode for a W x H picture and a th x tw
// input.
func evalPlacement(mode string, cropPct float64, W, H, tw, th int) placement {
	return anchoredPlacement(mode, cropPct, "", W, H, tw, th)
}

// anchoredPlacement is evalPlacement with crop's window at anchor ("" the centre).
func anchoredPlacement(mode string, cropPct float64, anchor string, W, H, tw, th int) placement {
	whole := box{0, 0, float64(W), float64(H)}
	switch mode {
	case ResizeCrop:
		sw := int(math.Floor(float64(tw) / cropPct))
		sh := int(math.Floor(float64(th) / cropPct))
		// The smallest aspect-preserving size covering sw x sh; for a square input this
		// is torchvision's Resize(s): the shorter side s, the longer int(s*long/short).
		var nw, nh int
		if W*sh > H*sw { // wider than the target
			nh = sh
			nw = int(float64(sh*W) / float64(H))
		} else {
			nw = sw
			nh = int(float64(sw*H) / float64(W))
		}
		nw, nh = max(nw, tw), max(nh, th)
		// torchvision's CenterCrop: int(round((size - crop) / 2.0)); or a corner.
		top := pyRound(float64(nh-th) / 2)
		left := pyRound(float64(nw-tw) / 2)
		switch anchor {
		case AnchorTopLeft:
			top, left = 0, 0
		case AnchorTopRight:
			top, left = 0, nw-tw
		case AnchorBottomLeft:
			top, left = nh-th, 0
		case AnchorBottomRight:
			top, left = nh-th, nw-tw
		}
		return placement{src: whole, outW: nw, outH: nh, ox: left, oy: top, ow: tw, oh: th}
	case ResizePad:
		var nw, nh int
		if W*th > H*tw {
			nw = tw
			nh = min(max(pyRound(float64(H)*float64(tw)/float64(W)), 1), th)
		} else {
			nh = th
			nw = min(max(pyRound(float64(W)*float64(th)/float64(H)), 1), tw)
		}
		return placement{src: whole, outW: nw, outH: nh, ow: nw, oh: nh, dx: (tw - nw) / 2, dy: (th - nh) / 2}
	}
	return placement{src: whole, outW: tw, outH: th, ow: tw, oh: th}
}

// RandomResizedCrop is torchvision's RandomResizedCrop: a box of a random fraction of the
// picture's area (Scale) and a random aspect ratio (Ratio, log-uniform), resized to the
// input size.
type RandomResizedCrop struct {
	// Scale is the range of the box's area as a fraction of the picture's.
	Scale [2]float64 `json:"scale" yaml:"scale" mapstructure:"scale"`
	// Ratio is the range of the box's aspect ratio, width over height.
	Ratio [2]float64 `json:"ratio" yaml:"ratio" mapstructure:"ratio"`
}

// DefaultRandomResizedCrop is torchvision's default: scale (0.08, 1), ratio (3/4, 4/3).
var DefaultRandomResizedCrop = RandomResizedCrop{Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}

// params is torchvision's RandomResizedCrop.get_params for a W x H picture: up to ten
// tries at a box that fits, then the centre crop at the nearest allowed ratio. It returns
// the box's top, left, height and width.
func (c RandomResizedCrop) params(r *rand.PCG, W, H int) (i, j, h, w int) {
	area := float64(H * W)
	logLo, logHi := math.Log(c.Ratio[0]), math.Log(c.Ratio[1])
	for range 10 {
		target := area * uniform(r, c.Scale[0], c.Scale[1])
		aspect := math.Exp(uniform(r, logLo, logHi))
		w = pyRound(math.Sqrt(target * aspect))
		h = pyRound(math.Sqrt(target / aspect))
		if 0 < w && w <= W && 0 < h && h <= H {
			i = bounded(r.Uint64(), H-h+1)
			j = bounded(r.Uint64(), W-w+1)
			return i, j, h, w
		}
	}
	in := float64(W) / float64(H)
	switch {
	case in < min(c.Ratio[0], c.Ratio[1]):
		w = W
		h = pyRound(float64(w) / min(c.Ratio[0], c.Ratio[1]))
	case in > max(c.Ratio[0], c.Ratio[1]):
		h = H
		w = pyRound(float64(h) * max(c.Ratio[0], c.Ratio[1]))
	default:
		w, h = W, H
	}
	return (H - h) / 2, (W - w) / 2, h, w
}

// uniform draws from [lo, hi).
func uniform(r *rand.PCG, lo, hi float64) float64 {
	return lo + (hi-lo)*float64(r.Uint64()>>11)/(1<<53)
}
