package optim

import "math"

// Keep copies the values of params into kept, by parameter name (its buffers reused),
// split across the cores: the weights before an update, for UpdateNorms.
func Keep(kept map[string][]float32, params []Param) {
	for _, p := range params {
		buf := kept[p.Name]
		if cap(buf) < len(p.Value) {
			buf = make([]float32, len(p.Value))
		}
		kept[p.Name] = buf[:len(p.Value)]
	}
	ss, total := spans(params)
	forSpans(ss, total, func(_ int, sp span) {
		p := params[sp.p]
		copy(kept[p.Name][sp.lo:sp.hi], p.Value[sp.lo:sp.hi])
	})
}

// UpdateNorms returns the L2 norms of the update of params (their values less the
// values Keep kept) and of their values, in float64, split across the cores.
func UpdateNorms(params []Param, kept map[string][]float32) (update, weight float64) {
	ss, total := spans(params)
	old := make([][]float32, len(params)) // read concurrently: no map lookups in the spans
	for i, p := range params {
		old[i] = kept[p.Name]
	}
	du, w := make([]float64, len(ss)), make([]float64, len(ss))
	forSpans(ss, total, func(i int, sp span) {
		v, o := params[sp.p].Value[sp.lo:sp.hi], old[sp.p][sp.lo:sp.hi]
		var a, b float64
		for j, x := range v {
			d := float64(x) - float64(o[j])
			a += d * d
			b += float64(x) * float64(x)
		}
		du[i], w[i] = a, b
	})
	for i := range ss {
		update += du[i]
		weight += w[i]
	}
	return math.Sqrt(update), math.Sqrt(weight)
}
