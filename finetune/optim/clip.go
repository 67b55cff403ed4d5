package optim

import (
	"fmt"
	"math"
)

// GradNorm returns the L2 norm of all the gradients of params taken together, as if
// concatenated into one vector. It sums in float64, in a fixed order, so the result does
// not depend on the number of goroutines. Only the Grad fields are read.
func GradNorm(params []Param) float64 {
	ss, total := gradSpans(params)
	partial := make([]float64, len(ss))
	forSpans(ss, total, func(i int, sp span) {
		partial[i] = sumSquares(params[sp.p].Grad[sp.lo:sp.hi])
	})
	var sum float64
	for _, x := range partial {
		sum += x
	}
	return math.Sqrt(sum)
}

func sumSquares(g []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(g); i += 4 {
		a, b, c, d := float64(g[i]), float64(g[i+1]), float64(g[i+2]), float64(g[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(g); i++ {
		a := float64(g[i])
		s0 += a * a
	}
	return (s0 + s1) + (s2 + s3)
}

// ClipGradNorm scales the gradients of params together so that their global L2 norm is at
// most maxNorm, and returns the norm before clipping. It is PyTorch's
// torch.nn.utils.clip_grad_norm_ (norm_type 2): every gradient is multiplied by
// maxNorm/(total+1e-6) when that is below 1, and left alone otherwise.
//
// Where PyTorch (with error_if_nonfinite=False) would multiply the gradients by NaN or 0,
// ClipGradNorm leaves them untouched when the norm is NaN or infinite: the caller sees the
// non-finite norm and should skip the step. It panics if maxNorm is negative or NaN.
// Clipping applies to the set passed in; pass every trained parameter, of every group, to
// clip by the model's global norm.
func ClipGradNorm(params []Param, maxNorm float64) float64 {
	if !(maxNorm >= 0) {
		panic(fmt.Sprintf("optim: ClipGradNorm: maxNorm %v must be >= 0", maxNorm))
	}
	total := GradNorm(params)
	if math.IsNaN(total) || math.IsInf(total, 0) {
		return total
	}
	coef := maxNorm / (total + 1e-6)
	if coef >= 1 {
		return total
	}
	c := float32(coef)
	ss, n := gradSpans(params)
	forSpans(ss, n, func(_ int, sp span) {
		g := params[sp.p].Grad[sp.lo:sp.hi]
		for i := range g {
			g[i] *= c
		}
	})
	return total
}
