package dataset

import (
	"math"
	"math/rand/v2"
)

// TrivialAugmentWide (Müller and Hutter, 2021) as torchvision 0.14 implements it: one of 14
// operations, chosen uniformly, at one of 31 magnitudes, chosen uniformly, negated with
// probability 1/2 for the signed operations; nearest-neighbour sampling and black fill for
// the geometric ones.

// trivialOps are the operations in torchvision's order (its _augmentation_space).
var trivialOps = []struct {
	name   string
	lo, hi float64 // magnitudes: linspace(lo, hi, 31); lo == hi: no magnitude
	signed bool
}{
	{"Identity", 0, 0, false},
	{"ShearX", 0, 0.99, true},
	{"ShearY", 0, 0.99, true},
	{"TranslateX", 0, 32, true},
	{"TranslateY", 0, 32, true},
	{"Rotate", 0, 135, true},
	{"Brightness", 0, 0.99, true},
	{"Color", 0, 0.99, true},
	{"Contrast", 0, 0.99, true},
	{"Sharpness", 0, 0.99, true},
	{"Posterize", 8, 2, false}, // 8 - round(i / 5): computed by posterizeBits
	{"Solarize", 255, 0, false},
	{"AutoContrast", 0, 0, false},
	{"Equalize", 0, 0, false},
}

const trivialBins = 31

// linspace32 is torch.linspace(lo, hi, n)[i] in float32, as torch computes it: from the
// start for the first half, from the end for the second.
func linspace32(lo, hi float64, n, i int) float64 {
	start, end := float32(lo), float32(hi)
	step := (end - start) / float32(n-1)
	if i < n/2 {
		return float64(start + float32(step*float32(i)))
	}
	return float64(end - float32(step*float32(n-1-i)))
}

// posterizeBits is torchvision's posterize magnitudes: 8 - round(i / ((31-1)/6)).
func posterizeBits(i int) int {
	return 8 - int(math.RoundToEven(float64(float32(i)/float32(float64(trivialBins-1)/6))))
}

// trivialDraw is one draw: an operation and its magnitude.
type trivialDraw struct {
	op        int
	magnitude float64
}

func drawTrivial(r *rand.PCG) trivialDraw {
	d := trivialDraw{op: bounded(r.Uint64(), len(trivialOps))}
	op := trivialOps[d.op]
	if op.lo == op.hi {
		return d
	}
	bin := bounded(r.Uint64(), trivialBins)
	if op.name == "Posterize" {
		d.magnitude = float64(posterizeBits(bin))
	} else {
		d.magnitude = linspace32(op.lo, op.hi, trivialBins, bin)
	}
	if op.signed && r.Uint64()>>63 == 1 {
		d.magnitude = -d.magnitude
	}
	return d
}

// apply is torchvision's _apply_op on a PIL image.
func (d trivialDraw) apply(p *picture, s *opScratch) {
	applyTrivial(p, trivialOps[d.op].name, d.magnitude, s)
}

func applyTrivial(p *picture, name string, m float64, s *opScratch) {
	deg := func(v float64) float64 { return v * radToDeg } // Python's math.degrees
	cx, cy := float64(p.w)*0.5, float64(p.h)*0.5
	switch name {
	case "ShearX":
		transformAffine(p, torchAffineMatrix(0, 0, 0, 0, 0, deg(math.Atan(m)), 0), s)
	case "ShearY":
		transformAffine(p, torchAffineMatrix(0, 0, 0, 0, 0, 0, deg(math.Atan(m))), s)
	case "TranslateX":
		transformAffine(p, torchAffineMatrix(cx, cy, 0, float64(int(m)), 0, 0, 0), s)
	case "TranslateY":
		transformAffine(p, torchAffineMatrix(cx, cy, 0, 0, float64(int(m)), 0, 0), s)
	case "Rotate":
		rotate(p, m, s)
	case "Brightness":
		adjustBrightness(p, 1+m, s)
	case "Color":
		adjustSaturation(p, 1+m, s)
	case "Contrast":
		adjustContrast(p, 1+m, s)
	case "Sharpness":
		adjustSharpness(p, 1+m, s)
	case "Posterize":
		posterize(p, int(m))
	case "Solarize":
		solarize(p, m)
	case "AutoContrast":
		autocontrast(p)
	case "Equalize":
		equalize(p)
	}
}
