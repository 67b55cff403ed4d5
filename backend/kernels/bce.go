package kernels

import "math"

// BCEWithLogits returns the mean over the n x k elements of the binary cross-entropy
// of sigmoid(logits) against targets in [0, 1], as PyTorch's
// nn.BCEWithLogitsLoss(pos_weight=posWeight) computes it, times torchvision's focal
// modulation (sigmoid_focal_loss without alpha) when gamma > 0:
//
//	ce_ij = -(w_j y_ij log s_ij + (1 - y_ij) log(1 - s_ij)),   s = sigmoid(x)
//	p_t   = s y + (1 - s)(1 - y)
//	loss  = mean_ij ce_ij (1 - p_t)^gamma
//
// posWeight holds one weight per column (nil: 1). It is computed in float64, with
// log s = -softplus(-x) and log(1-s) = -softplus(x), as PyTorch does.
func BCEWithLogits[T Float](n, k int, logits, target []T, posWeight []float64, gamma float64) T {
	const name = "BCEWithLogits"
	need(name, "logits", logits, n*k)
	need(name, "target", target, n*k)
	if posWeight != nil {
		need(name, "posWeight", posWeight, k)
	}
	if n == 0 || k == 0 {
		return 0
	}
	var total float64
	for i := range n * k {
		x, y := float64(logits[i]), float64(target[i])
		w := 1.0
		if posWeight != nil {
			w = posWeight[i%k]
		}
		ce := w*y*lossSoftplus(-x) + (1-y)*lossSoftplus(x)
		if gamma != 0 {
			ce *= math.Pow(oneMinusPt(x, y), gamma)
		}
		total += ce
	}
	return T(total / float64(n*k))
}

// BCEWithLogitsBackward computes the gradient of [BCEWithLogits] with respect to the
// logits, scaled by dloss. With m = (1 - p_t)^gamma,
//
//	dce/dx = s (w y + 1 - y) - w y
//	dm/dx  = -gamma (1 - p_t)^(gamma-1) s (1 - s) (2y - 1)
//
// dlogits is overwritten.
func BCEWithLogitsBackward[T Float](n, k int, logits, target []T, posWeight []float64, gamma float64, dloss T, dlogits []T) {
	const name = "BCEWithLogitsBackward"
	need(name, "logits", logits, n*k)
	need(name, "target", target, n*k)
	need(name, "dlogits", dlogits, n*k)
	if posWeight != nil {
		need(name, "posWeight", posWeight, k)
	}
	if n == 0 || k == 0 {
		return
	}
	scale := float64(dloss) / float64(n*k)
	for i := range n * k {
		x, y := float64(logits[i]), float64(target[i])
		w := 1.0
		if posWeight != nil {
			w = posWeight[i%k]
		}
		s := lossSigmoid(x)
		d := s*(w*y+1-y) - w*y
		if gamma != 0 {
			ce := w*y*lossSoftplus(-x) + (1-y)*lossSoftplus(x)
			q := oneMinusPt(x, y)
			d *= math.Pow(q, gamma)
			if q > 0 {
				d -= ce * gamma * math.Pow(q, gamma-1) * s * lossSigmoid(-x) * (2*y - 1)
			}
		}
		dlogits[i] = T(d * scale)
	}
}

// lossSoftplus is log(1 + exp(x)), without overflow.
func lossSoftplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

// lossSigmoid is 1 / (1 + exp(-x)), without overflow.
func lossSigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// oneMinusPt is 1 - p_t = (1 - s) y + s (1 - y), from sigmoid(-x) and sigmoid(x), so
// that it stays exact for a confident prediction.
func oneMinusPt(x, y float64) float64 {
	return lossSigmoid(-x)*y + lossSigmoid(x)*(1-y)
}
