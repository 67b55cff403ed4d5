package kernels

import "math"

// Layer normalization (ONNX LayerNormalization, PyTorch's layer_norm) over rows: x is
// rows × cols, each row normalised with its own mean and (biased) variance, then scaled
// and shifted by per-column scale and bias:
//
//	y = (x - mean) · invStd · scale + bias,   invStd = 1 / √(var + eps).

// LayerNormForward computes y and saves each row's mean and invStd (rows values each)
// for the backward pass. bias may be nil. In float32 on a kernel with the
// normalisation's vector loops the rows' sums run in float32 lanes (the mean corrected by
// a second sum of the deviations from it) and the affine map in float32; the values past
// the last whole vector, and float64, in float64.
func LayerNormForward[T Float](rows, cols int, eps float64, x, scale, bias, y, mean, invStd []T) {
	const name = "LayerNormForward"
	need(name, "x", x, rows*cols)
	need(name, "scale", scale, cols)
	need(name, "y", y, rows*cols)
	need(name, "mean", mean, rows)
	need(name, "invStd", invStd, rows)
	if bias != nil {
		need(name, "bias", bias, cols)
	}
	l := normLoopsFor[T]()
	h := l.vecHead(cols)
	vbias := as32(bias)
	if h > 0 && bias == nil {
		vbias = getBuf[float32](cols)
		defer putBuf(vbias)
		clear(vbias)
	}
	var ones []float32
	if h > 0 {
		ones = getBuf[float32](h)
		defer putBuf(ones)
		for i := range ones {
			ones[i] = 1
		}
	}
	parallelFor(rows, workers(rows, 4*cols), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xs, ys := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
			var s, q float64
			if h > 0 {
				s = float64(l.sum(h, &as32(xs)[0]))
			}
			for _, v := range xs[h:] {
				s += float64(v)
			}
			m := s / float64(cols)
			if h > 0 {
				// The float32 lanes' mean, corrected by the deviations from it (small,
				// so summed accurately): a row whose mean is far from its spread.
				var out [2]float32
				l.lnSums(h, &as32(xs)[0], &ones[0], &ones[0], float32(m), &out)
				d := float64(out[1])
				for _, v := range xs[h:] {
					d += float64(v) - float64(float32(m))
				}
				m = float64(float32(m)) + d/float64(cols)
			}
			q = addPlaneSqDev(l, q, xs, m)
			inv := 1 / math.Sqrt(q/float64(cols)+eps)
			mean[r], invStd[r] = T(m), T(inv)
			if h > 0 {
				l.lnApply(h, float32(m), float32(inv), &as32(xs)[0], &as32(scale)[0], &vbias[0], &as32(ys)[0])
			}
			for j := h; j < cols; j++ {
				z := (float64(xs[j]) - m) * inv * float64(scale[j])
				if bias != nil {
					z += float64(bias[j])
				}
				ys[j] = T(z)
			}
		}
	})
}

// LayerNormBackwardData computes dx from dy, given the forward pass's x, scale and
// saved statistics: with g = dy·scale and xhat the normalised x,
// dx = invStd · (g - mean(g) - xhat · mean(g·xhat)) per row.
func LayerNormBackwardData[T Float](rows, cols int, x, scale, mean, invStd, dy, dx []T) {
	const name = "LayerNormBackwardData"
	need(name, "x", x, rows*cols)
	need(name, "scale", scale, cols)
	need(name, "mean", mean, rows)
	need(name, "invStd", invStd, rows)
	need(name, "dy", dy, rows*cols)
	need(name, "dx", dx, rows*cols)
	l := normLoopsFor[T]()
	h := l.vecHead(cols)
	parallelFor(rows, workers(rows, 6*cols), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xs, gs, ds := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
			m, inv := float64(mean[r]), float64(invStd[r])
			// sg = Σ g, sgd = Σ g·(x - mean), g = dy·scale.
			var sg, sgd float64
			if h > 0 {
				var out [2]float32
				l.lnSums(h, &as32(xs)[0], &as32(gs)[0], &as32(scale)[0], float32(m), &out)
				sg, sgd = float64(out[0]), float64(out[1])
			}
			for j := h; j < cols; j++ {
				g := float64(gs[j]) * float64(scale[j])
				sg += g
				sgd += g * (float64(xs[j]) - m)
			}
			sg /= float64(cols)
			sgx := sgd * inv / float64(cols)
			if h > 0 {
				// dx = inv·g - (inv²·sgx·(x - mean) + inv·sg)
				l.lnBack(h, float32(inv), float32(inv*inv*sgx), float32(inv*sg), float32(m), &as32(xs)[0], &as32(gs)[0], &as32(scale)[0], &as32(ds)[0])
			}
			for j := h; j < cols; j++ {
				g := float64(gs[j]) * float64(scale[j])
				xhat := (float64(xs[j]) - m) * inv
				ds[j] = T(inv * (g - sg - xhat*sgx))
			}
		}
	})
}

// LayerNormBackwardScale computes dscale = Σ_rows dy · xhat.
func LayerNormBackwardScale[T Float](rows, cols int, x, mean, invStd, dy, dscale []T) {
	const name = "LayerNormBackwardScale"
	need(name, "x", x, rows*cols)
	need(name, "dy", dy, rows*cols)
	need(name, "dscale", dscale, cols)
	// Columns split across the cores, each summed over the rows in order: the bits of
	// one pass.
	l := normLoopsFor[T]()
	parallelFor(cols, workers(cols, 3*rows), func(_, lo, hi int) {
		acc := getBuf[float64](hi - lo)
		defer putBuf(acc)
		clear(acc)
		h := l.lnHead(hi - lo)
		for r := 0; r < rows; r++ {
			xs, gs := x[r*cols+lo:r*cols+hi], dy[r*cols+lo:r*cols+hi]
			m, inv := float64(mean[r]), float64(invStd[r])
			if h > 0 {
				l.lnDScale(h, m, inv, &as32(xs)[0], &as32(gs)[0], &acc[0])
			}
			for j := h; j < len(xs); j++ {
				acc[j] += float64(gs[j]) * (float64(xs[j]) - m) * inv
			}
		}
		for j, v := range acc {
			dscale[lo+j] = T(v)
		}
	})
}

// LayerNormBackwardBias computes dbias = Σ_rows dy.
func LayerNormBackwardBias[T Float](rows, cols int, dy, dbias []T) {
	const name = "LayerNormBackwardBias"
	need(name, "dy", dy, rows*cols)
	need(name, "dbias", dbias, cols)
	l := normLoopsFor[T]()
	parallelFor(cols, workers(cols, rows), func(_, lo, hi int) {
		acc := getBuf[float64](hi - lo)
		defer putBuf(acc)
		clear(acc)
		h := l.lnHead(hi - lo)
		for r := 0; r < rows; r++ {
			gs := dy[r*cols+lo : r*cols+hi]
			if h > 0 {
				l.lnDBias(h, &as32(gs)[0], &acc[0])
			}
			for j := h; j < len(gs); j++ {
				acc[j] += float64(gs[j])
			}
		}
		for j, v := range acc {
			dbias[lo+j] = T(v)
		}
	})
}
