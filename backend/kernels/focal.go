package kernels

import "math"

// FocalCrossEntropyProbs returns the focal loss of Lin et al. (2017) over softmax
// probabilities, with class-probability targets, as the mean over the n rows of
//
//	loss_i = -sum_j target_ij * (1 - p_ij)^gamma * log p_ij,   p_i = softmax(logits_i)
//
// For gamma 0 it is [SoftmaxCrossEntropyProbs]. Targets need not sum to one: a
// caller weights classes (PyTorch's CrossEntropyLoss weight) by scaling their
// columns. logits and target are [n, k]; gamma must be >= 0. It is computed in
// float64; 1 - p_ij is computed as the sum of the other classes' probabilities, so
// that it stays exact for a confident prediction.
func FocalCrossEntropyProbs[T Float](n, k int, logits, target []T, gamma float64) T {
	const name = "FocalCrossEntropyProbs"
	need(name, "logits", logits, n*k)
	need(name, "target", target, n*k)
	if n == 0 {
		return 0
	}
	var total float64
	p, q := make([]float64, k), make([]float64, k)
	for i := 0; i < n; i++ {
		row, ts := logits[i*k:(i+1)*k], target[i*k:(i+1)*k]
		lse := softmaxComplement(row, p, q)
		for j, v := range row {
			if t := float64(ts[j]); t != 0 {
				total -= t * math.Pow(q[j], gamma) * logProb(v, lse, q[j])
			}
		}
	}
	return T(total / float64(n))
}

// FocalCrossEntropyProbsBackward computes the gradient of [FocalCrossEntropyProbs]
// with respect to the logits, scaled by the upstream gradient dloss. With
// f(p) = -(1-p)^gamma log p and g_j = target_j f'(p_j) p_j,
//
//	dloss/dlogits_j = (g_j - p_j sum_c g_c) / n
//
// dlogits is overwritten.
func FocalCrossEntropyProbsBackward[T Float](n, k int, logits, target []T, gamma float64, dloss T, dlogits []T) {
	const name = "FocalCrossEntropyProbsBackward"
	need(name, "logits", logits, n*k)
	need(name, "target", target, n*k)
	need(name, "dlogits", dlogits, n*k)
	if n == 0 {
		return
	}
	scale := float64(dloss) / float64(n)
	p, q, g := make([]float64, k), make([]float64, k), make([]float64, k)
	for i := 0; i < n; i++ {
		row, ts, ds := logits[i*k:(i+1)*k], target[i*k:(i+1)*k], dlogits[i*k:(i+1)*k]
		lse := softmaxComplement(row, p, q)
		var gsum float64
		for j, v := range row {
			t := float64(ts[j])
			g[j] = 0
			if t == 0 {
				continue
			}
			// f'(p) p = gamma (1-p)^(gamma-1) p log p - (1-p)^gamma; the first term
			// tends to 0 as p -> 1 for every gamma > 0.
			logp := logProb(v, lse, q[j])
			d := -math.Pow(q[j], gamma)
			if gamma != 0 && q[j] > 0 {
				d += gamma * math.Pow(q[j], gamma-1) * p[j] * logp
			}
			g[j] = t * d
			gsum += g[j]
		}
		for j := range row {
			ds[j] = T((g[j] - p[j]*gsum) * scale)
		}
	}
}

// logProb is log softmax: x - lse, or for a dominant class log1p(-q) from its exact
// complement q, which keeps the tiny losses of confident predictions.
func logProb[T Float](x T, lse, q float64) float64 {
	if q < 0.5 {
		return math.Log1p(-q)
	}
	return float64(x) - lse
}

// softmaxComplement writes softmax(row) into p and 1 - p into q (for a dominant class
// as the sum of the others' exponentials, exact near 1) and returns log(sum(exp(row))).
func softmaxComplement[T Float](row []T, p, q []float64) float64 {
	mx := float64(rowMax(row))
	var s float64
	for j, v := range row {
		p[j] = math.Exp(float64(v) - mx)
		s += p[j]
	}
	for j := range row {
		q[j] = s - p[j]
		if p[j] > s/2 {
			// At most one class dominates: the sum of the others, as s - p[j] would
			// cancel.
			q[j] = 0
			for c := range row {
				if c != j {
					q[j] += p[c]
				}
			}
		}
		q[j] /= s
	}
	for j := range row {
		p[j] /= s
	}
	return mx + math.Log(s)
}
