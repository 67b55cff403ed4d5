package headbuilder

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
)

// initScheme is how one weight matrix is drawn.
type initScheme int

const (
	heNormal      initScheme = iota // N(0, 2/fan_in)
	glorotUniform                   // U(-sqrt(6/(fan_in+fan_out)), +sqrt(6/(fan_in+fan_out)))
)

func (s initScheme) String() string {
	if s == heNormal {
		return "he_normal"
	}
	return "glorot_uniform"
}

// schemeFor is the documented rule: with Init "he", a layer followed by a ReLU-family
// activation (relu, leaky_relu) is He-normal and every other layer, the classifier
// included, Glorot-uniform; with Init "glorot", every layer is Glorot-uniform.
func schemeFor(s Spec, layer int) initScheme {
	if s.Init == InitGlorot || layer >= len(s.Dense) {
		return glorotUniform
	}
	if s.Activation == ActReLU || s.Activation == ActLeakyReLU {
		return heNormal
	}
	return glorotUniform
}

// initWeights draws an [out, in] weight matrix (row-major, fan_in = in,
// fan_out = out) from a PCG stream of its own: seeded by (seed, FNV-1a of name), so a
// layer's weights depend only on the seed, its name, its shape and its scheme, not on
// the other layers.
//
// The values come from PCG's raw 64-bit outputs through the fixed transforms below
// rather than through rand.Rand's methods, whose algorithms a Go release may change:
// a uniform is the top 53 bits over 2^53, a normal pair comes from Box-Muller.
func initWeights(seed uint64, name string, out, in int, scheme initScheme) []float32 {
	h := fnv.New64a()
	h.Write([]byte(name))
	src := rand.NewPCG(seed, h.Sum64())
	w := make([]float32, out*in)
	switch scheme {
	case heNormal:
		std := math.Sqrt(2 / float64(in))
		for i := 0; i < len(w); i += 2 {
			z0, z1 := normalPair(src)
			w[i] = float32(std * z0)
			if i+1 < len(w) {
				w[i+1] = float32(std * z1)
			}
		}
	default:
		limit := math.Sqrt(6 / float64(in+out))
		for i := range w {
			w[i] = float32(limit * (2*unit(src) - 1))
		}
	}
	return w
}

// unit returns a uniform float64 in [0, 1) with 53 random bits.
func unit(src *rand.PCG) float64 {
	return float64(src.Uint64()>>11) * 0x1p-53
}

// normalPair returns two independent standard normals (Box-Muller).
func normalPair(src *rand.PCG) (float64, float64) {
	u1 := float64(src.Uint64()>>11+1) * 0x1p-53 // (0, 1]: the log is finite
	u2 := unit(src)
	r := math.Sqrt(-2 * math.Log(u1))
	s, c := math.Sincos(2 * math.Pi * u2)
	return r * c, r * s
}
